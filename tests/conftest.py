"""Shared pytest setup: seeded torch, tiny models built once per session, markers."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest
import torch
from tiny_models import build_tiny


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "browser: drives a real browser (selenium)")


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], pathlib.Path]:
    """`tiny_model_dir(arch)` -> folder of a tiny random `arch` model + tokenizer, built once per session."""
    root = tmp_path_factory.mktemp("tiny_models")
    built: dict[str, pathlib.Path] = {}

    def get(arch: str) -> pathlib.Path:
        if arch not in built:
            built[arch] = build_tiny(arch, root)
        return built[arch]

    return get
