"""Encode a corpus file to indices once, in bounded memory, and cache it beside the corpus.

The file is decoded in chunks (an incremental decoder, so memory does not grow with the corpus),
twice: the first pass collects the vocabulary, the second writes each chunk's indices into a
`.npy` file in the per-user cache folder (cache_directory(): ~/.cache/charrnn by default, never
beside the user's files), which training then reads memory-mapped. The key covers the file's
size and modification time, the encoding and the data mode, so an edited corpus is encoded anew
(and its stale encodings pruned); a second run starts without decoding anything.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.vocab import BOUNDARY, Vocabulary, code_points

CACHE_VERSION = 1
CHUNK_BYTES = 1 << 22
IN_MEMORY_BYTES = 1 << 25  # encoded corpora up to 32 MB are read into memory: no per-batch
# memory-map overhead, and no memory saving worth having


def _open(path: Path, what: str):
    try:
        if path.is_dir():
            raise IsADirectoryError
        return open(path, "rb")
    except FileNotFoundError:
        raise CharRNNError(f"{what} {path} not found; check the path (data.corpus or "
                           f"--corpus)") from None
    except IsADirectoryError:
        raise CharRNNError(f"{what} {path} is a directory; pass a text file") from None
    except OSError as error:
        raise CharRNNError(f"{what} {path} cannot be read: {error.strerror}; check its "
                           f"permissions") from None
    except ValueError:  # a NUL byte in the path
        raise CharRNNError(f"{what} path {str(path)!r} holds a NUL character; pass a real "
                           f"file name") from None


def normalise_lines(text: str) -> str:
    """Lines mode: CRLF and CR line ends become LF, so '\\r' never enters a name."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_chunks(path: Path, encoding: str, errors: str, lines: bool,
                 what: str = "corpus") -> Iterator[str]:
    """The file's text, decoded chunk by chunk; lines mode turns CRLF and CR into LF."""
    try:
        if not codecs.lookup(encoding)._is_text_encoding:  # rot13, base64: not bytes to text
            raise LookupError(encoding)
        decoder = codecs.getincrementaldecoder(encoding)(errors)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise CharRNNError(f"{what} {path}: unknown encoding {encoding!r}; use e.g. utf-8 or "
                           f"latin-1") from None
    consumed, newlines, held_cr = 0, 0, ""
    with _open(path, what) as handle:
        while True:
            raw = handle.read(CHUNK_BYTES)
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
                reason = str(error).replace("\n", "\\n")
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


def cache_path(path: Path, encoding: str, errors: str, mode: str) -> Path | None:
    """Where the corpus's own encoding is cached (None if the file cannot be looked at); the
    vocabulary sits beside it with the suffix .vocab.npy. The key covers the file's size and
    modification time, so an edited corpus gets a new entry (and the old one is pruned)."""
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return None
    key = hashlib.sha256(repr((CACHE_VERSION, stat.st_size, stat.st_mtime_ns, encoding, errors,
                               mode)).encode())
    return cache_directory() / f"{_corpus_prefix(path)}.{key.hexdigest()[:16]}.npy"


def _vocab_path(cached: Path) -> Path:
    return cached.with_name(cached.name[: -len(".npy")] + ".vocab.npy")


def encode_file(path: str | Path, mode: str, vocab: Vocabulary | None = None,
                encoding: str = "utf-8", errors: str = "strict",
                use_cache: bool = True) -> tuple[Vocabulary, np.ndarray]:
    """(vocabulary, indices) of the file. The corpus's own encoding comes from the cache when
    there is one (nothing is decoded), else it is made in two chunked passes and cached. A given
    vocabulary is kept: the indices are mapped onto it, and characters outside it are an error
    that lists them."""
    path = Path(path)
    where = f"corpus {path}"
    cached = cache_path(path, encoding, errors, mode) if use_cache else None
    own = _read_cache(cached)
    if own is None:
        own = _encode(path, mode, encoding, errors, cached, where)
        if cached is not None and cached.exists():
            clear_cache(path, keep=cached)  # an edited corpus leaves no stale encodings
    own_vocab, tokens = own
    if vocab is None or vocab == own_vocab:
        return own_vocab, tokens
    unknown = vocab.unknown(own_vocab.chars)
    if unknown:
        vocab.encode("".join(unknown), where)  # raises, listing them
    onto_given = np.searchsorted(vocab.codes, own_vocab.codes).astype(vocab.dtype)
    return vocab, onto_given[tokens]


def _read_cache(cached: Path | None) -> tuple[Vocabulary, np.ndarray] | None:
    if cached is None or not cached.exists():
        return None
    try:
        vocab = Vocabulary(np.load(_vocab_path(cached), allow_pickle=False))
        tokens = np.load(cached, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, CharRNNError):
        return None  # damaged or half-written: encode anew
    if tokens.ndim != 1 or tokens.dtype != vocab.dtype or len(tokens) == 0:
        return None
    return vocab, _small_in_memory(tokens)


def _encode(path: Path, mode: str, encoding: str, errors: str, cached: Path | None,
            where: str) -> tuple[Vocabulary, np.ndarray]:
    """First pass: the vocabulary and length; second pass: the indices, into the cache."""
    lines = mode == "lines"
    chunks = lambda: text_chunks(path, encoding, errors, lines)  # noqa: E731
    points, length = np.zeros(0, dtype=np.uint32), 0
    for text in chunks():
        points = np.union1d(points, np.unique(code_points(text)))
        length += len(text)
    if length == 0:
        raise CharRNNError(f"{where} is empty; give it some text")
    if lines:
        points = np.union1d(points, code_points(BOUNDARY))
    vocab = Vocabulary(points)
    return vocab, _write_indices(chunks(), vocab, length, cached, where)


def _save_atomically(target: Path, array: np.ndarray) -> None:
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:  # a handle: np.save would append .npy to a name
            np.save(handle, array)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _write_indices(chunks: Iterator[str], vocab: Vocabulary, length: int,
                   cached: Path | None, where: str) -> np.ndarray:
    """Encode chunk by chunk into the cache file (atomically) or, failing that, into memory."""
    temporary = None
    tokens = None
    if cached is not None:
        temporary = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tokens = np.lib.format.open_memmap(temporary, mode="w+", dtype=vocab.dtype,
                                               shape=(length,))
        except OSError:  # a read-only directory: no cache, encode in memory
            temporary = None
    if tokens is None:
        tokens = np.empty(length, dtype=vocab.dtype)
    position = 0
    for text in chunks:
        encoded = vocab.encode(text, where)
        tokens[position: position + len(encoded)] = encoded
        position += len(encoded)
    if temporary is None:
        return tokens
    tokens.flush()
    del tokens
    try:
        _save_atomically(_vocab_path(cached), vocab.codes)
        os.replace(temporary, cached)
    except OSError:
        data = np.load(temporary, allow_pickle=False)
        temporary.unlink(missing_ok=True)
        return data
    return _small_in_memory(np.load(cached, mmap_mode="r", allow_pickle=False))


def _small_in_memory(tokens: np.ndarray) -> np.ndarray:
    return np.array(tokens) if tokens.nbytes <= IN_MEMORY_BYTES else tokens


def clear_cache(path: str | Path, keep: Path | None = None) -> list[Path]:
    """Remove every cached encoding of the corpus at path (but keep's); return what was removed."""
    path = Path(path)
    removed = []
    folder = cache_directory()
    if not folder.is_dir():
        return removed
    for stale in folder.glob(f"{glob_escape(_corpus_prefix(path))}.*.npy"):
        if keep is not None and stale.name in (keep.name, _vocab_path(keep).name):
            continue
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in name)

