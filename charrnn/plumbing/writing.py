"""The one writer of every file charrnn writes: a temporary file in the same directory, fsync,
os.replace, then an fsync of the directory. A failed or interrupted write leaves the previous file
byte-identical; a kill leaves at most `.NAME.PID-XXXXXXXX.tmp` beside it, which
`remove_stale_temporaries` deletes at the next start. `write_output` writes what a user asked for
with --output: a file atomically, a stream (`-`, a FIFO, /dev/null) as a stream, never replaced.
`output_lock`: one writer per output, and no lock file left behind.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from charrnn.errors import CharRNNError
from charrnn.plumbing.paths import (
    TEMP_SUFFIX,
    Output,
    PathLike,
    check_target,
    file_kind,
    is_stream,
    reason,
    status,
    stream_fd,
)
from charrnn.plumbing.portability import (
    O_CLOEXEC,
    O_NOFOLLOW,
    process_alive,
    set_mode,
    try_lock,
)

_TEMP_PID = re.compile(r"\.(\d+)(?:-[0-9a-f]+)?" + re.escape(TEMP_SUFFIX) + "$")


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
        existing = status(target, follow=False)
        if existing is not None:
            check_target(Output(target, what, hint, derived=True), shown_path)
        mode = stat.S_IMODE(existing.st_mode) if existing is not None else _default_mode()
        temporary = temporary_name(target)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     0o600)
        try:
            set_mode(fd, temporary, mode)  # mkstemp's 0600 would hide the file from others
        finally:
            os.close(fd)
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        raise CharRNNError(f"cannot write {what} {shown_path}: {reason(error)}; "
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
        raise CharRNNError(f"cannot write {what} {shown_path}: {reason(error)}; "
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


def write_output(path: PathLike, text: str, what: str = "--output",
                 hint: str = "choose another --output") -> None:
    """Text the user asked for at path: a stream written as one, a file replaced atomically."""
    name = os.fspath(path)
    fd = stream_fd(name)
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
        raise CharRNNError(f"cannot write {what} {name}: {reason(error)}; {hint}") from None
    atomic_write(path, data, what, hint)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def writer_alive(name: str) -> bool:
    """Whether the process that names a temporary file (.NAME.PID-XXXX.tmp) still runs."""
    match = _TEMP_PID.search(name)
    if match is None:
        return True  # not named by us: another program's, to be left alone
    return process_alive(int(match.group(1)))


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
        found = status(stale, follow=False)
        if found is None or stat.S_ISDIR(found.st_mode):
            continue
        if only_dead and writer_alive(stale.name):
            continue
        remove_quietly(stale)
        removed.append(stale)
    return removed




@contextlib.contextmanager
def output_lock(out: PathLike, busy: str, hint: str = "choose another --out") -> Iterator[None]:
    """An exclusive lock beside out (`.NAME.lock`), so two runs never write one file.

    Two names for one file (links) take one lock. The lock file is removed when the block ends,
    unless it was there before and is not empty (then it is someone else's file). Where the
    system has no file lock (see portability.try_lock), the block runs unlocked.
    """
    out = Path(out)
    target = Path(os.path.realpath(out))
    lock_file = target.with_name(f".{target.name}.lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CharRNNError(f"cannot write to {out.parent}: {reason(error)}; {hint}") from None
    flags = os.O_RDWR | O_NOFOLLOW | O_CLOEXEC
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
            raise CharRNNError(f"cannot write to {out.parent}: {reason(error)}; "
                               f"{hint}") from None
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode):
            os.close(fd)
            raise CharRNNError(f"cannot lock {out}: {lock_file} is a {file_kind(held.st_mode)}; "
                               f"remove it")
        if try_lock(fd) is False:
            os.close(fd)
            raise CharRNNError(busy)
        now = status(lock_file, follow=False)
        if now is None or (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev):
            os.close(fd)  # the run that held it removed it as it ended: lock the new one
            continue
        break
    try:
        yield
    finally:
        try:
            ours = created or os.fstat(fd).st_size == 0
            now = status(lock_file, follow=False)
            if ours and now is not None and now.st_ino == held.st_ino:
                os.unlink(lock_file)  # while still locked, so no one locks a removed file
        except OSError:
            pass
        os.close(fd)
