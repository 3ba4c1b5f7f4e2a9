"""Encode a corpus file to indices, reading it once, and cache the encoding in a per-user folder.

The file is read once into a private snapshot (charrnn.safe_io.read_once: pipes and devices up
to a cap, a regular file that changes while it is read is an error), which is then decoded in
chunks (an incremental decoder), twice: the first pass collects the vocabulary, the second
writes each chunk's indices into a `.npy` file in the per-user cache folder (cache_directory():
~/.cache/charrnn by default, never beside the user's files), which training then reads
memory-mapped. The key covers the file's size, modification and change times and inode, the
encoding and the data mode, so an edited corpus is encoded anew (and its stale encodings
pruned); a second run starts without reading the corpus at all. A cache is only ever created
where no file is, and written atomically; a file at its name that is not a valid cache is left
alone (the corpus is then encoded in memory).
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.plumbing.paths import TEMP_SUFFIX, file_kind
from charrnn.plumbing.reading import Reading, Snapshot, read_once
from charrnn.plumbing.writing import atomic_write, remove_quietly, replacing, writer_alive
from charrnn.vocab import BOUNDARY, MAX_VOCAB_SIZE, Vocabulary, code_points

CACHE_VERSION = 2
CHUNK_BYTES = 1 << 22
IN_MEMORY_BYTES = 1 << 25  # encoded corpora up to 32 MB are read into memory: no per-batch
# memory-map overhead, and no memory saving worth having
MAX_SCAN_BYTES = 1 << 30  # a summary that needs one pass over a corpus gives up past this
MISSING = "check the path (data.corpus or --corpus)"


def _missing(what: str) -> str:
    """The hint for a file that is not there: the options that name it, for the corpus only."""
    return MISSING if what == "corpus" else "check the path"


def normalise_lines(text: str) -> str:
    """Lines mode: CRLF and CR line ends become LF, so '\\r' never enters a name."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decoder(encoding: str, errors: str, path: Path, what: str):
    try:
        if not codecs.lookup(encoding)._is_text_encoding:  # rot13, base64: not bytes to text
            raise LookupError(encoding)
        return codecs.getincrementaldecoder(encoding)(errors)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise CharRNNError(f"{what} {path}: unknown encoding {encoding!r}; use e.g. utf-8 or "
                           f"latin-1") from None


def scan_text(path: str | Path, encoding: str = "utf-8", errors: str = "strict",
              lines: bool = False, what: str = "corpus",
              max_bytes: int = MAX_SCAN_BYTES) -> Iterator[str]:
    """A regular file's text, decoded chunk by chunk as it is read, for commands that need only
    a little of a corpus or one pass over it: memory is one chunk, and a caller that stops early
    reads no further. A pipe or device is never opened (its reader could wait forever for a
    writer): a CharRNNError says so."""
    path = Path(path)
    _decoder(encoding, errors, path, what)
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        found = None  # Reading says what is wrong
    if found is not None and not (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)):
        raise CharRNNError(f"{what} {path} is a {file_kind(found.st_mode)}, not a file; it is "
                           f"not read for this")
    reading = Reading(path, what, max_bytes, "it is not read for this", _missing(what))
    try:
        yield from text_chunks(reading, encoding, errors, lines, what)
    finally:
        reading.close()


def text_chunks(source: Path | Snapshot | Reading, encoding: str, errors: str, lines: bool,
                what: str = "corpus") -> Iterator[str]:
    """The text of a file (read once, one chunk in memory: see safe_io.Reading) or of a
    snapshot, decoded chunk by chunk; lines mode turns CRLF and CR into LF."""
    if not isinstance(source, (Snapshot, Reading)):
        _decoder(encoding, errors, Path(source), what)  # an unknown encoding before any read
        reading = Reading(source, what, missing=_missing(what))
        try:
            yield from text_chunks(reading, encoding, errors, lines, what)
        finally:
            reading.close()
        return
    path = source.path
    decoder = _decoder(encoding, errors, path, what)
    consumed, newlines, held_cr = 0, 0, ""
    chunks = source.chunks(CHUNK_BYTES)
    while True:
        raw = next(chunks, b"")
        final = not raw
        pending = decoder.getstate()[0] if hasattr(decoder, "getstate") else b""
        try:
            text = decoder.decode(raw, final=final)
        except UnicodeDecodeError as error:
            offset = consumed - len(pending) + error.start
            line = newlines + (pending + raw).count(b"\n", 0, error.start) + 1
            raise CharRNNError(f"{what} {path} is not valid {encoding}: byte offset {offset} "
                               f"(line {line}) {error.reason}; re-save it as {encoding}, or "
                               f"pass --encoding, or set data.errors: replace") from None
        except UnicodeError as error:  # codecs such as punycode give no offset
            reason = str(error).replace("\n", "\\n")[:200]
            raise CharRNNError(f"{what} {path} cannot be decoded as {encoding}: {reason}; "
                               f"pass another --encoding, or set data.errors: "
                               f"replace") from None
        consumed += len(raw)
        newlines += raw.count(b"\n")
        if lines:
            text = held_cr + text
            held_cr = "" if final or not text.endswith("\r") else "\r"
            if held_cr:
                text = text[:-1]  # its LF may open the next chunk
            text = normalise_lines(text)
        if text:
            yield text
        if final:
            return


