"""Sampling options: beam search, nucleus (top-p) sampling, --novel, the names summary's
train/val/new counts, conflicting options, and the --prime hint.

README promise: `charrnn sample` gives "names (one a line) or free text from a checkpoint: sampled,
greedy or by beam search" (docs/commands.md: --beam, --top-p, --novel, the names summary,
conflicting options).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import charrnn.plumbing.corpus_cache
from charrnn.checkpoint import load_checkpoint
from charrnn.corpus import load_corpus
from charrnn.errors import CharRNNError
from charrnn.model import Model, ModelSpec
from charrnn.sample import (
    beam_names,
    beam_text,
    corpus_membership,
    encode_prime,
    prime_fix,
    probabilities,
    sample_names,
    sample_text,
)
from charrnn.vocab import Vocabulary
from conftest import run_cli

# --- helpers ---------------------------------------------------------------------------------


run = run_cli


def random_model(vocab, cell="lstm", layers=2, seed=0, scale=0.8) -> Model:
    spec = ModelSpec(len(vocab), 12, cell=cell, num_layers=layers, init_scale=scale)
    return Model.init(spec, np.random.default_rng(seed))


def log_prob(model, vocab, context: str, continuation: str) -> float:
    """log p(continuation | context) from a zero state: one forward pass of the model's own
    loss, independent of the sampling code."""
    ids = vocab.encode(context + continuation).astype(np.int64)
    x, y = ids[:-1, None], ids[1:, None]
    mask = (np.arange(len(ids) - 1) >= len(context) - 1)[:, None]
    nll, _, _ = model.forward_loss(x, y, model.zero_state(1), mask)
    return -nll


def bigram_model(vocab, table) -> Model:
    """A vanilla RNN that is exactly the bigram model table[x][v] = p(v | x): the hidden state
    is the one-hot of the last character (tanh(40) is 1.0 in float64)."""
    V = len(vocab)
    P = np.array(table, dtype=np.float64)
    P /= P.sum(axis=1, keepdims=True)
    params = {"l0.W_xh": 40.0 * np.eye(V), "l0.W_hh": np.zeros((V, V)), "l0.b_h": np.zeros(V),
              "W_hy": np.log(P).T.copy(), "b_y": np.zeros(V)}
    return Model(ModelSpec(V, V), params)


def error_lines(result):
    return [line for line in result.output.splitlines() if line.startswith("Error")]


AB_NAMES = ["".join(p) for n in (1, 2, 3) for p in itertools.product("ab", repeat=n)]


@pytest.fixture(scope="module")
def ab_corpus(tmp_path_factory):
    """Every a/b string of 1 to 3 letters, one a line, with a duplicate, blank lines, a CRLF
    line end and no newline at the end: a model trained 20 steps samples many of them."""
    folder = tmp_path_factory.mktemp("ab")
    path = folder / "ab.txt"
    body = "\n".join(AB_NAMES[:5]) + "\r\n\n" + "\n".join(AB_NAMES[5:]) + "\nab\n\nbab"
    path.write_bytes(body.encode())
    return path


def train_tiny(corpus, out, mode="lines"):
    batch = 8 if mode == "lines" else 2  # stream mode: 2 streams of the 28 training characters
    run("train", "--corpus", corpus, "--out", out, "--steps", 20, "--seed", 3,
        "--set", "model.hidden_size=16", "--set", f"data.mode={mode}",
        "--set", "data.val_fraction=0.3", "--set", f"training.batch_size={batch}",
        "--set", "training.seq_length=4", "--set", "training.eval_every=10",
        "--set", "training.sample_every=0")
    return out


@pytest.fixture(scope="module")
def ab_model(ab_corpus):
    return train_tiny(ab_corpus, ab_corpus.with_name("ab.npz"))


@pytest.fixture(scope="module")
def ab_stream_model(ab_corpus):
    return train_tiny(ab_corpus, ab_corpus.with_name("stream.npz"), mode="stream")


def trainer_split(checkpoint):
    """The trainer's own split of a lines-mode checkpoint's corpus: (train lines, val lines)."""
    saved = load_checkpoint(checkpoint)
    data = saved.config.data
    corpus = load_corpus(data.corpus, data.mode, data.val_fraction, saved.config.training.seed,
                         saved.vocab, use_cache=False)
    return set(corpus.train.lines(saved.vocab)), set(corpus.val.lines(saved.vocab))


SUMMARY = re.compile(r"(\d+) names[^:]*: (\d+) in the training split, (\d+) in the validation "
                     r"split, (\d+) new(?:, (\d+) empty)?")


def summary_counts(stderr: str) -> tuple[int, ...]:
    match = SUMMARY.search(stderr)
    assert match, stderr
    return tuple(int(g or 0) for g in match.groups())


# --- beam search -------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("prime", ["", "ca"])
def test_beam_of_one_is_greedy(cell, prime):
    vocab = Vocabulary.from_text("abcde\n")
    model = random_model(vocab, cell)
    greedy = sample_text(model, vocab, 60, np.random.default_rng(0), greedy=True, prime=prime)
    assert beam_text(model, vocab, 60, 1, prime=prime).text == greedy
    reset = sample_text(model, vocab, 60, np.random.default_rng(0), greedy=True, prime=prime,
                        reset_at_boundary=True)
    assert beam_text(model, vocab, 60, 1, prime=prime, reset_at_boundary=True).text == reset


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_beam_finds_text_at_least_as_likely_as_greedy_and_scores_it_right(cell):
    vocab = Vocabulary.from_text("abcdef")
    prime = "fab"
    gains = []
    for seed in range(4):
        model = random_model(vocab, cell, seed=seed, scale=1.2)
        greedy = sample_text(model, vocab, 30, np.random.default_rng(0), greedy=True,
                             prime=prime)
        greedy_lp = log_prob(model, vocab, prime, greedy[len(prime):])
        for beam in (2, 4, 16):
            found = beam_text(model, vocab, 30, beam, prime=prime)
            assert found.text.startswith(prime) and len(found.text) == len(prime) + 30
            independent = log_prob(model, vocab, prime, found.text[len(prime):])
            assert found.log_prob == pytest.approx(independent, abs=1e-9)
            assert independent >= greedy_lp - 1e-9
            gains.append(independent - greedy_lp)
    assert max(gains) > 1.0  # on these models beam search finds much likelier text


def test_beam_beats_greedy_where_greedy_is_provably_suboptimal():
    # after 'a': 'b' is likelier (0.6) than 'c' (0.4), but everything after 'b' has p 1/3
    # while 'c' is followed by 'c' with p 0.98: 0.6 * 1/3 = 0.2 < 0.4 * 0.98 = 0.392
    vocab = Vocabulary.from_text("abc")
    model = bigram_model(vocab, [[0.001, 0.6, 0.4], [1, 1, 1], [0.01, 0.01, 0.98]])
    greedy = sample_text(model, vocab, 2, np.random.default_rng(0), greedy=True, prime="a")
    assert greedy == "aba"
    found = beam_text(model, vocab, 2, 2, prime="a")
    assert found.text == "acc"
    assert found.log_prob == pytest.approx(np.log(0.4 * 0.98 / 1.001), rel=1e-9)
    assert found.log_prob > log_prob(model, vocab, "a", "ba")


def test_beam_names_finds_the_likeliest_name_that_greedy_misses():
    # from the start 'a' (0.55) beats 'b' (0.45), and after 'a' the name goes on (0.36, 0.34 >
    # 0.30 for the newline), so greedy runs on; but "b" ends with p 0.9: 0.405 beats all
    vocab = Vocabulary.from_text("\nab")
    model = bigram_model(vocab, [[0.001, 0.55, 0.449], [0.30, 0.36, 0.34], [0.9, 0.05, 0.05]])
    greedy = sample_names(model, vocab, 1, np.random.default_rng(0), greedy=True,
                          max_length=10)[0]
    assert greedy == "a" * 10  # never ends: cut at max_length
    best = beam_names(model, vocab, 1, 2, max_length=10)
    assert [r.text for r in best] == ["b"]
    assert best[0].log_prob == pytest.approx(log_prob(model, vocab, "\n", "b\n"), abs=1e-12)


@pytest.mark.parametrize("score", ["total", "mean"])
@pytest.mark.parametrize("prime", ["", "b"])
def test_exhaustive_beam_names_are_exactly_the_best_names(score, prime):
    """With as many beams as there are names of up to max_length letters, the search is
    exhaustive: the result must be the brute-force top names, in order, with their scores."""
    vocab = Vocabulary.from_text("\nab")
    model = random_model(vocab, "gru", seed=2, scale=1.0)
    max_length = 6
    every = ["".join(p) for n in range(0 if prime else 1, max_length + 1)
             for p in itertools.product("ab", repeat=n)]
    scored = []
    for rest in every:
        total = log_prob(model, vocab, "\n" + prime, rest + "\n")
        key = total if score == "total" else total / (len(rest) + 1)
        scored.append((-key, prime + rest, total))
    scored.sort()
    found = beam_names(model, vocab, 5, 2 ** max_length, prime=prime, max_length=max_length,
                       score=score)
    assert [r.text for r in found] == [name for _, name, _ in scored[:5]]
    for result, (_, _, total) in zip(found, scored):
        assert result.log_prob == pytest.approx(total, abs=1e-9)
        assert "\n" not in result.text


def test_beam_names_end_at_the_boundary_and_are_distinct():
    vocab = Vocabulary.from_text("\nabcdefgh")
    model = random_model(vocab, "lstm", seed=5)
    found = beam_names(model, vocab, 8, 8, max_length=12)
    names = [r.text for r in found]
    assert len(names) == 8 == len(set(names)) and all(names) and "\n" not in "".join(names)
    assert [r.log_prob for r in found] == sorted((r.log_prob for r in found), reverse=True)
    with pytest.raises(CharRNNError, match="--beam 9"):
        beam_names(model, vocab, 9, 8)


# --- top-p -------------------------------------------------------------------------------------

def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p():
    p = probabilities(np.log([0.5, 0.3, 0.15, 0.05]), top_p=0.8)
    np.testing.assert_allclose(p, [0.5 / 0.8, 0.3 / 0.8, 0, 0], atol=1e-12)
    p = probabilities(np.log([0.05, 0.5, 0.15, 0.3]), top_p=0.81)
    np.testing.assert_allclose(p, [0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95], atol=1e-12)
    assert probabilities(np.log([0.05, 0.5, 0.15, 0.3]), top_p=1e-9).tolist() == [0, 1, 0, 0]
    ties = probabilities(np.zeros(4), top_p=0.5)  # equal mass: the first ones, by index
    np.testing.assert_allclose(ties, [0.5, 0.5, 0, 0])


def test_top_p_property_on_random_rows_and_after_top_k():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((200, 9)) * 2
    for top_p in (0.1, 0.5, 0.9, 0.99):
        for top_k in (None, 4):
            plain = probabilities(logits, top_k=top_k)
            nucleus = probabilities(logits, top_k=top_k, top_p=top_p)
            for row, kept in zip(plain, nucleus):
                keep = kept > 0
                order = np.argsort(-row, kind="stable")
                n = keep.sum()
                assert keep[order[:n]].all()  # the likeliest n entries
                mass = row[keep].sum()
                assert mass >= top_p - 1e-9  # reaches p
                assert mass - row[order[n - 1]] < top_p  # and one fewer would not
                np.testing.assert_allclose(kept[keep], row[keep] / mass)


def test_top_p_of_one_is_plain_sampling():
    vocab = Vocabulary.from_text("\nabcdef")
    model = random_model(vocab)
    logits = np.random.default_rng(1).standard_normal((5, 7))
    assert np.array_equal(probabilities(logits, 0.7, 3, top_p=1.0), probabilities(logits, 0.7, 3))
    names = [sample_names(model, vocab, 30, np.random.default_rng(2), top_p=top_p)
             for top_p in (None, 1.0)]
    assert names[0] == names[1]
    texts = [sample_text(model, vocab, 80, np.random.default_rng(2), top_p=top_p)
             for top_p in (None, 1.0)]
    assert texts[0] == texts[1]
    tiny = sample_names(model, vocab, 5, np.random.default_rng(2), top_p=1e-9)
    assert tiny == sample_names(model, vocab, 5, np.random.default_rng(2), greedy=True)


def test_top_p_on_the_command_line(ab_model):
    plain = run("sample", "--checkpoint", ab_model, "--num", 20, "--seed", 4).stdout
    assert run("sample", "--checkpoint", ab_model, "--num", 20, "--seed", 4, "--top-p",
               1).stdout == plain
    assert run("sample", "--checkpoint", ab_model, "--num", 20, "--seed", 4, "--top-p", 0.6,
               "--top-k", 2).stdout != plain


# --- conflicting options ---------------------------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--greedy", "--temperature", "0.5"], "--temperature would be ignored"),
    (["--greedy", "--top-k", "3"], "--top-k would be ignored"),
    (["--greedy", "--top-p", "0.9"], "--top-p would be ignored"),
    (["--greedy", "--beam", "3"], "exclude each other"),
    (["--greedy", "--novel"], "--novel"),
    (["--beam", "3", "--temperature", "2"], "--temperature would be ignored"),
    (["--beam", "3", "--top-k", "2"], "--top-k would be ignored"),
    (["--beam", "3", "--top-p", "0.5"], "--top-p would be ignored"),
    (["--beam", "3", "--novel"], "use one or the other"),
    (["--beam", "2", "--num", "3"], "--beam 3 or more"),
    (["--beam-score", "mean"], "give --beam K"),
    (["--top-p", "0"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"),
    (["--beam", "0"], "--beam"),
])
def test_conflicting_options_are_usage_errors(ab_model, args, fragment):
    result = run("sample", "--checkpoint", ab_model, *args, ok=False)
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and fragment in lines[0], result.output


def test_names_only_options_on_a_stream_model_are_usage_errors(ab_stream_model):
    for args in (["--beam", "2", "--beam-score", "mean"], ["--novel"]):
        result = run("sample", "--checkpoint", ab_stream_model, *args, ok=False)
        assert result.exit_code == 2 and len(error_lines(result)) == 1, result.output
        assert "--num N" in error_lines(result)[0]
    text = run("sample", "--checkpoint", ab_stream_model, "--beam", 3, "--length", 12)
    assert len(text.stdout) == 13 and "log-probability" in text.stderr


def test_default_temperature_with_greedy_is_fine(ab_model):
    a = run("sample", "--checkpoint", ab_model, "--greedy", "--temperature", "1.0", "--num", 2)
    assert a.stdout == run("sample", "--checkpoint", ab_model, "--greedy", "--num", 2).stdout


# --- names: novel, the summary, beam ------------------------------------------------------------

def test_summary_counts_match_the_trainers_split(ab_model):
    train, val = trainer_split(ab_model)
    assert train and val and len(train | val) == len(AB_NAMES)
    result = run("sample", "--checkpoint", ab_model, "--num", 80, "--seed", 1)
    names = result.stdout.splitlines()
    assert len(names) == 80
    expected = (80, sum(n in train for n in names), sum(n in val and n not in train
                                                        for n in names),
                sum(bool(n) and n not in train | val for n in names), names.count(""))
    assert summary_counts(result.stderr) == expected
    assert expected[1] > 0 and expected[2] > 0  # the test sees both splits


def test_beam_names_on_the_command_line(ab_model):
    train, val = trainer_split(ab_model)
    result = run("sample", "--checkpoint", ab_model, "--beam", 6)
    names = result.stdout.splitlines()
    saved = load_checkpoint(ab_model)
    assert names == [r.text for r in beam_names(saved.model, saved.vocab, 6, 6)]
    counts = summary_counts(result.stderr)
    assert counts[:4] == (6, sum(n in train for n in names),
                          sum(n in val and n not in train for n in names),
                          sum(n not in train | val for n in names))
    assert "total log-probability" in result.stderr
    mean = run("sample", "--checkpoint", ab_model, "--beam", 6, "--num", 3, "--beam-score",
               "mean")
    assert len(mean.stdout.splitlines()) == 3 and "mean log-probability" in mean.stderr


def test_novel_gives_distinct_names_outside_the_corpus(ab_model, ab_corpus):
    lines = set(ab_corpus.read_text().splitlines())
    result = run("sample", "--checkpoint", ab_model, "--num", 12, "--novel", "--seed", 2)
    names = result.stdout.splitlines()
    assert len(names) == 12 == len(set(names)) and all(names) and not lines & set(names)
    assert "12 names, all new and distinct" in result.stderr


def test_novel_says_how_many_it_found_and_why_it_stopped(ab_model):
    # every a/b name of up to 3 letters is in the corpus: none can be new
    result = run("sample", "--checkpoint", ab_model, "--num", 10, "--novel", "--max-length", 3)
    assert result.stdout.strip() == ""
    assert "found only 0 of 10" in result.stderr and "after 500 draws" in result.stderr
    assert "reproduces its training names" in result.stderr


def test_novel_shortfall_keeps_what_it_found(ab_model):
    # names of up to 4 letters: only the 16 four-letter ones can be new
    result = run("sample", "--checkpoint", ab_model, "--num", 40, "--novel", "--max-length", 4)
    names = result.stdout.splitlines()
    assert 0 < len(names) <= 16 and len(set(names)) == len(names)
    assert all(len(n) == 4 for n in names)
    assert f"found only {len(names)} of 40" in result.stderr


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_corpus_membership_is_the_trainers_split(tmp_path, monkeypatch, mode):
    rng = np.random.default_rng(9)
    names = ["".join(rng.choice(list("abcde"), rng.integers(1, 6))) for _ in range(300)]
    text = "\r\n".join(names[:100]) + "\n\n" + "\n".join(names[100:]) + "\n" + "x" * 5000
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode())
    fraction, seed = 0.2, 11
    corpus = load_corpus(path, mode, fraction, seed, use_cache=False)
    candidates = set(names) | {"zz", "", "a\nb", "x" * 5000, "x" * 4999}
    monkeypatch.setattr(charrnn.plumbing.corpus_cache, "CHUNK_BYTES", 7)  # lines cut across chunks
    found = corpus_membership(path, mode, fraction, seed, candidates)
    if mode == "lines":
        train = set(corpus.train.lines(corpus.vocab))
        val = set(corpus.val.lines(corpus.vocab))
        expected = {n: "train" if n in train else "val" for n in train | val}
        assert expected.values() and "val" in expected.values()
    else:
        cut = len(text) - len(corpus.val.tokens)
        starts: dict[str, list[int]] = {}
        position = 0
        for line in text.split("\n"):
            starts.setdefault(line, []).append(position)
            position += len(line) + 1
        expected = {n: "train" if min(s) < cut else "val" for n, s in starts.items()
                    if n in candidates and n}
        assert "x" * 5000 in expected
    assert found == expected


# --- the prime ---------------------------------------------------------------------------------

def test_prime_outside_the_vocabulary_suggests_the_fix(ab_model):
    result = run("sample", "--checkpoint", ab_model, "--prime", "Ab", ok=False)
    lines = error_lines(result)
    assert result.exit_code == 1 and len(lines) == 1
    assert "'A'" in lines[0] and "lower-case" in lines[0] and "try --prime 'ab'" in lines[0]


def test_prime_fixes():
    lower = Vocabulary.from_text("abcdefghijklmnopqrstuvwxyz\n")
    assert prime_fix(lower, "Anna") == "the model knows only lower-case letters: try --prime 'anna'"
    assert "without accents: try --prime 'zoe'" in prime_fix(lower, "Zoë")
    assert "no accented letters: try --prime 'zoe'" in prime_fix(lower, "zoë")
    assert prime_fix(lower, "a1") is None
    with pytest.raises(CharRNNError, match=r"'1'.*knows only 'abcdefghijklmnopqrstuvwxyz'"):
        encode_prime(lower, "a1")
    composed = Vocabulary.from_text("zoë\n")
    assert "try --prime 'zoë'" in prime_fix(composed, "zoe\u0308")  # a combining diaeresis
    upper = Vocabulary.from_text("ABC \n")
    assert prime_fix(upper, "ab") == "the model knows only upper-case letters: try --prime 'AB'"
    with pytest.raises(CharRNNError, match="try --prime 'anna'"):
        sample_names(random_model(lower), lower, 2, np.random.default_rng(0), prime="Anna")
