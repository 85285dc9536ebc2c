"""Deletion / insertion curves (engine.cases.checks): known answers on constructed models, verdicts, batching."""
import random

import pytest
import torch
from hand_set_lm import TOP_LOGIT, bigram_model, make_tokenizer, tid
from test_cases_faithfulness import CONTRAST, CONTRIB, IDS, MASK, REL, SPECIAL, TARGET, BagOfWords

from engine.cases.checks import PARTLY_SHARE, _verdict, deletion_curves, replacement_id
from engine.objectives import Objective
from engine.records import FailureLensError

TIMES = ("verdict_seconds",)  # wall-clock time: differs from run to run


def _same(a, b) -> tuple[dict, dict]:
    """a.to_dict() without the timings (asserted equal to b's by the caller)."""
    return {k: v for k, v in a.to_dict().items() if k not in TIMES}, {k: v for k, v in b.to_dict().items()
                                                                     if k not in TIMES}


class Tok:
    """Just enough tokenizer for the bag-of-words model: 10 ids that decode to 't<id>'."""

    pad_token_id, unk_token_id = MASK, None

    def __len__(self):
        return 10

    def decode(self, ids, **_):
        return f"t{ids[0]}"


def _delta(removed):
    """Δℓ of the bag-of-words model with the positions in `removed` masked: the sum of the other contributions."""
    return sum(CONTRIB[IDS[p]] for p in range(len(IDS)) if p not in removed)


def test_bag_of_words_curves_by_arithmetic():
    seeds = (0, 5, 7)
    res = deletion_curves(BagOfWords(), Tok(), IDS, REL, TARGET, CONTRAST, SPECIAL, k=3, seeds=seeds, replacement=MASK,
                          curves="full")
    by_target = [1, 2, 4]  # relevance 3.0, 2.0, 1.0 (position 0 is special, never removed)
    assert res.target_positions == tuple(by_target)
    assert res.target == pytest.approx([_delta(by_target[:k]) for k in range(4)])  # 5.25, 2.25, 0.25, -0.75
    assert res.contrast_positions == (3,)  # the only negative relevance among ordinary tokens
    assert res.contrast == pytest.approx([5.25, 6.25])
    per_seed = []
    for s in seeds:
        order = [1, 2, 3, 4, 5]
        random.Random(s).shuffle(order)
        per_seed.append([_delta(order[:k]) for k in range(4)])
    mean = [sum(c[k] for c in per_seed) / 3 for k in range(4)]
    assert res.random_mean == pytest.approx(mean)
    plain = [1, 2, 3, 4, 5]
    assert res.insertion == pytest.approx([_delta([p for p in plain if p not in by_target[:k]]) for k in range(4)])
    assert res.area == pytest.approx(sum(mean[k] - res.target[k] for k in (1, 2, 3)) / 3)
    orders = []
    for s in seeds:
        order = [1, 2, 3, 4, 5]
        random.Random(s).shuffle(order)
        orders.append(order)
    rows = {frozenset(by_target[:k]) for k in (1, 2, 3)} | {frozenset([3])} | {
        frozenset(o[:k]) for o in orders for k in (1, 2, 3)} | {frozenset(p for p in plain if p not in by_target[:k])
                                                                 for k in range(4)}
    assert res.flip_k == 3 and res.forward_rows == 1 + len(rows)  # the prompt + each distinct masked variant once
    assert res.verdict == ("explains" if mean[3] > 0 else "fragile")
    assert (res.curves, res.random_k, res.random_mean_k) == ("full", 3, pytest.approx(mean[3]))
    # the fast verdict: the red curve to its flip, then the random rows at k = 3 only
    fast = deletion_curves(BagOfWords(), Tok(), IDS, REL, TARGET, CONTRAST, SPECIAL, k=3, seeds=seeds, replacement=MASK)
    assert fast.curves == "verdict" and fast.target == pytest.approx(res.target) and fast.area is None
    assert fast.contrast == fast.insertion == fast.random_mean == ()
    assert (fast.verdict, fast.sentence, fast.flip_k, fast.flip_top) == (res.verdict, res.sentence, 3, res.flip_top)
    assert fast.random_mean_k == pytest.approx(mean[3]) and fast.random_std_k == pytest.approx(res.random_std[3])
    at3 = {frozenset(o[:3]) for o in orders} - {frozenset(by_target)}
    assert fast.forward_rows == fast.verdict_rows == 1 + 3 + len(at3) < res.forward_rows


