import dataclasses
import math

import pandas as pd
import pytest
import torch

from engine.compare.deltas import (
    CaseDelta,
    CaseSpec,
    Checkpoint,
    _batches,
    checkpoint_deltas,
    checkpoint_labels,
    ecdf,
    evolution_table,
    first_token,
    logit_diffs,
    mean_by_model,
    mean_line,
    model_label,
    scaling_table,
    segment_breakdown,
)
from engine.models import load_model
from engine.records import FailureLensError
from engine.zoo import MODELS_DIR

LONG = " ".join(["the city of the king and the queen"] * 4)  # > 16 tokens: crosses the sliding window
PROMPTS = ["the capital of france is", "one two three four five six seven", "the dog", LONG, "a", "red blue green"]


def _cases() -> list[CaseSpec]:
    return [CaseSpec(f"c{i}", p, " the", " of", {}, "toy") for i, p in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    return load_model(str(tiny_model_dir("llama")))


def _plain_delta(handle, prompt, t, c) -> float:
    with torch.no_grad():
        logits = handle.model(torch.tensor([handle.tokenizer(prompt)["input_ids"]])).logits[0, -1]
    return float(logits[t] - logits[c])


# ---- the token rule --------------------------------------------------------------------------------------

def test_first_token_rule(llama):
    tok = llama.tokenizer
    one, note = first_token(tok, " the", "target")
    assert note is None and one.token_id == tok(" the", add_special_tokens=False)["input_ids"][0]
    first, note = first_token(tok, " paris", "target")
    ids = tok(" paris", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1 and first.token_id == ids[0] and "is 3 tokens" in note and "first token" in note
    none, reason = first_token(tok, "", "contrast")
    assert none is None and "no token" in reason


def test_multi_token_is_flagged_and_same_first_token_is_skipped(llama):
    cases = [CaseSpec("multi", "the capital of france is", " paris", " the"),
             CaseSpec("same", "the dog", " paris", " parrot"),
             CaseSpec("empty", "   ", " the", " of"),
             CaseSpec("ok", "the dog", " the", " of")]
    out = logit_diffs(llama, cases)
    assert [d.case_id for d in out] == ["multi", "same", "empty", "ok"]
    multi, same, empty, ok = out
    assert multi.delta is not None and len(multi.notes) == 1 and "' paris'" in multi.notes[0]
    assert same.delta is None and "same token" in same.skipped and "skipped" in same.note()
    assert empty.delta is None and "empty" in empty.skipped
    assert ok.notes == () and ok.skipped is None and ok.n_tokens == len(llama.tokenizer("the dog")["input_ids"])


# ---- batching --------------------------------------------------------------------------------------------

def test_batches_pack_longest_first_within_budget():
    assert _batches([2, 5, 3, 5], 10) == [[1, 3], [2, 0]]
    assert _batches([2, 5, 3], 1) == [[1], [2], [0]]  # a sequence longer than the budget still runs alone


@pytest.mark.parametrize("arch", ["llama", "gpt2", "mistral"])  # RoPE, absolute positions, sliding window 16
def test_batched_equals_unbatched_and_plain_forward(tiny_model_dir, arch):
    handle = load_model(str(tiny_model_dir(arch)))
    cases = _cases()
    lengths = [len(handle.tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert max(lengths) > 16 and len(set(lengths)) > 3  # real left padding across the window
    assert any(len(b) > 2 for b in _batches(lengths, 4096))
    batched = logit_diffs(handle, cases)
    single = logit_diffs(handle, cases, max_batch_tokens=1)
    t, c = batched[0].target.token_id, batched[0].contrast.token_id
    for b, s, p in zip(batched, single, PROMPTS):
        assert b.delta == pytest.approx(s.delta, abs=1e-5)
        assert b.delta == pytest.approx(_plain_delta(handle, p, t, c), abs=1e-5)
    assert len({round(b.delta, 4) for b in batched}) == len(cases)  # not a constant


def test_progress_reports_and_cancels(llama):
    seen = []
    logit_diffs(llama, _cases(), progress=lambda i, n, m: seen.append((i, n)), max_batch_tokens=20)
    assert seen[0] == (0, 6) and seen[-1] == (6, 6) and len(seen) > 2
    assert [i for i, _ in seen] == sorted(i for i, _ in seen)

    class Stop(Exception):
        pass

    def cancel(i, n, m):
        if i > 0:
            raise Stop

    with pytest.raises(Stop):
        logit_diffs(llama, _cases(), progress=cancel, max_batch_tokens=20)


def test_model_label_adds_revision(llama):
    assert model_label(llama) == llama.label
    fp = dataclasses.replace(llama.fingerprint, revision="step1000")
    assert model_label(dataclasses.replace(llama, fingerprint=fp)) == f"{llama.label}@step1000"


# ---- scaling table / ECDF --------------------------------------------------------------------------------

def _d(case, model, delta, **kw):
    return CaseDelta(case, model, "toy", delta, **kw)


def test_scaling_table_known_values():
    deltas = {
        "small": [_d("a", "small", 3.0), _d("b", "small", 0.5), _d("c", "small", 2.0), _d("d", "small", 4.0)],
        "big": [_d("a", "big", -2.0), _d("b", "big", -5.0), _d("c", "big", -0.5),
                _d("d", "big", None, skipped="no token")],
        "bigger": [_d("a", "bigger", 1.0)],
    }
    df = scaling_table("small", deltas)
    assert list(df.columns) == ["case_id", "family", "model", "delta_ref", "delta", "corrected", "notes"]
    big = df[df.model == "big"].set_index("case_id")
    assert big["corrected"].to_dict() == {"a": True, "b": False, "c": False, "d": False}
    assert big.loc["a", "delta_ref"] == 3.0 and big.loc["a", "delta"] == -2.0
    assert math.isnan(big.loc["d", "delta"]) and "no token" in big.loc["d", "notes"]
    bigger = df[df.model == "bigger"].set_index("case_id")
    assert len(bigger) == 4 and "not computed" in bigger.loc["b", "notes"]
    assert set(df.model) == {"big", "bigger"}
    loose = scaling_table("small", deltas, corrected=(0.0, 0.0)).query("model == 'big'")
    assert loose.corrected.tolist() == [True, True, True, False]
    with pytest.raises(FailureLensError, match="Reference model"):
        scaling_table("huge", deltas)


def test_ecdf_steps():
    df = ecdf([3.0, 1.0, None, 2.0, 2.0, float("nan")])
    assert df["value"].tolist() == [1.0, 2.0, 3.0]
    assert df["fraction"].tolist() == [0.25, 0.75, 1.0]
    assert ecdf([]).empty


# ---- segment breakdown -----------------------------------------------------------------------------------

def test_segment_breakdown_matches_deltas_and_segments(llama):
    prompt = "the capital of france is one two"
    spans = {"instruction": [(0, 24)], "answer": [(25, 32)]}
    cases = [CaseSpec("s", prompt, " the", " of", spans, "toy"), CaseSpec("x", "the dog", " paris", " parrot")]
    df = segment_breakdown(llama, cases)
    deltas = logit_diffs(llama, cases)
    row = df.set_index("case_id").loc["s"]
    assert row["delta"] == pytest.approx(deltas[0].delta, abs=1e-4)
    assert row["total"] == pytest.approx(row["instruction"] + row["query"] + row["answer"], abs=1e-6)
    assert row["query"] == 0.0 and row["special"] == 0.0  # every token is in a span; no BOS in this tokenizer
    assert max(abs(row["instruction"]), abs(row["answer"])) >= 1.0 - 1e-6  # the max-|R| token counts as ±1
    skipped = df.set_index("case_id").loc["x"]
    assert math.isnan(skipped["total"]) and skipped["notes"].startswith("skipped:")


def test_mean_by_model_long_table():
    df = pd.DataFrame({"model": ["m1", "m1", "m2"], "corrected": [True, False, True],
                       "total": [1.0, 3.0, -1.0], "instruction": [0.5, 0.5, math.nan],
                       "query": [0.0, 1.0, 2.0], "answer": [0.0, 0.0, 0.0], "special": [0.0, 0.0, 0.0]})
    out = mean_by_model(df).set_index(["model", "segment"])
    assert out.loc[("m1", "total"), "mean"] == 2.0 and out.loc[("m1", "total"), "n"] == 2
    assert out.loc[("m1", "total"), "sem"] == pytest.approx(math.sqrt(2) / math.sqrt(2))
    assert ("m2", "instruction") not in out.index  # only missing values
    split = mean_by_model(df, by=("model", "corrected")).set_index(["model", "corrected", "segment"])
    assert split.loc[("m1", False, "query"), "mean"] == 1.0


# ---- checkpoints -----------------------------------------------------------------------------------------

def test_checkpoint_labels():
    cps = checkpoint_labels("allenai/Olmo-3-7B-Think-SFT", "step1000, step2000 step4000")
    assert cps[1] == Checkpoint("allenai/Olmo-3-7B-Think-SFT", "step2000", "Olmo-3-7B-Think-SFT@step2000")
    assert len(cps) == 3
    assert checkpoint_labels("allenai/Olmo-3-7B-Think-DPO") == [
        Checkpoint("allenai/Olmo-3-7B-Think-DPO", None, "Olmo-3-7B-Think-DPO")]
    assert checkpoint_labels("zoo", ["s-step1", "s-step2"])[0] == Checkpoint("zoo:s-step1", None, "s-step1")
    with pytest.raises(FailureLensError, match="twice"):
        checkpoint_labels("a/b", ["x", "x"])
    with pytest.raises(FailureLensError):
        checkpoint_labels(" ")


def test_evolution_table_and_mean_line_from_deltas():
    deltas = {"step1": [_d("a", "m", 2.0), _d("b", "m", 4.0)],
              "step2": [_d("a", "m", 0.0), _d("b", "m", None, skipped="why")],
              "final": [_d("a", "m", -1.0), _d("b", "m", -3.0)]}
    df = evolution_table(deltas)
    assert df["order"].tolist() == [0, 0, 1, 1, 2, 2]
    assert df["checkpoint"].tolist()[::2] == ["step1", "step2", "final"]
    line = mean_line(df)
    assert line["checkpoint"].tolist() == ["step1", "step2", "final"]
    assert line["mean"].tolist() == [3.0, 0.0, -2.0] and line["n"].tolist() == [2, 1, 2]


def test_evolution_loads_checkpoints_one_at_a_time(tiny_model_dir):
    cps = [Checkpoint("llama", None, "early"), Checkpoint("qwen3", None, "late")]
    loaded = []

    def load(cp):
        loaded.append(cp.label)
        return load_model(str(tiny_model_dir(cp.source)))

    seen = []
    cases = _cases()[:3]
    df = evolution_table(cps, cases, load=load, progress=lambda i, n, m: seen.append((i, n, m)))
    assert loaded == ["early", "late"]
    assert seen[0][:2] == (0, 6) and seen[-1][:2] == (6, 6) and "late (2/2)" in seen[-1][2]
    ref = logit_diffs(load_model(str(tiny_model_dir("qwen3"))), cases)
    late = df[df.checkpoint == "late"]
    assert late["delta"].tolist() == pytest.approx([d.delta for d in ref], abs=1e-5)
    assert set(df["order"]) == {0, 1}
    with pytest.raises(FailureLensError, match="share a label"):
        checkpoint_deltas([cps[0], cps[0]], cases, load=load)


# ---- the zoo (skipped until its models are built) --------------------------------------------------------

zoo = pytest.mark.skipif(not (MODELS_DIR / "index.json").exists(), reason="engine/zoo/models not built")


@zoo
def test_zoo_reference_deltas_match_stored_failures():
    from engine.compare.deltas import cases_from_failures
    from engine.zoo import load_failures, zoo_sizes

    ref = zoo_sizes()[0]
    failures = load_failures(ref)[:12]
    assert failures
    deltas = logit_diffs(load_model(f"zoo:{ref}", device="cpu", dtype="float32"), cases_from_failures(failures))
    for f, d in zip(failures, deltas):
        assert d.skipped is None and d.notes == () and d.target.token_id == f.target_id
        assert d.delta == pytest.approx(f.logit_diff, abs=1e-4)


@zoo
def test_zoo_scaling_and_breakdown():
    from engine.compare.deltas import cases_from_failures
    from engine.zoo import load_failures, zoo_sizes

    sizes = zoo_sizes()
    cases = cases_from_failures(load_failures(sizes[0])[:6])
    handles = {s: load_model(f"zoo:{s}", device="cpu", dtype="float32") for s in (sizes[0], sizes[-1])}
    deltas = {h.label: logit_diffs(h, cases) for h in handles.values()}
    table = scaling_table(f"zoo:{sizes[0]}", deltas)
    assert len(table) == len(cases) and (table.delta_ref > 0).all() and table["delta"].notna().all()
    parts = segment_breakdown(handles[sizes[0]], cases[:2])
    assert parts["special"].notna().all() and (parts["delta"] > 0).all()


def test_non_finite_batch_rows_are_rerun_alone(llama, monkeypatch):
    import engine.compare.deltas as compare

    real = compare.last_logits

    def nan_when_padded(handle, seqs):
        out = real(handle, seqs)
        return torch.full_like(out, math.nan) if len(seqs) > 1 else out

    monkeypatch.setattr(compare, "last_logits", nan_when_padded)
    patched = logit_diffs(llama, _cases())
    monkeypatch.setattr(compare, "last_logits", real)
    assert [d.delta for d in patched] == pytest.approx([d.delta for d in logit_diffs(llama, _cases())], abs=1e-5)
