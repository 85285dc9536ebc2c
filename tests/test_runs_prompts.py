"""The local prompt store behind short links: content hashes, atomic writes, listing, unknown hashes."""
import os

import pytest

from engine.records import FailureLensError
from engine.runs import prompts


def test_save_load_list_round_trip(tmp_path):
    text = "line one\r\nline ✓ two\n" * 200
    h = prompts.save(text, tmp_path)
    assert prompts.is_hash(h) and h == prompts.prompt_hash(text)
    assert prompts.load(h, tmp_path) == text  # exact, \r\n kept
    assert prompts.save(text, tmp_path) == h and len(list(tmp_path.iterdir())) == 1  # same text: one file
    other = prompts.save("another prompt", tmp_path)
    os.utime(tmp_path / f"{h}.txt", (1, 1))
    listed = prompts.listing(tmp_path)
    assert [p.hash for p in listed] == [other, h] and listed[1].chars == len(text)
    assert listed[1].preview.startswith("line one line ✓ two")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_unknown_or_malformed_hash_is_none(tmp_path):
    assert prompts.load("0" * 20, tmp_path) is None
    assert prompts.load("../../etc/passwd", tmp_path) is None
    assert prompts.listing(tmp_path / "missing") == []


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FailureLensError, match="FAILURE_LENS_PROMPTS"):
        prompts.save("text", blocker / "sub")
