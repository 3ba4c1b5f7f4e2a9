"""Which file is which: every input and output of a command is resolved (links included) and
checked before any work; an output that is an input, or is not a regular file, is refused, and
`check_writable` is the pre-flight check of a new output (its folder, its name, free space).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from charrnn.errors import CharRNNError
from charrnn.plumbing.terminal import shown

TEMP_SUFFIX = ".tmp"
TEMP_EXTRA = len(".." + "-" + "12345678" + TEMP_SUFFIX) + 7  # '.NAME.PID-XXXXXXXX.tmp', pid <= 7
DEFAULT_NAME_MAX = 255

PathLike = str | os.PathLike
_FD_NAME = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")
_STREAM_NAMES = {"-": 1, "/dev/stdout": 1, "/dev/stderr": 2}


def reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return (getattr(error, "strerror", None) or text or type(error).__name__)[:120]


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "pipe (FIFO)"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "regular file"


def status(path: PathLike, follow: bool = True) -> os.stat_result | None:
    """The file's status; None when there is nothing there (or it cannot be looked at)."""
    try:
        return os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return None


def same_file(a: PathLike | None, b: PathLike | None) -> bool:
    """Whether two names are one file: the same path once links are resolved, or one inode."""
    if a is None or b is None:
        return False
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
    except (OSError, ValueError):
        return False
    first, second = status(a), status(b)
    if first is None or second is None or stat.S_ISCHR(first.st_mode):
        return False  # a terminal or /dev/null may be read and written at once
    return (first.st_ino, first.st_dev) == (second.st_ino, second.st_dev)


@dataclass(frozen=True)
class Output:
    """A file a command will write: what to call it in messages, and what the user can do."""

    path: Path
    what: str  # "checkpoint", "the metrics log", "--plot"
    hint: str  # "choose another --out or free the path"
    derived: bool = False  # a name charrnn made up: a symbolic link there is never followed
    instead: str = ""  # what to do when it is an input: "pass another --out" (default: hint)


def _outputs(outputs) -> list[Output]:
    if isinstance(outputs, Mapping):
        outputs = [Output(Path(path), label, f"choose another {label}")
                   for label, path in outputs.items() if path is not None]
    return [item for item in outputs if item is not None and item.path is not None]


def check_outputs(inputs: Mapping[str, PathLike | None], outputs, *,
                  streams: bool = False) -> None:
    """Refuse, before any work, an output that is one of the inputs or is no regular file.

    inputs: {label: path}, e.g. {"--checkpoint": "m.npz", "the corpus": "names.txt"}; outputs:
    {label: path} or Output records. None paths are skipped. streams: an output may be a stream
    (`-`, /dev/stdout, a FIFO or a character device), written as one and never replaced.
    """
    items = _outputs(outputs)
    sources = [(label, path) for label, path in inputs.items() if path is not None]
    for item in items:
        if streams and is_stream(item.path):
            continue
        check_target(item)
        for label, source in sources:
            if same_file(item.path, source):
                same = "is" if os.fspath(item.path) == os.fspath(source) else "is the same file as"
                raise CharRNNError(f"{item.what} {item.path} {same} {label} {source}; charrnn "
                                   f"never writes over one of its inputs: "
                                   f"{item.instead or item.hint}")
    for first, second in combinations(items, 2):
        if same_file(first.path, second.path):
            raise CharRNNError(f"{first.what} and {second.what} would both be written to "
                               f"{second.path}; {second.hint}")


def check_target(item: Output, name: PathLike | None = None) -> None:
    """An existing output must be a regular file (and, at a derived name, not a link).

    name: how to call it in messages, when item.path is its resolved form."""
    name = item.path if name is None else name
    try:
        found = os.stat(item.path, follow_symlinks=not item.derived)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return  # a file where a directory should be: check_writable says so
    except ValueError:
        raise CharRNNError(f"cannot write {item.what} {shown(os.fspath(name))}: it holds a "
                           f"NUL character; {item.hint}") from None
    except OSError as error:
        raise CharRNNError(f"cannot write {item.what} {name}: {reason(error)}; "
                           f"{item.hint}") from None
    if stat.S_ISDIR(found.st_mode):
        raise CharRNNError(f"cannot write {item.what} {name}: Is a directory; {item.hint}")
    if stat.S_ISLNK(found.st_mode):
        raise CharRNNError(f"cannot write {item.what} {name}: it is a symbolic link, and "
                           f"charrnn never follows a link at a name it makes up itself; remove "
                           f"the link, or {item.hint}")
    if not stat.S_ISREG(found.st_mode):
        kind = file_kind(found.st_mode)
        raise CharRNNError(f"cannot write {item.what} {name}: it is a {kind}, not a regular "
                           f"file, and charrnn only ever replaces regular files; {item.hint}")


def check_writable(item: Output, need_bytes: int = 0) -> None:
    """Pre-flight: the directory exists (or is made), the name fits with the temporary suffix,
    and the file system has need_bytes free."""
    path = Path(item.path)
    target = Path(os.path.realpath(path)) if not item.derived else path
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CharRNNError(f"cannot write to {path.parent}: {reason(error)}; "
                           f"{item.hint}") from None
    except ValueError:
        raise CharRNNError(f"cannot write {item.what} {shown(os.fspath(path))}: it holds a NUL "
                           f"character; {item.hint}") from None
    try:
        name_max = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = DEFAULT_NAME_MAX
    length = len(os.fsencode(target.name))
    if length + TEMP_EXTRA > name_max:
        raise CharRNNError(f"cannot write {item.what} {path}: its name is {length} bytes long, "
                           f"and the temporary file written first adds {TEMP_EXTRA}, over this "
                           f"file system's {name_max}; use a name of at most "
                           f"{name_max - TEMP_EXTRA} bytes")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise CharRNNError(f"cannot write {item.what} {path}: {os.strerror(errno.EACCES)} "
                           f"(directory {path.parent}); {item.hint}")
    if need_bytes:
        try:
            free = shutil.disk_usage(target.parent).free
        except OSError:
            return
        if free < need_bytes:
            raise CharRNNError(f"cannot write {item.what} {path}: it needs about "
                               f"{size_text(need_bytes)}, and {path.parent} has "
                               f"{size_text(free)} free; "
                               f"free some space, or {item.hint}")


def size_text(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"




def stream_fd(name: str) -> int | None:
    if name in _STREAM_NAMES:
        return _STREAM_NAMES[name]
    match = _FD_NAME.match(name)
    return int(match.group(1)) if match else None


def is_stream(path: PathLike) -> bool:
    """`-`, /dev/stdout, /dev/fd/N, or an existing FIFO or character device: written as a
    stream, never replaced."""
    if stream_fd(os.fspath(path)) is not None:
        return True
    found = status(path)
    return found is not None and (stat.S_ISCHR(found.st_mode) or stat.S_ISFIFO(found.st_mode))