def cache_directory() -> Path:
    """Per-user cache folder: $CHARRNN_CACHE_DIR, else $XDG_CACHE_HOME/charrnn, else
    ~/.cache/charrnn. Deleting it is always safe (`rm -r ~/.cache/charrnn`)."""
    explicit = os.environ.get("CHARRNN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "charrnn"


def _corpus_prefix(path: Path) -> str:
    """Names every cached encoding of one corpus file by its resolved path."""
    where = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{path.name[:40]}-{where[:16]}"


def cache_path(path: Path, encoding: str, errors: str, mode: str,
               status: os.stat_result | None = None) -> Path | None:
    """Where the corpus's own encoding is cached (None if the file cannot be looked at or is no
    regular file: a pipe's text differs every time); the vocabulary sits beside it with the
    suffix .vocab.npy. The key covers the file's size, times and inode, so an edited corpus gets
    a new entry (and the old one is pruned)."""
    try:
        status = status or path.stat()
        prefix = _corpus_prefix(path)
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    if not stat.S_ISREG(status.st_mode) or status.st_size == 0:
        return None
    key = hashlib.sha256(repr((CACHE_VERSION, status.st_size, status.st_mtime_ns,
                               status.st_ctime_ns, status.st_ino, encoding, errors,
                               mode)).encode())
    return cache_directory() / f"{prefix}.{key.hexdigest()[:16]}.npy"


def _vocab_path(cached: Path) -> Path:
    return cached.with_name(cached.name[: -len(".npy")] + ".vocab.npy")


def encode_file(path: str | Path, mode: str, vocab: Vocabulary | None = None,
                encoding: str = "utf-8", errors: str = "strict",
                use_cache: bool = True) -> tuple[Vocabulary, np.ndarray]:
    """(vocabulary, indices) of the file. The corpus's own encoding comes from the cache when
    there is one (nothing is read), else the file is read once and encoded in two chunked passes
    over that snapshot, and cached. A given vocabulary is kept: the indices are mapped onto it,
    and characters outside it are an error that lists them."""
    path = Path(path)
    where = f"corpus {path}"
    _decoder(encoding, errors, path, "corpus")  # an unknown encoding before any read
    cached = cache_path(path, encoding, errors, mode) if use_cache else None
    if cached is not None:
        remove_dead_temporaries(cached)
    own = _read_cache(cached)
    if own is None:
        with read_once(path, "corpus", missing=MISSING) as snapshot:
            cached = (cache_path(path, encoding, errors, mode, snapshot.status)
                      if use_cache and snapshot.regular else None)
            own = _encode(snapshot, mode, encoding, errors, cached, where)
        if cached is not None and _regular(cached):
            clear_cache(path, keep=cached)  # an edited corpus leaves no stale encodings
    own_vocab, tokens = own
    if vocab is None or vocab == own_vocab:
        return own_vocab, tokens
    unknown = vocab.unknown(own_vocab.chars)
    if unknown:
        vocab.encode("".join(unknown), where)  # raises, listing them
    onto_given = np.searchsorted(vocab.codes, own_vocab.codes).astype(vocab.dtype)
    return vocab, onto_given[tokens]


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)  # a link there is not ours: never followed
    except (OSError, ValueError):
        return False