def test_batched_equals_one_row_at_a_time():
    for curves in ("full", "verdict"):
        a = deletion_curves(BagOfWords(), Tok(), IDS, REL, TARGET, CONTRAST, SPECIAL, k=4, replacement=MASK, chunk=1,
                            reuse_prefix=False, curves=curves)
        b = deletion_curves(BagOfWords(), Tok(), IDS, REL, TARGET, CONTRAST, SPECIAL, k=4, replacement=MASK,
                            curves=curves)
        x, y = _same(a, b)
        assert x == y


@pytest.fixture(scope="module")
def bigram(tmp_path_factory):
    """A saved HF model whose logits depend only on the last token's embedding, loaded as a ModelHandle."""
    from engine.models import load_model

    folder = tmp_path_factory.mktemp("bigram")
    tok = make_tokenizer(folder)
    bigram_model(tok).save_pretrained(folder)
    return load_model(str(folder), device="cpu")


def test_token_whose_embedding_decides_comes_first_and_flips(bigram):
    from engine.cases.checks import check_attribution
    from engine.heatmap import attribute

    tok = bigram.tokenizer
    att = attribute(bigram, "xyz d", Objective("e", "a"))  # after "d" the model says "e"; after pad, "a"
    assert att.logit_diff == pytest.approx(TOP_LOGIT(bigram.model), rel=1e-4)
    res = check_attribution(bigram, att, k=3, seeds=(0, 1, 2, 3, 4), replacement="pad", curves="full")
    fast = check_attribution(bigram, att, k=3, seeds=(0, 1, 2, 3, 4), replacement="pad")
    assert (fast.verdict, fast.sentence, fast.flip_k) == (res.verdict, res.sentence, 1)
    assert fast.random_mean_k == pytest.approx(res.random_mean[1], rel=1e-4, abs=1e-5)
    last = len(att.token_ids) - 1
    assert res.target_positions[0] == last and res.target_tokens[0] == "d"
    assert res.flip_k == 1 and res.flip_top == "a" and res.target[1] == pytest.approx(-res.base_logit_diff, rel=1e-4)
    assert res.mask_id == tok.pad_token_id
    # random removals flip exactly when they hit the last token
    for j in range(1, 4):
        hits = []
        for seed in (0, 1, 2, 3, 4):
            order = list(range(len(att.token_ids)))
            random.Random(seed).shuffle(order)
            hits.append(last in order[:j])
        want = sum(-res.base_logit_diff if h else res.base_logit_diff for h in hits) / 5
        assert res.random_mean[j] == pytest.approx(want, rel=1e-4)
    assert res.verdict == ("explains" if res.random_mean[1] > 0 else "fragile")
    assert "flips the answer to 'a'" in res.sentence
    assert res.insertion[0] == pytest.approx(-res.base_logit_diff, rel=1e-4)  # everything replaced: says "a"
    assert res.insertion[1] == pytest.approx(res.base_logit_diff, rel=1e-4)  # "d" alone brings the failure back
    assert tid(tok, "d") == att.token_ids[last]


def test_verdicts_and_their_thresholds():
    zeros = [0.0] * 4
    v, s = _verdict(-0.5, [-0.5], [-0.5], [0.0], None, None, "x", "y")
    assert v == "no_failure" and "already prefers 'y'" in s
    v, s = _verdict(4.0, [4.0, 1.0, -1.0], [4.0, 3.9, 3.8], zeros, 2, "y", "x", "y")
    assert v == "explains" and s == ("The heatmap's top 2 tokens account for the failure: "
                                     "removing them flips the answer to 'y'.")
    _, s = _verdict(4.0, [4.0, -1.0], [4.0, 3.9], zeros, 1, "y", "x", "y")
    assert s == "The heatmap's top token accounts for the failure: removing it flips the answer to 'y'."
    v, s = _verdict(4.0, [4.0, -1.0], [4.0, -0.5], zeros, 1, "z", "x", "y")
    assert v == "fragile" and "removing one random token does too" in s and "top answer becomes 'z'" in s
    cut = 4.0 * (1 - PARTLY_SHARE)  # exactly at the share threshold
    v, s = _verdict(4.0, [4.0, 3.0, cut], [4.0, 3.9, 3.8], [0.0, 0.1, 0.2], None, None, "x", "y")
    assert v == "partly" and "explains part of this failure" in s
    v, _ = _verdict(4.0, [4.0, 3.0, cut], [4.0, 3.9, 3.8], [0.0, 0.1, 1.0], None, None, "x", "y")
    assert v == "not_explained"  # within 2 random standard deviations
    v, s = _verdict(4.0, [4.0, 3.9, 3.7], [4.0, 3.9, 3.8], zeros, None, None, "x", "y")
    assert v == "not_explained" and s.startswith("Removing the highlighted tokens changes little")


