"""Files that come from outside: bounded reads of regular files, paths named by data kept inside their folder,
structure limits for parsed data, and atomic writes.

Every reader of a benchmark, attachment, config or model file goes through here, so one set of limits holds
everywhere and each refusal names the limit and a way out:
- only regular files are read (a FIFO would block forever, /dev/zero would never end), checked before opening;
- sizes are checked before reading, and reads stop at the limit even if the file grows meanwhile;
- a path written inside a data file (a benchmark's attachment) may only name a file inside that data file's
  folder: no absolute paths, no `..` out of it, no symlink out of it;
- parsed JSON / YAML is refused when nested deeper than MAX_DEPTH or when its aliases expand past MAX_NODES;
- writes go to a temporary file in the same folder, are fsynced and renamed over the target, so a full disk
  or a crash leaves the old file as it was (never half a file).
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Union

from engine.records import FailureLensError

MiB = 1 << 20
MAX_LINE_CHARS = 64 * MiB  # one JSONL record / CSV row (a 1M-token prompt is ~4 MiB of text)
MAX_ATTACHMENT_BYTES = 64 * MiB  # a file a benchmark record names (GAIA context)
MAX_JSON_BYTES = 256 * MiB  # a whole .json benchmark file (read at once)
MAX_CONFIG_BYTES = 4 * MiB  # config.json of a model, a sweep YAML
MAX_DEPTH = 64  # nesting of parsed JSON / YAML
MAX_NODES = 200_000  # values in one parsed YAML document, aliases counted each time they are used

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def _size(n: int) -> str:
    return f"{n / MiB:,.0f} MiB" if n >= MiB else f"{n:,} bytes"


def regular_file(path: Union[str, Path], what: str) -> os.stat_result:
    """stat of `path` (symlinks followed) if it is a regular file; a clear error otherwise."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FailureLensError(f"{what} not found: {path}. Check the path (relative paths start at the config's "
                               "folder).") from None
    except OSError as e:
        raise FailureLensError(f"cannot read {what} {path} ({e.strerror or e}); check its permissions.") from None
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise FailureLensError(f"{what} {path} is {kind}, not a regular file; point at a plain file.")
    return st


def check_size(path: Union[str, Path], limit: int, what: str) -> int:
    """Size of the regular file `path`; an error naming the limit when it is larger."""
    size = regular_file(path, what).st_size
    if size > limit:
        raise FailureLensError(f"{what} {path} is {_size(size)}, more than the limit of {_size(limit)}; "
                               "split or shorten it.")
    return size


def read_bytes(path: Union[str, Path], limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (also if it grows while being read)."""
    check_size(path, limit, what)
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FailureLensError(f"{what} {path} grew past the limit of {_size(limit)} while being read; "
                               "try again once it is complete.")
    return data


def read_text(path: Union[str, Path], limit: int, what: str) -> str:
    """UTF-8 text (a BOM is dropped) of a regular file of at most `limit` bytes."""
    try:
        return read_bytes(path, limit, what).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FailureLensError(f"{what} {path} is not UTF-8 text; is it a binary file? Save it as UTF-8.") from None


def lines(f: Any, path: Union[str, Path], limit: int = MAX_LINE_CHARS) -> Iterator[tuple[int, str]]:
    """(line number, line) of an open text file; a line longer than `limit` characters is an error, found
    after reading at most `limit` characters of it (iterating a file would read a multi-GB line whole)."""
    n = 0
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        n += 1
        if len(line) > limit:
            raise FailureLensError(f"{path} line {n} is longer than the limit of {limit:,} characters; is it "
                                   "really a text file of one record per line? Shorten or remove that line.")
        yield n, line


def inside(folder: Union[str, Path], name: str, what: str) -> Path:
    """`folder / name` when it stays inside `folder` (after resolving `..` and symlinks); else an error.

    For paths that come from data (a benchmark record naming its attachment), never from the person: a data
    file may only make us read files beside it.
    """
    root = Path(folder).resolve()
    if Path(name).is_absolute() or "\x00" in name:
        raise FailureLensError(f"{what} {name!r} is an absolute path; a data file may only name files in its own "
                               f"folder ({root}). Copy the file there and name it relative to that folder.")
    path = (root / name).resolve()
    if path != root and root not in path.parents:
        raise FailureLensError(f"{what} {name!r} points outside its data folder {root}; a data file may only name "
                               "files in its own folder. Copy the file there and name it relative to that folder.")
    return path


def depth_error(where: str, limit: int = MAX_DEPTH) -> FailureLensError:
    return FailureLensError(f"{where} is nested more than {limit} levels deep; flatten the record.")


def check_depth(value: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """Refuse parsed JSON nested deeper than `limit` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                raise depth_error(where, limit)
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))


