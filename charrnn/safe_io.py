"""Safe file handling: what a command reads and writes is checked before any work, every file is
written whole or not at all, and every input is read once, in bounded memory.

- `check_outputs` resolves the inputs and outputs of a command (symbolic and hard links
  included) and refuses an output that is one of the inputs, or that exists and is not a regular
  file (a device, a FIFO, a socket, a directory).
- `replacing` / `atomic_write` are the one writer of every file: a temporary file in the same
  directory, fsync, os.replace, then an fsync of the directory. A failed or interrupted write
  leaves the previous file byte-identical; a kill leaves at most `.NAME.PID-XXXXXXXX.tmp` beside
  it, which `remove_stale_temporaries` deletes at the next start.
- `write_output` writes what a user asked for with --output: a file atomically, and a stream
  (`-`, /dev/stdout, a FIFO, a character device such as /dev/null) as a stream, never replaced.
- `check_writable` is the pre-flight check of an output: its directory, the length of its name
  with the temporary suffix, and the free space a first write needs.
- `read_once` reads an input once into a private, seekable snapshot: in memory, or in an
  unlinked temporary file when large. Pipes, process substitution and devices are read up to
  MAX_STREAM_BYTES; a regular file that changes while it is read is an error.
- `output_lock`: one writer per output, and no lock file left behind.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import BinaryIO

from charrnn.errors import CharRNNError

TEMP_SUFFIX = ".tmp"
TEMP_EXTRA = len(".." + "-" + "12345678" + TEMP_SUFFIX) + 7  # '.NAME.PID-XXXXXXXX.tmp', pid <= 7
CHUNK_BYTES = 1 << 22
IN_MEMORY_BYTES = 1 << 26  # a larger snapshot of an input goes to an unlinked temporary file
MAX_STREAM_BYTES = 1 << 28  # read from a pipe or a device; a larger text belongs in a file
DEFAULT_NAME_MAX = 255

PathLike = str | os.PathLike
_FD_NAME = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")
_STREAM_NAMES = {"-": 1, "/dev/stdout": 1, "/dev/stderr": 2}
_TEMP_PID = re.compile(r"\.(\d+)(?:-[0-9a-f]+)?" + re.escape(TEMP_SUFFIX) + "$")


def shown(value, limit: int = 80) -> str:
    """repr(value) cut to limit characters, for error messages that quote what a user gave."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    try:
        text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    except (ValueError, RecursionError):  # repr itself refuses: deep nesting
        text = f"a {type(value).__name__} too deep to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return (getattr(error, "strerror", None) or text or type(error).__name__)[:120]


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "pipe (FIFO)"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link")):
        if test(mode):
            return name
    return "regular file"


def _stat(path: PathLike, follow: bool = True) -> os.stat_result | None:
    """The file's status; None when there is nothing there (or it cannot be looked at)."""
    try:
        return os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):
        return None


# --- which file is which -------------------------------------------------------------------------

