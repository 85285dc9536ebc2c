import random
from types import SimpleNamespace

import pytest
import torch
from hand_set_lm import bigram_model, make_tokenizer, tid

from engine.cases.failures import encode_pair
from engine.cases.faithfulness import aggregate, flip_k, mask_flip_k, neutral_mask_id
from engine.records import FailureLensError

MASK, TARGET, CONTRAST = 9, 1, 2
CONTRIB = {0: -0.25, 1: 3.0, 2: 2.0, 3: -1.0, 4: 1.0, 5: 0.5, MASK: 0.0}


class BagOfWords(torch.nn.Module):
    """Last-position logits: ℓ(TARGET) = Σ_j CONTRIB[x_j], every other logit 0. So Δℓ = Σ contributions."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([CONTRIB.get(i, 0.0) for i in range(10)]))
        self.seen = []

    def forward(self, input_ids, **_):
        self.seen.append(input_ids.clone())
        logits = torch.zeros(*input_ids.shape, 10)
        logits[:, -1, TARGET] = self.w[input_ids].sum(-1)
        return SimpleNamespace(logits=logits)


IDS = [0, 1, 2, 3, 4, 5]
SPECIAL = [True, False, False, False, False, False]
REL = [CONTRIB[i] for i in IDS]  # exact relevance of this linear model


def _expected_k(order):
    """By arithmetic: Δℓ after masking positions order[:k] is the sum of the other contributions."""
    for k in range(len(order) + 1):
        if sum(CONTRIB[IDS[p]] for p in range(len(IDS)) if p not in order[:k]) < 0:
            return k
    return None


def _random_k(seed):
    order = [1, 2, 3, 4, 5]
    random.Random(seed).shuffle(order)
    return _expected_k(order)


def test_constructed_case_known_k():
    model = BagOfWords()
    res = mask_flip_k(model, IDS, REL, TARGET, CONTRAST, MASK, special_mask=SPECIAL, seeds=(0, 5, 7), chunk=2)
    assert res.base_logit_diff == pytest.approx(5.25)
    assert res.k_relevance == 3 and res.n_candidates == 4
    assert res.curve == pytest.approx((5.25, 2.25, 0.25, -0.75))
    expected = [_random_k(s) for s in (0, 5, 7)]
    assert list(res.k_random) == expected == [5, 3, 4]  # worked out by hand for these seeds too
    assert res.random_flip_rate == 1.0 and res.k_random_mean == pytest.approx(4.0)
    assert all((batch[:, 0] == 0).all() for batch in model.seen)  # the special token is never masked


def test_already_flipped_cap_and_mismatch():
    model = BagOfWords()
    assert flip_k(model, [3, 3], [0, 1], TARGET, CONTRAST, MASK)[0] == 0
    res = mask_flip_k(model, IDS, REL, TARGET, CONTRAST, MASK, special_mask=SPECIAL, seeds=(0,), max_k=2)
    assert res.k_relevance is None and res.k_random == (None,) and res.k_random_mean is None
    assert res.random_flip_rate == 0.0
    with pytest.raises(FailureLensError, match="relevance values"):
        mask_flip_k(model, IDS, REL[:3], TARGET, CONTRAST, MASK)


def test_hf_model_known_answer(tmp_path):
    tok = make_tokenizer(tmp_path)
    model = bigram_model(tok)
    enc = encode_pair(tok, "xyz d")  # the model only looks at the last token: after "d" it says "e"
    rel = [0.1] * (len(enc.ids) - 1) + [5.0]
    mask_id = neutral_mask_id(tok)  # no unk token: the pad token; after it the model says "a"
    assert mask_id == tok.pad_token_id
    res = mask_flip_k(model, enc.ids, rel, tid(tok, "e"), tid(tok, "a"), mask_id, enc.special_mask, seeds=(0, 1))
    assert res.k_relevance == 1 and res.curve[1] < 0 < res.curve[0]
    for seed, k in zip((0, 1), res.k_random):
        order = list(range(len(enc.ids)))
        random.Random(seed).shuffle(order)
        assert k == order.index(len(enc.ids) - 1) + 1


def test_neutral_mask_id_order():
    space = lambda text, add_special_tokens=False: {"input_ids": [7]}  # noqa: E731
    assert neutral_mask_id(SimpleNamespace(unk_token_id=3, pad_token_id=4), mask_id=11) == 11
    assert neutral_mask_id(SimpleNamespace(unk_token_id=3, pad_token_id=4)) == 3
    assert neutral_mask_id(SimpleNamespace(unk_token_id=None, pad_token_id=4)) == 4

    class SpaceOnly:
        unk_token_id = pad_token_id = None
        __call__ = staticmethod(space)

    assert neutral_mask_id(SpaceOnly()) == 7


def test_aggregate():
    model = BagOfWords()
    a = mask_flip_k(model, IDS, REL, TARGET, CONTRAST, MASK, special_mask=SPECIAL, seeds=(0,))
    b = mask_flip_k(model, IDS, REL, TARGET, CONTRAST, MASK, special_mask=SPECIAL, seeds=(0,), max_k=1)
    s = aggregate([a, b])
    assert s.n_cases == 2 and s.relevance_flip_rate == 0.5 and s.k_relevance_mean == 3
    assert s.random_flip_rate == 0.5 and s.k_random_mean == a.k_random_mean


def test_one_masking_engine_chain_and_batches_agree(tmp_path):
    """rows.MaskedRows.first_flip, as the checks (one row after the other on the previous row's cache) and as
    the faithfulness (k values in batches on the prompt's cache): the same curve and flip; rows run once."""
    from engine.cases.rows import MaskedRows

    tok = make_tokenizer(tmp_path)
    enc = encode_pair(tok, "xyz d")
    order = list(range(len(enc.ids)))[::-1]  # the last token ("d", the one the model reads) first
    chain = MaskedRows.of(bigram_model(tok), enc.ids, tok.pad_token_id, tid(tok, "e"), tid(tok, "a"))
    batched = MaskedRows.of(bigram_model(tok), enc.ids, tok.pad_token_id, tid(tok, "e"), tid(tok, "a"))
    k1, curve1, last1 = chain.first_flip(order)
    k2, curve2, last2 = batched.first_flip(order, step=3)
    assert k1 == k2 == 1 and last1 == last2 == (order[0],)
    assert curve1 == pytest.approx(curve2, abs=1e-5) and curve1[1] < 0 < curve1[0]
    assert chain.runs == 1 + 1 and batched.runs == 1 + 3  # the prompt, then one row / one batch of three
    assert batched.first_flip(order, step=3)[1] == curve2 and batched.runs == 1 + 3  # nothing recomputed