def check_yaml_nodes(node: Any, source: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a composed YAML document that nests deeper than `max_depth` (a self-referencing alias nests
    without end) or whose aliases expand to more than `max_nodes` values ("billion laughs"), before anything
    walks it recursively. Walked without recursion; each use of an alias counts again, as a walker would."""
    import yaml

    stack, seen = [(node, 1)], 0
    while stack:
        n, depth = stack.pop()
        seen += 1
        if seen > max_nodes:
            raise FailureLensError(f"{source}: the document expands to more than {max_nodes:,} values (YAML "
                                   "aliases used many times over?); write the values out or use fewer aliases.")
        if depth > max_depth:
            raise FailureLensError(f"{source} line {n.start_mark.line + 1}: nested more than {max_depth} levels "
                                   "deep (or an alias that contains itself); flatten the config.")
        if isinstance(n, yaml.MappingNode):
            stack.extend((c, depth + 1) for pair in n.value for c in pair)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((c, depth + 1) for c in n.value)


def disk_message(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    if e.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    if e.errno == errno.EROFS:
        return "the disk is read-only"
    return e.strerror or str(e)


def check_target(path: Union[str, Path], what: str = "file") -> Path:
    """An output path whose folder exists (checked before long work, so it is not lost at the end)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FailureLensError(f"cannot write {what} {path}: the folder {path.parent} does not exist; create it "
                               "or choose another output path.")
    if path.is_dir():
        raise FailureLensError(f"cannot write {what} {path}: it is a folder; give a file name.")
    return path


def write_atomic(path: Union[str, Path], data: Union[bytes, str], what: str = "file") -> Path:
    """Write `data` to `path` all or nothing: a temporary file beside it, fsynced, then renamed over it."""
    payload = data.encode("utf-8") if isinstance(data, str) else data

    def write(fd: int) -> None:
        view = memoryview(payload)
        while view:  # os.write may write less than asked (and raises ENOSPC when the disk is full)
            view = view[os.write(fd, view):]

    return _atomic(path, write, what)


def write_atomic_text(path: Union[str, Path], writer: Callable[[IO[str]], None], what: str = "file") -> Path:
    """Like `write_atomic`, for text produced piece by piece: `writer(f)` writes UTF-8 text into the temporary
    file (a long graph export never exists as one string)."""
    def write(fd: int) -> None:
        with os.fdopen(os.dup(fd), "w", encoding="utf-8") as f:
            writer(f)

    return _atomic(path, write, what)


def _atomic(path: Union[str, Path], write: Callable[[int], None], what: str) -> Path:
    path = check_target(path, what)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            write(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise FailureLensError(f"cannot write {what} {path}: {disk_message(e)}. Nothing was changed there; free "
                               "space or choose another output path, then try again.") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def no_lone_surrogates(texts: Iterable[tuple[str, str]]) -> None:
    """Refuse text holding lone UTF-16 surrogates (e.g. a JSON "\\ud800"): they cannot be stored or encoded."""
    for where, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise FailureLensError(f"{where} holds a lone surrogate character ({text[e.start]!r} at character "
                                   f"{e.start}), which is not valid text; fix that escape in the file.") from None
