"""A clicked graph node's ablation said in words (engine.present.check_charts.node_sentence), on hand-built numbers."""
from __future__ import annotations

from engine.cases.ablation import NodeAblation
from engine.present.check_charts import node_sentence


def node(measured, predicted, stage="emb", token="carrot"):
    return NodeAblation(0, stage, 3, token, -predicted if predicted is not None else 0.0, predicted, measured,
                        None, None)


def test_a_flip_said_in_words_with_the_graphs_accuracy():
    s = node_sentence(node(-7.2, -9.9), 5.3)
    assert s.startswith("Removing 'carrot' at the embedding alone lowers the wrong answer's lead from 5.3 to -1.9: "
                        "the answer flips to the right one.")
    assert "The relevance predicted -9.9 (measured -7.2): the graph has the direction right but overstates" in s


def test_no_flip_right_and_wrong_predictions():
    s = node_sentence(node(-1.0, -1.1, stage="L3"), 5.0)
    assert "after layer 3 alone lowers the wrong answer's lead from 5.0 to 4.0: the model still prefers" in s
    assert s.endswith("the graph is right about this node.")
    s = node_sentence(node(0.8, -1.0, stage="L2.mid"), 5.0)
    assert "at layer 2 after attention alone raises" in s and "gets this node wrong" in s
    assert "could not be measured" in node_sentence(node(None, None), 5.0)
    assert "not measured" in node_sentence(node(None, -2.0), 5.0)


def test_token_text_stays_visible_text():
    assert "'a\\nb'" in node_sentence(node(-1.0, -1.0, token="a\nb"), 2.0)
