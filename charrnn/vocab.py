"""The character vocabulary: sorted characters, encode and decode as whole arrays.

Characters are kept as Unicode code points in ascending order, so the vocabulary never depends on
hash order, and encoding a text is one `np.unique`/`np.searchsorted` over its code points rather
than a Python loop over characters.
"""

from __future__ import annotations

import numpy as np

from charrnn.errors import CharRNNError

BOUNDARY = "\n"
MAX_VOCAB_SIZE = 1_114_112  # every Unicode code point
SURROGATES = (0xD800, 0xDFFF)  # halves of UTF-16 pairs: code points, but never characters


def code_points(text: str) -> np.ndarray:
    """The text's characters as a uint32 array of code points, without a per-character loop."""
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")


def index_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every index of the vocabulary."""
    if vocab_size <= 256:
        return np.dtype(np.uint8)
    if vocab_size <= 65536:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _describe(chars) -> str:
    shown = ", ".join(repr(ch) for ch in list(chars)[:20])
    more = len(chars) - 20
    return shown + (f" and {more} more" if more > 0 else "")


class Vocabulary:
    """An ordered set of characters; index i stands for the i-th smallest code point."""

    def __init__(self, codes: np.ndarray):
        codes = np.asarray(codes)
        if codes.ndim != 1 or codes.size == 0:
            raise CharRNNError("vocabulary is empty; the corpus needs at least one character")
        if codes.dtype.kind not in "iu":
            raise CharRNNError("vocabulary is not a list of character codes; the checkpoint is "
                               "damaged")
        # range-checked before the cast to uint32, which would wrap 2**32 + 65 round to 'A'
        if codes.min() < 0 or codes.max() >= MAX_VOCAB_SIZE:
            raise CharRNNError("vocabulary holds a value that is no Unicode character; "
                               "the checkpoint is damaged")
        codes = codes.astype(np.uint32)
        if np.any(np.diff(codes.astype(np.int64)) <= 0):
            raise CharRNNError("vocabulary is not strictly sorted; the checkpoint is damaged")
        surrogates = codes[(codes >= SURROGATES[0]) & (codes <= SURROGATES[1])]
        if surrogates.size:
            raise CharRNNError(f"vocabulary holds U+{int(surrogates[0]):04X}, a surrogate code "
                               f"point that no UTF-8 text can hold; the checkpoint is damaged, "
                               f"or the text was decoded with surrogateescape")
        self.codes = codes
        self.dtype = index_dtype(len(codes))

    @classmethod
    def from_text(cls, text: str, extra: str = "") -> Vocabulary:
        return cls(np.unique(code_points(text + extra)))

    def __len__(self) -> int:
        return len(self.codes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self.codes, other.codes)

    def __contains__(self, char: str) -> bool:
        return len(char) == 1 and self.index_of(char) is not None

    @property
    def chars(self) -> str:
        return self.decode(np.arange(len(self)))

    def index_of(self, char: str) -> int | None:
        point = ord(char)
        i = int(np.searchsorted(self.codes, point))
        return i if i < len(self.codes) and self.codes[i] == point else None

    @property
    def boundary(self) -> int | None:
        """Index of the newline that ends every line in lines mode (None if absent)."""
        return self.index_of(BOUNDARY)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of text that the vocabulary lacks, sorted."""
        points = np.unique(code_points(text))
        missing = points[~np.isin(points, self.codes)]
        return [chr(p) for p in missing]

    def encode(self, text: str, where: str = "text") -> np.ndarray:
        """Indices of the text's characters; characters outside the vocabulary are an error."""
        indices, known = self.encode_known(text)
        if not known.all():
            missing = self.unknown(text)
            raise CharRNNError(f"{where} has {len(missing)} character(s) outside the model's "
                               f"vocabulary: {_describe(missing)}; remove them or train on a "
                               f"corpus that has them")
        return indices

    def encode_known(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices, known mask): like encode, but marks unknown characters instead of failing."""
        points = code_points(text)
        indices = np.searchsorted(self.codes, points)
        np.minimum(indices, len(self.codes) - 1, out=indices)
        known = self.codes[indices] == points
        return indices.astype(self.dtype), known

    def decode(self, indices) -> str:
        points = self.codes[np.asarray(indices, dtype=np.int64)]
        return points.astype("<u4").tobytes().decode("utf-32-le", errors="surrogatepass")