def same_file(a: PathLike | None, b: PathLike | None) -> bool:
    """Whether two names are one file: the same path once links are resolved, or one inode."""
    if a is None or b is None:
        return False
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
    except (OSError, ValueError):
        return False
    first, second = _stat(a), _stat(b)
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
        raise CharRNNError(f"cannot write {item.what} {name}: {_reason(error)}; "
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
        raise CharRNNError(f"cannot write to {path.parent}: {_reason(error)}; "
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
                               f"{_size(need_bytes)}, and {path.parent} has {_size(free)} free; "
                               f"free some space, or {item.hint}")


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


# --- writing -------------------------------------------------------------------------------------

def _default_mode() -> int:
    """The mode a file created directly would get: 0666 less the umask (mkstemp's is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; best effort (the file is already in place)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(name: PathLike) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


@contextlib.contextmanager
def replacing(path: PathLike, what: str = "file", hint: str = "choose another path", *,
              follow: bool = True) -> Iterator[Path]:
    """Yield an empty temporary file beside path; when the block ends, it replaces path.

    The block writes the temporary file (by name: np.savez, a memory map, open(..., "wb")).
    Then: fsync, os.replace, fsync of the directory. If anything fails, the temporary file is
    removed and the file at path is byte-identical to what it was. follow: a symbolic link at
    path is followed to the file it names (for names the user gave); otherwise refused.
    """
    shown_path = path
    path = Path(path)
    try:
        target = Path(os.path.realpath(path)) if follow else path
        target.parent.mkdir(parents=True, exist_ok=True)
        existing = _stat(target, follow=False)
        if existing is not None:
            check_target(Output(target, what, hint, derived=True), shown_path)
        mode = stat.S_IMODE(existing.st_mode) if existing is not None else _default_mode()
        temporary = temporary_name(target)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.fchmod(fd, mode)  # mkstemp's 0600 would hide the file from other users
        finally:
            os.close(fd)
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        raise CharRNNError(f"cannot write {what} {shown_path}: {_reason(error)}; "
                           f"{hint}") from None
    try:
        yield temporary
        _fsync_path(temporary)
        os.replace(temporary, target)
    except OSError as error:
        remove_quietly(temporary)
        noun = what.removeprefix("the ")
        kept = (f"the previous {noun} there is unchanged" if existing is not None
                else "nothing was left there")
        raise CharRNNError(f"cannot write {what} {shown_path}: {_reason(error)}; "
                           f"{kept}") from None
    except BaseException:
        remove_quietly(temporary)
        raise
    _fsync_directory(target.parent)


def atomic_write(path: PathLike, data: bytes | str | Callable[[BinaryIO], object],
                 what: str = "file", hint: str = "choose another path", *,
                 follow: bool = True) -> Path:
    """Write bytes, text (as UTF-8) or whatever data(handle) writes, atomically (`replacing`)."""
    with replacing(path, what, hint, follow=follow) as temporary:
        with open(temporary, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def _stream_fd(name: str) -> int | None:
    if name in _STREAM_NAMES:
        return _STREAM_NAMES[name]
    match = _FD_NAME.match(name)
    return int(match.group(1)) if match else None


def is_stream(path: PathLike) -> bool:
    """`-`, /dev/stdout, /dev/fd/N, or an existing FIFO or character device: written as a
    stream, never replaced."""
    if _stream_fd(os.fspath(path)) is not None:
        return True
    found = _stat(path)
    return found is not None and (stat.S_ISCHR(found.st_mode) or stat.S_ISFIFO(found.st_mode))


def write_output(path: PathLike, text: str, what: str = "--output",
                 hint: str = "choose another --output") -> None:
    """Text the user asked for at path: a stream written as one, a file replaced atomically."""
    name = os.fspath(path)
    fd = _stream_fd(name)
    try:
        if fd in (1, 2):
            stream = sys.stdout if fd == 1 else sys.stderr
            stream.write(text)
            stream.flush()
            return
        data = text.encode("utf-8")
        if fd is not None:
            _write_all(fd, data)
            return
        if is_stream(name):
            with open(name, "ab") as handle:  # a device or FIFO: never created, never replaced
                handle.write(data)
            return
    except OSError as error:
        raise CharRNNError(f"cannot write {what} {name}: {_reason(error)}; {hint}") from None
    atomic_write(path, data, what, hint)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- stale temporaries ---------------------------------------------------------------------------

def writer_alive(name: str) -> bool:
    """Whether the process that names a temporary file (.NAME.PID-XXXX.tmp) still runs."""
    match = _TEMP_PID.search(name)
    if match is None:
        return True  # not named by us: another program's, to be left alone
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temporaries(path: PathLike, *, only_dead: bool = False) -> list[Path]:
    """Delete the temporary files a killed or failed write left beside path; return them.

    Under the output's lock every one is stale; without it (caches), only those whose writing
    process is gone (only_dead)."""
    path = Path(path)
    removed = []
    try:
        if not path.parent.is_dir():
            return removed
        # escaped: in 'run[1].npz' the brackets are part of the name, not a pattern
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"))
    except (OSError, ValueError):
        return removed
    for stale in candidates:
        found = _stat(stale, follow=False)
        if found is None or stat.S_ISDIR(found.st_mode):
            continue
        if only_dead and writer_alive(stale.name):
            continue
        remove_quietly(stale)
        removed.append(stale)
    return removed


# --- reading -------------------------------------------------------------------------------------

def open_input(path: PathLike, what: str, missing: str = "check the path") -> BinaryIO:
    """The file opened for reading, or a CharRNNError that says what is wrong with the path."""
    try:
        if os.path.isdir(path):
            raise IsADirectoryError
        return open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise CharRNNError(f"{what} {path} not found; {missing}") from None
    except IsADirectoryError:
        raise CharRNNError(f"{what} {path} is a directory; pass a text file") from None
    except ValueError:  # a NUL byte in the path
        raise CharRNNError(f"{what} path {shown(os.fspath(path))} holds a NUL character; pass a "
                           f"real file name") from None
    except OSError as error:
        kind = file_kind(_stat(path).st_mode) if _stat(path) is not None else "file"
        if error.errno == errno.ENXIO:
            raise CharRNNError(f"{what} {path} is a {kind}, which cannot be read as a file; "
                               f"pass a text file") from None
        raise CharRNNError(f"{what} {path} cannot be read: {_reason(error)}; check its "
                           f"permissions") from None


class Reading:
    """An input being read once, front to back, one chunk in memory at a time.

    A pipe, process substitution or device (anything without a size) may give at most
    MAX_STREAM_BYTES (or limit); a regular file is read whole (or up to limit), and one that
    grows, shrinks or is rewritten while it is read is a CharRNNError once that shows.
    """

    def __init__(self, path: PathLike, what: str = "corpus", limit: int | None = None,
                 too_large: str = "pass the file you meant", missing: str = "check the path"):
        self.path, self.what, self.too_large = Path(path), what, too_large
        self.handle = open_input(self.path, what, missing)
        self.status = os.fstat(self.handle.fileno())
        self.regular = stat.S_ISREG(self.status.st_mode) and self.status.st_size > 0
        self.limit = limit if limit is not None else (None if self.regular else MAX_STREAM_BYTES)

    def chunks(self, size: int | None = None) -> Iterator[bytes]:
        """The bytes, chunk by chunk; the file is closed at the end (or when abandoned)."""
        before, total = self.status, 0
        with self.handle:
            while True:
                raw = _read_chunk(self.handle, size or CHUNK_BYTES)
                if not raw:
                    break
                total += len(raw)
                if self.limit is not None and total > self.limit:
                    _too_large(self.path, self.what, before, self.regular, self.limit,
                               self.too_large)
                if self.regular and total > before.st_size:
                    _changed(self.path, self.what, before.st_size, total)
                yield raw
            if self.regular:
                after = os.fstat(self.handle.fileno())
                if (total != before.st_size or after.st_size != before.st_size
                        or after.st_mtime_ns != before.st_mtime_ns):
                    _changed(self.path, self.what, before.st_size, max(after.st_size, total))

    def close(self) -> None:
        self.handle.close()


@dataclass
class Snapshot:
    """An input read once: its bytes in a private seekable file, and what it was when opened."""

    path: Path
    file: BinaryIO
    size: int
    status: os.stat_result
    regular: bool  # a regular file whose size was known: its status keys a cache

    def chunks(self, size: int | None = None) -> Iterator[bytes]:
        self.file.seek(0)
        while True:
            raw = self.file.read(size or CHUNK_BYTES)
            if not raw:
                return
            yield raw

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()


def _read_chunk(handle: BinaryIO, size: int) -> bytes:
    return handle.read(size)


def _spill(path: Path) -> BinaryIO:
    """An unlinked temporary file, beside the input if its directory allows (a kill leaves
    nothing), else in the system's temporary directory."""
    with contextlib.suppress(OSError):
        return tempfile.TemporaryFile(dir=path.parent)
    return tempfile.TemporaryFile()


@contextlib.contextmanager
def read_once(path: PathLike, what: str = "corpus", limit: int | None = None,
              too_large: str = "pass the file you meant",
              missing: str = "check the path") -> Iterator[Snapshot]:
    """Read path once, whole (see Reading), into a private snapshot that later passes can read
    again: in memory, or past IN_MEMORY_BYTES in an unlinked temporary file."""
    reading = Reading(path, what, limit, too_large, missing)
    spill: BinaryIO = io.BytesIO()
    try:
        if reading.regular and reading.status.st_size > IN_MEMORY_BYTES:
            spill = _spill(reading.path)
        total = 0
        for raw in reading.chunks():
            total += len(raw)
            if isinstance(spill, io.BytesIO) and total > IN_MEMORY_BYTES:
                spilled = _spill(reading.path)
                spilled.write(spill.getbuffer())
                spill = spilled
            spill.write(raw)
        yield Snapshot(reading.path, spill, total, reading.status, reading.regular)
    finally:
        reading.close()
        spill.close()


def _too_large(path: Path, what: str, found: os.stat_result, regular: bool, cap: int,
               hint: str) -> None:
    if regular:
        raise CharRNNError(f"{what} {path} is larger than {_size(cap)}; {hint}")
    raise CharRNNError(f"{what} {path} is a {file_kind(found.st_mode)} that gave more than "
                       f"{_size(cap)} without ending; charrnn reads pipes and devices whole into "
                       f"memory, up to {_size(cap)}: save the text to a file and pass that")


def _changed(path: Path, what: str, before: int, now: int) -> None:
    sizes = f"{before} bytes when opened, {now} now" if now != before else "same size, new time"
    raise CharRNNError(f"{what} {path} changed while it was being read ({sizes}); wait until "
                       f"whatever writes it has finished, then run again")


def read_bytes(path: PathLike, what: str, limit: int | None = None,
               too_large: str = "pass the file you meant") -> bytes:
    """The whole input, read once (see Reading)."""
    return b"".join(Reading(path, what, limit, too_large).chunks())


# --- one writer per output -----------------------------------------------------------------------

@contextlib.contextmanager
def output_lock(out: PathLike, busy: str, hint: str = "choose another --out") -> Iterator[None]:
    """An exclusive lock beside out (`.NAME.lock`), so two runs never write one file.

    Two names for one file (links) take one lock. The lock file is removed when the block ends,
    unless it was there before and is not empty (then it is someone else's file).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    out = Path(out)
    target = Path(os.path.realpath(out))
    lock_file = target.with_name(f".{target.name}.lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CharRNNError(f"cannot write to {out.parent}: {_reason(error)}; {hint}") from None
    flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    while True:
        created = False
        try:
            try:
                fd = os.open(lock_file, flags | os.O_CREAT | os.O_EXCL, 0o666)
                created = True
            except FileExistsError:
                fd = os.open(lock_file, flags)
        except FileNotFoundError:
            continue  # removed between the two opens by the run that held it: try again
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise CharRNNError(f"cannot lock {out}: {lock_file} is a symbolic link, and "
                                   f"charrnn never follows a link at a name it makes up itself; "
                                   f"remove it") from None
            raise CharRNNError(f"cannot write to {out.parent}: {_reason(error)}; "
                               f"{hint}") from None
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode):
            os.close(fd)
            raise CharRNNError(f"cannot lock {out}: {lock_file} is a {file_kind(held.st_mode)}; "
                               f"remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise CharRNNError(busy) from None
        now = _stat(lock_file, follow=False)
        if now is None or (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev):
            os.close(fd)  # the run that held it removed it as it ended: lock the new one
            continue
        break
    try:
        yield
    finally:
        try:
            ours = created or os.fstat(fd).st_size == 0
            now = _stat(lock_file, follow=False)
            if ours and now is not None and now.st_ino == held.st_ino:
                os.unlink(lock_file)  # while still locked, so no one locks a removed file
        except OSError:
            pass
        os.close(fd)
