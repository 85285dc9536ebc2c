"""`python -m engine --help`, the module docstring and the README's command list agree with the commands that exist."""
import re
from pathlib import Path

from engine.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _registered() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def _readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Command line\n", 1)[1]
    return section.split("```", 2)[1]


def test_readme_command_list_names_every_command_and_no_other():
    listed = set(re.findall(r"python -m engine ([a-z][a-z-]*)", _readme_block()))
    assert listed == _registered()


def test_help_lists_every_command():
    text = build_parser().format_help()
    assert all(name in text for name in _registered())


def test_no_other_text_names_a_command_that_does_not_exist():
    commands = _registered()
    text = (ROOT / "README.md").read_text(encoding="utf-8") + (ROOT / "engine" / "__main__.py").read_text()
    named = set(re.findall(r"python -m engine ([a-z][a-z-]*)", text))  # `python -m engine.zoo.train` is a module
    assert named <= commands, named - commands
