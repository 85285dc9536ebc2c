"""The Graph page's drawing as a Streamlit component that stays in the page between reruns.

An `st.iframe` of the standalone graph HTML re-sends and re-parses all of vis-network (~470 KB) on every
slider move. This component loads vis-network once; each rerun sends only the nodes and edges, and a click on
a node comes back as its id (the page then opens that node's drill-down). The frontend is one HTML file
(`graph_frontend.html`, no build step); it and pyvis's copy of vis-network are put in a folder named by their
content hash, which Streamlit serves. That folder lives in a private per-user cache (mode 0700, owned by this
user), never at a predictable path in the shared temp dir where another local user could plant a page first;
its files are compared byte for byte with what should be served before every start, and rebuilt if they differ.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import streamlit.components.v1 as components

from engine.present import render

FRONTEND = Path(__file__).with_name("graph_frontend.html")


def _page_text() -> str:
    return FRONTEND.read_text(encoding="utf-8").replace("/*TOOLTIP_CSS*/", render.TOOLTIP_CSS)


def private_root() -> Path:
    """This user's private cache folder for served files: $XDG_CACHE_HOME (or ~/.cache)/failure-lens, mode 0700;
    a fresh random 0700 temp folder where that cannot be had (no home, not ours, unsafe permissions)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "failure-lens"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(base)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(base, 0o700)  # ours, but made with a looser umask earlier
        _check_private(base)
        return base
    except OSError:
        return Path(tempfile.mkdtemp(prefix="failure-lens-"))  # unpredictable name, 0700


def _check_private(path: Path) -> None:
    """A real folder (no symlink) owned by this user that no one else may write into or read."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} is not a private folder of this user")


def _holds(folder: Path, content: dict[str, bytes]) -> bool:
    """True when `folder` is private and holds exactly `content` (regular files, byte for byte)."""
    try:
        _check_private(folder)
        names = {p.name for p in folder.iterdir()}
        return names == set(content) and all(
            stat.S_ISREG(os.lstat(folder / n).st_mode) and (folder / n).read_bytes() == data
            for n, data in content.items())
    except OSError:
        return False


def build_folder(parent: Path) -> Path:
    """`parent/failure-lens-graph-<hash>` with index.html and vis-network.min.js, written atomically and checked
    byte for byte before it is used (a folder with other content is replaced)."""
    content = {"index.html": _page_text().encode("utf-8"), "vis-network.min.js": render.vis_js_path().read_bytes()}
    digest = hashlib.sha256(b"".join(content.values())).hexdigest()[:16]
    folder = parent / f"failure-lens-graph-{digest}"
    for _ in range(3):
        if _holds(folder, content):
            return folder
        if os.path.lexists(folder):  # planted, damaged or half-deleted: replace it
            (folder.unlink if folder.is_symlink() or not folder.is_dir() else lambda: shutil.rmtree(folder))()
        tmp = Path(tempfile.mkdtemp(prefix=".failure-lens-graph-", dir=parent))
        for name, data in content.items():
            (tmp / name).write_bytes(data)
        try:
            os.replace(tmp, folder)  # another process may have won the race: its folder is checked next round
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    if not _holds(folder, content):
        raise RuntimeError(f"cannot prepare the graph component's files in {folder}")
    return folder


@lru_cache(maxsize=1)
def _component() -> Callable[..., Any]:
    return components.declare_component("failure_lens_graph", path=str(build_folder(private_root())))


def live_graph(data: dict, height: int, key: str, present: bool = False) -> Optional[str]:
    """Draw `data` (from `render.graph_data`) at most `height` px tall (less on a short window; in presentation
    mode it ends on the first screen and its labels grow with the window); returns the id of the node last
    clicked, or None."""
    revision = hashlib.sha1(repr((data["nodes"], data["edges"])).encode()).hexdigest()[:12]
    return _component()(data=data, height=height, present=present, revision=revision, key=key, default=None)