def test_replacement_choices_and_bad_input():
    tok = type("T", (), {"pad_token_id": 4, "unk_token_id": None, "__len__": lambda self: 10})()
    assert replacement_id(tok, "pad") == 4 and replacement_id(tok, "neutral") == 4
    assert replacement_id(tok, "#7") == 7 and replacement_id(tok, 3) == 3
    with pytest.raises(FailureLensError, match="no unk token"):
        replacement_id(tok, "unk")
    with pytest.raises(FailureLensError, match="outside the vocabulary"):
        replacement_id(tok, 99)
    with pytest.raises(FailureLensError, match="Unknown replacement"):
        replacement_id(tok, "blank")
    with pytest.raises(FailureLensError, match="relevance values"):
        deletion_curves(BagOfWords(), Tok(), IDS, REL[:2], TARGET, CONTRAST, replacement=MASK)
    with pytest.raises(FailureLensError, match="K = 0"):
        deletion_curves(BagOfWords(), Tok(), IDS, REL, TARGET, CONTRAST, k=0, replacement=MASK)


def test_check_cli_on_a_shipped_failure():
    import json
    import subprocess
    import sys

    from engine import zoo

    if "l" not in zoo.zoo_sizes() or not zoo.load_failures("l"):
        pytest.skip("no trained zoo")
    case = zoo.load_failures("l")[0]
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine", "check", "--model", "zoo:l", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    out = run("--case", f"l/{case.case_id}", "--nodes", "4", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    from engine.cases.checks import check_attribution
    from engine.heatmap import attribute
    from engine.models import load_model

    handle = load_model("zoo:l")
    api = check_attribution(handle, attribute(handle, case.prompt,
                                              Objective(f"#{case.target_id}", f"#{case.contrast_id}")))
    got["curves"].pop("verdict_seconds")
    assert got["curves"] == {k: v for k, v in json.loads(json.dumps(api.to_dict())).items() if k not in TIMES}
    assert len(got["ablation"]["nodes"]) == 4
    text = run("--case", f"l/{case.case_id}", "--nodes", "0")
    assert text.returncode == 0 and api.sentence in text.stdout
    bad = run("--case", "l/no-such-case")
    assert bad.returncode == 2 and "No shipped failure" in bad.stderr and "Traceback" not in bad.stderr
    both = run("--case", f"l/{case.case_id}", "--prompt", "x")
    assert both.returncode == 2 and "either --case" in both.stderr


@pytest.mark.parametrize("arch", ["qwen3", "gpt2", "mistral", "gemma3", "gpt_neox"])
def test_cached_prefix_rows_equal_full_forwards(tiny_model_dir, arch):
    from engine.models import load_model

    h = load_model(str(tiny_model_dir(arch)), device="cpu")
    ids = h.tokenizer("the cat sat on the mat and the dog lay by the door of the house")["input_ids"]
    rel = [((i * 7) % 5) - 2.0 for i in range(len(ids))]  # mixed signs, fixed
    with torch.no_grad():
        last = h.model(input_ids=torch.tensor([ids])).logits[0, -1]
    t, c = (5, 7) if last[5] > last[7] else (7, 5)  # a failure to explain: Δℓ > 0
    full = deletion_curves(h.model, h.tokenizer, ids, rel, t, c, k=4, seeds=(0, 1), replacement=3, curves="full")
    slow = deletion_curves(h.model, h.tokenizer, ids, rel, t, c, k=4, seeds=(0, 1), replacement=3, chunk=1,
                           reuse_prefix=False, curves="full")
    for name in ("target", "contrast", "random_mean", "random_std", "insertion"):
        assert getattr(full, name) == pytest.approx(getattr(slow, name), abs=2e-5), name
    assert full.verdict == slow.verdict and full.target_positions == slow.target_positions
    # the fast verdict's red rows run one after the other, each on the previous row's cache
    fast = deletion_curves(h.model, h.tokenizer, ids, rel, t, c, k=4, seeds=(0, 1), replacement=3)
    assert fast.target == pytest.approx(slow.target[:len(fast.target)], abs=2e-5)
    assert fast.random_mean_k == pytest.approx(slow.random_mean[fast.random_k], abs=2e-5)
    assert fast.verdict == slow.verdict
