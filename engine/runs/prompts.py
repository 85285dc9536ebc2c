"""A local store of long prompts, named by a hash of their content, so a link carries the hash, not the text.

One file per prompt: <folder>/<hash>.txt (UTF-8, the exact text). The hash is the first 20 hex digits of the
SHA-256 of the UTF-8 text, so saving the same prompt twice gives the same name and writes nothing new.
Writes are atomic (a temporary file in the same folder, then os.replace): a reader never sees half a prompt.
Folder: $FAILURE_LENS_PROMPTS, else ~/.cache/failure-lens/prompts.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from engine.records import FailureLensError

URL_LIMIT = 500  # prompts longer than this (characters) travel in links as a hash
_HASH = re.compile(r"^[0-9a-f]{20}$")


@dataclass(frozen=True)
class StoredPrompt:
    hash: str
    chars: int
    saved: float  # modification time, seconds since the epoch
    preview: str  # the first characters, whitespace collapsed


def default_folder() -> Path:
    return Path(os.environ.get("FAILURE_LENS_PROMPTS") or Path.home() / ".cache" / "failure-lens" / "prompts")


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def is_hash(value: str) -> bool:
    return bool(_HASH.match(value or ""))


def save(text: str, folder: Optional[Path] = None) -> str:
    """Store `text` (once) and return its hash."""
    folder = Path(folder or default_folder())
    h = prompt_hash(text)
    path = folder / f"{h}.txt"
    if path.exists():
        return h
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{h}-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8", "surrogatepass"))
        os.replace(tmp, path)
    except OSError as e:
        raise FailureLensError(f"Could not save the prompt in {folder}: {e.strerror or e}. Set FAILURE_LENS_PROMPTS "
                               "to a folder you can write to.") from e
    return h


def load(h: str, folder: Optional[Path] = None) -> Optional[str]:
    """The prompt stored under hash `h`, or None when this machine does not have it (or `h` is not a hash)."""
    if not is_hash(h):
        return None
    path = Path(folder or default_folder()) / f"{h}.txt"
    try:
        return path.read_bytes().decode("utf-8", "surrogatepass")  # not read_text: it would turn \r\n into \n
    except (OSError, UnicodeDecodeError):
        return None


def listing(folder: Optional[Path] = None, preview: int = 80) -> list[StoredPrompt]:
    """Every stored prompt, newest first."""
    folder = Path(folder or default_folder())
    out = []
    for path in folder.glob("*.txt") if folder.is_dir() else ():
        if not is_hash(path.stem):
            continue
        text = load(path.stem, folder)
        if text is not None:
            flat = " ".join(text[: preview * 4].split())
            out.append(StoredPrompt(path.stem, len(text), path.stat().st_mtime, flat[:preview]))
    return sorted(out, key=lambda p: -p.saved)


def age(seconds_since_epoch: float) -> str:
    """'3 min ago' style text for a listing."""
    d = max(0.0, time.time() - seconds_since_epoch)
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if d >= size:
            n = int(d // size)
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return "just now"
