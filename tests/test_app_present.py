"""AppTests of issue 12's dashboard behaviours: own prompts with words the zoo does not know, token errors that
keep the page usable, the stale zoo badge, going back to the open failure case, links that restore the graph
node, presentation mode. Run on the shipped zoo (the stand-in of compare_fixtures when it is not trained)."""
from __future__ import annotations

import pytest
from compare_fixtures import no_legacy_pages_mode, stand_in, zoo_or_stand_in  # noqa: F401 (fixtures)
from test_app_pages import app, clean, metric, texts


def _word_level(at) -> bool:
    from ui import loaders

    return loaders.model(at.session_state["model"][0], quiet=True).tokenizer.unk_token_id is not None and \
        "zoo:" in at.session_state["model"][0]


def test_own_prompt_names_the_words_the_zoo_does_not_know():
    at = clean(app(prompt="<q> what is the capital of France ? Paris , France <a>"))
    if not _word_level(at) or "unknown" not in texts(at.warning):
        pytest.skip("needs the shipped word-level zoo tokenizer")
    warning = next(w.value for w in at.warning if "unknown" in w.value)
    assert warning.startswith("3 words are unknown to zoo") and "capital, France, Paris" in warning
    assert any(e.label.startswith("The vocabulary of zoo:") for e in at.expander)
    assert any("fl-heatmap" in h.value for h in at.html)  # said before the heatmap, which is still drawn


def test_a_contrast_outside_the_vocabulary_is_an_error_with_a_way_out():
    at = clean(app(prompt="<q> what is 298 plus 21 ? <a>"))
    clean(at.text_input(key="w:contrast").input("Paris").run())
    if "not in this model's vocabulary" not in texts(at.error):
        pytest.skip("needs the shipped word-level zoo tokenizer")
    assert "top-k" in texts(at.error) and "Meanwhile the page shows" in texts(at.error)
    assert at.dataframe and any("fl-heatmap" in h.value for h in at.html)  # the candidates to pick from


def test_multi_token_contrast_keeps_the_candidates_and_the_heatmap():
    at = clean(app())
    clean(at.text_input(key="w:contrast").input("compute 1").run())
    assert "tokens, not one" in texts(at.error) and "Meanwhile the page shows" in texts(at.error)
    assert "No contrast given" not in texts(at.info)  # the error says what is shown; no second, contrary note
    topk = at.dataframe[0].value
    assert "contrast" in list(topk["role"])  # the runner-up meanwhile
    new = next(int(t) for t, role in zip(topk["id"], topk["role"]) if not role)
    clean(at.button_group(key="w:pick:contrast").set_value(new).run())  # the way out: one click
    assert not at.error and at.session_state["contrast"] == f"#{new}"


def test_zoo_badge_only_while_the_case_pair_is_shown():
    at = clean(app())
    delta = next(m for m in at.metric if m.label.startswith("Δℓ"))
    assert delta.delta and delta.delta.startswith("zoo case: ")
    topk = at.dataframe[0].value
    new = next(int(t) for t, role in zip(topk["id"], topk["role"]) if not role)
    clean(at.button_group(key="w:pick:contrast").set_value(new).run())
    assert not next(m for m in at.metric if m.label.startswith("Δℓ")).delta


def test_a_new_prompt_resets_target_and_contrast():
    at = clean(app(prompt="<q> what is 298 plus 21 ? <a>", target="#16", contrast="#17"))
    assert at.query_params["contrast"] == "#17"
    clean(at.text_area(key="w:prompt").input("<q> what is 7 plus 5 ? <a>").run())
    assert at.session_state["target"] == "" and at.session_state["contrast"] == ""
    assert "resets target and contrast" in texts(at.caption)
    assert metric(at, "Target")  # the new top-1


def test_back_to_failure_case_reopens_the_open_case():
    from engine import zoo
    from ui.state import default_case

    name = zoo.zoo_sizes()[-1]
    default = default_case(f"zoo:{name}")
    other = next(f for f in sorted(zoo.load_failures(name), key=lambda f: len(f.prompt)) if f != default)  # short
    at = clean(app(model=f"zoo:{other.model}", case=f"{other.model}/{other.case_id}"))
    clean(at.radio(key="w:source").set_value("Own prompt").run())
    assert at.session_state["case"] == ""
    clean(at.radio(key="w:source").set_value("Failure case").run())
    assert at.session_state["case"] == f"{other.model}/{other.case_id}"
    assert at.session_state["prompt"] == other.prompt


def test_a_link_restores_the_selected_graph_node_and_objective():
    from engine import zoo

    failure = zoo.load_failures()[0]
    at = app(model=f"zoo:{failure.model}", case=f"{failure.model}/{failure.case_id}")
    at.switch_page("pages/graph.py")
    clean(at.run())
    clean(at.selectbox(key="w:node").select_index(1).run())
    node = at.query_params["node"]
    link = {k: at.query_params[k] for k in ("model", "case", "node")}
    fresh = app(**link)
    fresh.switch_page("pages/graph.py")
    clean(fresh.run())
    assert fresh.session_state["node"] == node == fresh.selectbox(key="w:node").value
    assert "Top hidden dimensions" in texts(fresh.markdown)


def test_presentation_mode_folds_the_inputs_and_keeps_the_numbers():
    at = clean(app(present="1"))
    assert any(e.label == "Prompt and tokens" for e in at.expander)
    assert "Conservation" in [m.label for m in at.metric]
    assert any("clamp(" in h.value for h in at.html)  # the projector CSS
