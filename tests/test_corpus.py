"""Corpus encoding: chunked decoding, the memory-mapped cache, splits and batches.

README promise: "a list of short lines (names, words, titles) trains one example a line, anything
else as one stream", and "A folder works too" (docs/models.md: decoding in 4 MB chunks, the
memory-mapped cache, the splits).
"""

from __future__ import annotations

import numpy as np
import pytest

import charrnn.plumbing.corpus_cache as corpus_cache
from charrnn.corpus import build_corpus, gather_lines, load_corpus
from charrnn.errors import CharRNNError
from charrnn.plumbing.corpus_cache import cache_path, clear_cache, encode_file


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(corpus_cache, "CHUNK_BYTES", 7)  # every boundary case, many times


def test_chunked_encoding_equals_whole_text_encoding(tmp_path, small_chunks):
    text = "naïve café\r\nzoë 日本語 🎉\r\n\r\nend\rlast\r"
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    for mode in ("stream", "lines"):
        vocab, tokens = encode_file(path, mode, use_cache=False)
        whole = build_corpus(text, mode, 0.0, 0)
        assert vocab == whole.vocab
        expected = whole.vocab.encode(text if mode == "stream" else
                                      text.replace("\r\n", "\n").replace("\r", "\n"))
        np.testing.assert_array_equal(tokens, expected)


def test_decode_error_offset_is_exact_past_the_first_chunk(tmp_path, small_chunks):
    path = tmp_path / "bad.txt"
    raw = "héllo wörld\nsecond line ok\n".encode() + b"\xff tail\n"
    path.write_bytes(raw)
    offset = raw.index(b"\xff")
    with pytest.raises(CharRNNError, match=f"byte offset {offset} \\(line 3\\)"):
        encode_file(path, "stream")


def test_second_load_reads_the_cache_memory_mapped_and_an_edit_invalidates_it(tmp_path,
                                                                              monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("to be or not to be\n" * 50, encoding="utf-8")
    first = load_corpus(path, "stream", 0.1, 0)
    cached = cache_path(path, "utf-8", "strict", "stream")
    assert cached.exists() and cached.name.startswith("c.txt-")
    assert cached.parent == corpus_cache.cache_directory() and not list(tmp_path.glob(".*npy"))
    monkeypatch.setattr(corpus_cache, "IN_MEMORY_BYTES", 0)  # map even this small corpus
    monkeypatch.setattr(corpus_cache, "text_chunks", None)  # a cache hit decodes nothing
    second = load_corpus(path, "stream", 0.1, 0)
    monkeypatch.undo()
    assert isinstance(second.train.tokens, np.memmap)
    np.testing.assert_array_equal(first.train.tokens, second.train.tokens)
    path.write_text("something else entirely\n" * 50, encoding="utf-8")
    third = load_corpus(path, "stream", 0.1, 0)
    assert third.vocab != first.vocab
    assert third.vocab.decode(third.train.tokens[:9]) == "something"
    assert not cached.exists()  # the edit's new encoding pruned the stale one
    assert len(clear_cache(path)) == 2  # the current indices and vocabulary


def test_uint8_indices_for_small_vocabularies_and_wider_for_large(tmp_path):
    small = tmp_path / "s.txt"
    small.write_text("abcabc" * 10, encoding="utf-8")
    assert encode_file(small, "stream")[1].dtype == np.uint8
    large = tmp_path / "l.txt"
    large.write_text("".join(chr(0x4E00 + i) for i in range(3000)) * 2, encoding="utf-8")
    vocab, tokens = encode_file(large, "stream")
    assert len(vocab) == 3000 and tokens.dtype == np.uint16


def test_read_only_directory_falls_back_to_memory(tmp_path, monkeypatch):
    path = tmp_path / "r.txt"
    path.write_text("hello world\n" * 5, encoding="utf-8")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(np.lib.format, "open_memmap", refuse)
    vocab, tokens = encode_file(path, "stream")
    assert vocab.decode(tokens[:5]) == "hello"
    assert not list(tmp_path.glob(".r.txt.charrnn-*"))


def test_given_vocabulary_lists_unknown_characters(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("abc xyz", encoding="utf-8")
    vocab = build_corpus("abc ", "stream", 0.0, 0).vocab
    with pytest.raises(CharRNNError, match="'x', 'y', 'z'"):
        encode_file(path, "stream", vocab)


def test_lines_validation_is_a_seeded_random_tenth_of_the_lines():
    names = [f"name{chr(97 + i % 26)}{i}" for i in range(200)]
    corpus = build_corpus("\n".join(sorted(names)) + "\n", "lines", 0.1, seed=0)
    val = corpus.val.lines(corpus.vocab)
    train = corpus.train.lines(corpus.vocab)
    assert len(val) == 20 and len(train) == 180 and not set(val) & set(train)
    positions = sorted(sorted(names).index(n) for n in val)
    assert positions[-1] - positions[0] > 100  # spread over the file, not its tail
    again = build_corpus("\n".join(sorted(names)) + "\n", "lines", 0.1, seed=0)
    assert again.val.lines(again.vocab) == val


def test_gathered_lines_start_at_the_boundary_and_mask_the_padding():
    corpus = build_corpus("ab\nabcd\n", "lines", 0.0, 0)
    batch = gather_lines(corpus.train, np.array([0, 1]))
    decode = corpus.vocab.decode
    assert decode(batch.x[:, 1]) == "\nabcd" and decode(batch.y[:, 1]) == "abcd\n"
    assert decode(batch.x[:3, 0]) == "\nab" and decode(batch.y[:3, 0]) == "ab\n"
    assert batch.mask[:, 0].tolist() == [True, True, True, False, False]
    assert batch.characters == 3 + 5


def test_capped_lines_evaluation_spreads_over_the_split():
    from charrnn.corpus import eval_batches
    names = [f"{chr(97 + i // 10)}name" for i in range(260)]  # alphabetical, like names.txt
    corpus = build_corpus("\n".join(names) + "\n", "lines", 0.0, 0)
    batches = list(eval_batches(corpus.train, "lines", 8, 25, max_chars=60))
    first_letters = {corpus.vocab.decode(b.x[1, i:i + 1]) for b in batches
                     for i in range(b.x.shape[1])}
    assert len(first_letters) >= 8  # from a to z, not only the a-names
    assert sum(b.characters for b in batches) <= 80