def _read_cache(cached: Path | None) -> tuple[Vocabulary, np.ndarray] | None:
    if cached is None or not (_regular(cached) and _regular(_vocab_path(cached))):
        return None
    try:
        vocab = Vocabulary(np.load(_vocab_path(cached), allow_pickle=False))
        tokens = np.load(cached, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, CharRNNError):
        return None  # damaged or not ours: encode anew
    if tokens.ndim != 1 or tokens.dtype != vocab.dtype or len(tokens) == 0:
        return None
    if int(tokens.max()) >= len(vocab):  # every index must name a character
        return None
    return vocab, _small_in_memory(tokens)


def _encode(snapshot: Snapshot, mode: str, encoding: str, errors: str, cached: Path | None,
            where: str) -> tuple[Vocabulary, np.ndarray]:
    """First pass: the vocabulary and length; second pass: the indices, into the cache."""
    lines = mode == "lines"
    chunks = lambda: text_chunks(snapshot, encoding, errors, lines)  # noqa: E731
    seen = np.zeros(MAX_VOCAB_SIZE, dtype=bool)
    length = 0
    for text in chunks():
        seen[code_points(text)] = True  # O(n): no sort of each chunk
        length += len(text)
    if length == 0:
        raise CharRNNError(f"{where} is empty; give it some text")
    if lines:
        seen[code_points(BOUNDARY)] = True
    vocab = Vocabulary(np.flatnonzero(seen).astype(np.uint32))
    return vocab, _write_indices(chunks, vocab, length, cached, where)


def _fill(tokens: np.ndarray, chunks: Iterator[str], vocab: Vocabulary, where: str) -> None:
    position = 0
    for text in chunks:
        encoded = vocab.encode(text, where)
        tokens[position: position + len(encoded)] = encoded
        position += len(encoded)


def _absent(path: Path) -> bool:
    """A cache file is only created where nothing is: a file there that is not ours is kept."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return False


def remove_dead_temporaries(cached: Path) -> list[Path]:
    """Delete the cache temporaries of this corpus whose writing process is gone (a killed run
    left them); another run's, still being written, stay."""
    removed = []
    prefix = glob.escape(cached.name.rsplit(".", 2)[0])  # the corpus's prefix, any key
    try:
        candidates = list(cached.parent.glob(f"*{prefix}.*{TEMP_SUFFIX}"))
    except (OSError, ValueError):
        return removed
    for stale in candidates:
        if _regular(stale) and not writer_alive(stale.name):
            remove_quietly(stale)
            removed.append(stale)
    return removed


def _write_indices(chunks, vocab: Vocabulary, length: int, cached: Path | None,
                   where: str) -> np.ndarray:
    """Encode chunk by chunk into the cache (atomically) or, failing that, into memory."""
    if cached is not None and _absent(cached) and _absent(_vocab_path(cached)):
        try:
            with replacing(cached, "cache", follow=False) as temporary:
                tokens = np.lib.format.open_memmap(temporary, mode="w+", dtype=vocab.dtype,
                                                   shape=(length,))
                _fill(tokens, chunks(), vocab, where)
                tokens.flush()
                del tokens
            try:
                atomic_write(_vocab_path(cached), lambda handle: np.save(handle, vocab.codes),
                             "cache", follow=False)
            except CharRNNError:
                remove_quietly(cached)  # the indices alone are no cache
                raise
            return _small_in_memory(np.load(cached, mmap_mode="r", allow_pickle=False))
        except (CharRNNError, OSError, ValueError):
            pass  # no cache (a read-only directory, a full disk): encode in memory
    tokens = np.empty(length, dtype=vocab.dtype)
    _fill(tokens, chunks(), vocab, where)
    return tokens


def _small_in_memory(tokens: np.ndarray) -> np.ndarray:
    return np.array(tokens) if tokens.nbytes <= IN_MEMORY_BYTES else tokens


def clear_cache(path: str | Path, keep: Path | None = None) -> list[Path]:
    """Remove every cached encoding of the corpus at path (but keep's); return what was removed."""
    path = Path(path)
    removed = []
    folder = cache_directory()
    if not folder.is_dir():
        return removed
    for stale in folder.glob(f"{glob.escape(_corpus_prefix(path))}.*.npy"):
        if keep is not None and stale.name in (keep.name, _vocab_path(keep).name):
            continue
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed
