"""Every input read once, in bounded memory: `read_once` takes a private, seekable snapshot (in
memory, or an unlinked temporary file when large); pipes and devices are read up to
MAX_STREAM_BYTES; a regular file that changes while it is read is an error.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from charrnn.errors import CharRNNError
from charrnn.plumbing.paths import PathLike, file_kind, reason, size_text, status
from charrnn.plumbing.terminal import shown

CHUNK_BYTES = 1 << 22
IN_MEMORY_BYTES = 1 << 26  # a larger snapshot of an input goes to an unlinked temporary file
MAX_STREAM_BYTES = 1 << 28  # read from a pipe or a device; a larger text belongs in a file


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
        kind = file_kind(status(path).st_mode) if status(path) is not None else "file"
        if error.errno == errno.ENXIO:
            raise CharRNNError(f"{what} {path} is a {kind}, which cannot be read as a file; "
                               f"pass a text file") from None
        raise CharRNNError(f"{what} {path} cannot be read: {reason(error)}; check its "
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
        raise CharRNNError(f"{what} {path} is larger than {size_text(cap)}; {hint}")
    raise CharRNNError(f"{what} {path} is a {file_kind(found.st_mode)} that gave more than "
                       f"{size_text(cap)} without ending; charrnn reads pipes and devices whole "
                       f"into memory, up to {size_text(cap)}: save the text to a file and pass "
                       f"that")


def _changed(path: Path, what: str, before: int, now: int) -> None:
    sizes = f"{before} bytes when opened, {now} now" if now != before else "same size, new time"
    raise CharRNNError(f"{what} {path} changed while it was being read ({sizes}); wait until "
                       f"whatever writes it has finished, then run again")


def read_bytes(path: PathLike, what: str, limit: int | None = None,
               too_large: str = "pass the file you meant") -> bytes:
    """The whole input, read once (see Reading)."""
    return b"".join(Reading(path, what, limit, too_large).chunks())
