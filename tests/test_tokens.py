"""Unknown words and unknown single tokens: a word-level vocabulary (the zoo's, built here from three sentences)
and a byte-level BPE (tests/tiny_models.py), which spells every text and never produces its unknown token."""
from __future__ import annotations

import pytest

from engine.records import FailureLensError
from engine.tokens import resolve_token, unknown_words, vocabulary
from engine.zoo.tokenizer_build import build_tokenizer


@pytest.fixture(scope="module")
def words():
    return build_tokenizer(["what is the sum of 2 and 3 ?", "the cat sat", "<q> name a colour <a> red"])


def test_unknown_words_are_named_once_in_order_and_counted_each_time(words):
    got = unknown_words(words, "<q> what is the capital of France ? Paris , France <a>")
    assert got.words == ("capital", "France", "Paris", ",")
    assert got.count == 5  # France twice
    assert got.unk_token == "<unk>"


def test_known_words_digits_and_a_typed_unk_token_are_not_reported(words):
    assert unknown_words(words, "<q> what is the sum of 23 and 7 ? <a>").words == ()
    assert unknown_words(words, "the <unk> sat").count == 0  # typed on purpose: not a word the model lacks
    assert unknown_words(words, "   ").count == 0


def test_byte_level_tokenizer_knows_every_word(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir("qwen3")))
    assert tok.unk_token is not None  # it has one, and never needs it
    assert unknown_words(tok, "Zwölf naïve Kätzchen ✓ xqzpt").words == ()


def test_a_word_outside_the_vocabulary_is_refused_as_target_or_contrast(words):
    with pytest.raises(FailureLensError, match="'Paris' is not in this model's vocabulary.*<unk>.*top-k"):
        resolve_token(words, "Paris", "contrast")
    assert resolve_token(words, "cat", "contrast").text == "cat"
    assert resolve_token(words, "<unk>", "target").token_id == words.unk_token_id  # asked for by name: allowed


def test_vocabulary_lists_specials_first_then_words(words):
    vocab = vocabulary(words)
    assert len(vocab) == len(words)
    assert vocab[:3] == sorted(vocab[:3]) and "<unk>" in vocab[:8] and vocab[-1] == "what"
