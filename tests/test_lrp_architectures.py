"""Adding an architecture is one entry: a copy of an existing record under a new name runs a heatmap and a graph."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from engine.graph.build import build_graph
from engine.heatmap import attribute
from engine.lrp.architectures import ARCHITECTURES, Architecture, arch_key
from engine.models import load_model
from engine.records import FailureLensError

PROMPT = "the cat sat on the mat and the dog lay by the door"
# one pre-norm gated model, one post-norm model, the GPT-2 layout (other submodule names) and a parallel residual
CASES = {"qwen3": "Qwen3ForCausalLM", "olmo2": "Olmo2ForCausalLM", "gpt2": "GPT2LMHeadModel",
         "gpt_neox": "GPTNeoXForCausalLM"}


def _renamed(src, dst, name: str):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["architectures"] = [name]
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("arch", sorted(CASES))
def test_one_entry_adds_an_architecture(tiny_model_dir, tmp_path, monkeypatch, arch):
    original = ARCHITECTURES[CASES[arch]]
    monkeypatch.setitem(ARCHITECTURES, "ToyForCausalLM", dataclasses.replace(original, family="Toy"))
    toy = load_model(str(_renamed(tiny_model_dir(arch), tmp_path / "toy", "ToyForCausalLM")))
    base = load_model(str(tiny_model_dir(arch)))
    assert toy.arch == "ToyForCausalLM" and toy.family == "Toy" and arch_key(toy.model) == "ToyForCausalLM"
    a, b = attribute(toy, PROMPT), attribute(base, PROMPT)
    np.testing.assert_allclose(a.relevance, b.relevance, rtol=0, atol=1e-5 * max(1.0, float(np.abs(b.relevance).max())))
    split = not original.parallel_residual(base.model.config)
    ga, gb = build_graph(toy, PROMPT, split=split), build_graph(base, PROMPT, split=split)
    scale = 1e-5 * max(1.0, float(np.abs(gb.node_relevance).max()))
    np.testing.assert_allclose(ga.node_relevance, gb.node_relevance, rtol=0, atol=scale)
    assert [t.n_edges for t in ga.transitions] == [t.n_edges for t in gb.transitions]


def test_the_entry_is_what_the_engine_reads(tiny_model_dir, tmp_path, monkeypatch):
    """The copy without its patch map is plain Input x Gradient: the heatmap changes, so the entry was consulted."""
    bare = Architecture("Toy", "Qwen3Attention")  # no rules at all
    monkeypatch.setitem(ARCHITECTURES, "ToyForCausalLM", bare)
    toy = load_model(str(_renamed(tiny_model_dir("qwen3"), tmp_path / "toy", "ToyForCausalLM")))
    base = load_model(str(tiny_model_dir("qwen3")))
    a, b = attribute(toy, PROMPT), attribute(base, PROMPT)
    assert a.objective == pytest.approx(b.objective, abs=1e-5 * max(1.0, abs(b.objective)))  # same forward
    assert np.abs(np.asarray(a.relevance) - np.asarray(b.relevance)).max() > 1e-3


def test_unknown_architecture_names_the_supported_ones(tiny_model_dir, tmp_path):
    with pytest.raises(FailureLensError, match="not supported.*Qwen3"):
        load_model(str(_renamed(tiny_model_dir("qwen3"), tmp_path / "unknown", "MysteryForCausalLM")))
