"""charrnn viz: the unit finder, the page (self-contained, escaped, bounded), the model's trace
against `charrnn eval` and `charrnn sample --greedy`, the command's errors, and a real browser.

README promise: `charrnn viz` writes "one self-contained HTML page of what every character and unit
does" (docs/viz.md), and it runs in a real browser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import viz as V
from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.cli.viz import command, viz
from charrnn.config import Config
from charrnn.errors import CharRNNError
from charrnn.evaluate import evaluate_text
from charrnn.model import Model, ModelSpec
from charrnn.sample import sample_names, sample_text
from charrnn.vocab import Vocabulary
from conftest import NAMES, SHAKESPEARE

HOSTILE = ('Say "</script><!-- <b>bold</b> & &amp; \'x\'" (a [b] {c}) \t tab\n'
           "second line \u2028 \U0001F600 caf\u00e9 \x00 \x7f end\n")


# --- helpers -------------------------------------------------------------------------------------

def planted_trace(text: str, mode: str = "stream", H: int = 24, seed: int = 0) -> V.Trace:
    """Noise everywhere but three planted units: layer 0 h unit 3 copies "inside quotes", unit 9
    counts the position in the line, and layer 0 c unit 5 is minus "inside brackets"."""
    rng = np.random.default_rng(seed)
    n = len(text)
    features = V.text_features(text, mode)
    position = features["position in the name" if mode == "lines" else "position in the line"]
    h = np.tanh(rng.standard_normal((n, H)) * 0.5)
    h[:, 3] = np.tanh(3 * features["inside quotes"] - 1.5 + 0.2 * rng.standard_normal(n))
    h[:, 9] = np.tanh(position / 20 - 1)
    c = rng.standard_normal((n, H)) * 2
    c[:, 5] = -4 * features["inside brackets"] + 0.1 * rng.standard_normal(n)
    vocab = "".join(sorted(set(text) | {"\n"}))
    known = np.ones(n, dtype=bool)
    losses = rng.gamma(2.0, 0.6, n)
    losses[0] = np.nan if mode == "stream" else losses[0]
    top_ids = np.stack([rng.permutation(len(vocab))[:5] for _ in range(n)])
    top_probs = np.sort(rng.dirichlet(np.ones(len(vocab)), n), axis=1)[:, ::-1][:, :5]
    return V.Trace(text=text, losses=losses, top_ids=top_ids, top_probs=top_probs,
                   series={"layer 0 h": h, "layer 0 c": c}, vocab=vocab, mode=mode, known=known,
                   ranges={"layer 0 h": (-1.0, 1.0)},
                   facts={"cell": "lstm", "layers": 1, "checkpoint": "/x/<planted>.npz"})


def shakespeare(start: int, length: int) -> str:
    with open(SHAKESPEARE, encoding="utf-8") as handle:
        return handle.read(start + length)[start:]


def names(count: int, every: int = 7) -> list[str]:
    return NAMES.read_text(encoding="utf-8").split()[::every][:count]


def random_checkpoint(cell: str, mode: str, corpus_text: str, layers: int = 1, hidden: int = 8,
                      seed: int = 0, corpus: str = "corpora/names.txt") -> Checkpoint:
    """An untrained model with large weights (so its guesses differ), wrapped as a checkpoint."""
    config = Config().replace(
        data={"mode": mode, "corpus": corpus},
        model={"cell": cell, "num_layers": layers, "hidden_size": hidden, "dtype": "float64",
               "init_scale": 0.5})
    vocab = Vocabulary.from_text(corpus_text, extra="\n" if mode == "lines" else "")
    model = Model.init(ModelSpec.from_config(config.model, len(vocab)),
                       np.random.default_rng(seed))
    return Checkpoint(config, vocab, model.params, meta={"step": 1234, "best_val_loss": 2.5})


def quote_lstm(text: str) -> Checkpoint:
    """A hand-built one-unit LSTM whose cell copies "inside quotes": at a quote it forgets
    (f = 0) and writes g = tanh(-20 h + 2), the opposite of its sign so far; elsewhere it keeps
    c (f = 1, i = 0). o = 1, so h = tanh(c)."""
    config = Config().replace(data={"mode": "stream"},
                              model={"cell": "lstm", "hidden_size": 1, "dtype": "float64"})
    vocab = Vocabulary.from_text(text)
    quote = np.array([ch == '"' for ch in vocab.chars])
    big = 20.0
    W_xh = np.zeros((4, len(vocab)))
    W_xh[0] = np.where(quote, big, -big)  # i: open only at a quote
    W_xh[1] = np.where(quote, -big, big)  # f: closed only at a quote
    W_hh = np.zeros((4, 1))
    W_hh[2, 0] = -big  # g: the opposite of h
    b_h = np.array([0.0, 0.0, 2.0, big])  # g leans to "inside" from the zero state; o = 1
    params = {"l0.W_xh": W_xh, "l0.W_hh": W_hh, "l0.b_h": b_h,
              "W_hy": np.zeros((len(vocab), 1)), "b_y": np.zeros(len(vocab))}
    return Checkpoint(config, vocab, params)


class Tags(HTMLParser):
    """Checks that every opened element is closed in order; collects the page's data and the
    text of the character spans."""

    VOID = {"meta", "br", "input", "img", "link", "hr", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.doctypes = [], [], 0
        self.data_json, self.in_data = "", False
        self.spans, self.in_span = [], False
        self.attributes = {}

    def handle_decl(self, decl):
        self.doctypes += decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.attributes = attrs
        if tag in self.VOID:
            return
        self.stack.append(tag)
        self.in_data = tag == "script" and attrs.get("id") == "viz-data"
        if tag == "span" and "ch" in (attrs.get("class") or "").split():
            self.in_span = True
            self.spans.append("")

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        self.in_data = self.in_span = False

    def handle_data(self, data):
        if self.in_data:
            self.data_json += data
        if self.in_span:
            self.spans[-1] += data


def parse(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser


def shown(ch: str) -> str:
    """What the page's script displays for a character (its shown() function)."""
    if ch == "\n":
        return "\u23ce"
    if ch == "\t":
        return "\t"
    if ord(ch) < 32:
        return chr(0x2400 + ord(ch))
    return "\u2421" if ord(ch) == 127 else ch


# --- features and the unit finder --------------------------------------------------------------

def test_text_features_by_hand():
    text = 'ab "cd" (e)\nfo'
    f = V.text_features(text)
    assert f["position in the line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2]
    assert f["inside quotes"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f["inside brackets"].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert f["start of a word"].tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0]
    assert f["vowel"].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    # a stray closer does not make the depth negative; curly quotes nest
    g = V.text_features(")(x) \u201cy\u201d")
    assert g["inside brackets"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert g["inside quotes"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0]
    lines = V.text_features("ann\nbo\n", "lines")
    assert lines["position in the name"].tolist() == [1, 2, 3, 0, 1, 2, 0]
    assert "start of a word" not in lines  # a name is one word: that is position 1


def test_find_units_finds_the_planted_units():
    text = shakespeare(3000, 2500)
    text = text[:600] + ' "so quoted, all of it" (and this) ' + text[600:1800] + \
        ' "and again here" ' + text[1800:]
    trace = planted_trace(text)
    findings = V.find_units(trace.text, trace.series, trace.mode, trace.known)
    found = {(f.series, f.unit, f.feature): f.r for f in findings}
    assert found[("layer 0 h", 3, "inside quotes")] > 0.9
    assert found[("layer 0 h", 9, "position in the line")] > 0.9
    assert found[("layer 0 c", 5, "inside brackets")] < -0.9
    assert findings == sorted(findings, key=lambda f: -abs(f.r))
    assert all(abs(f.r) >= V.MIN_ABS_R for f in findings)
    # the three planted units outrank every noise unit
    assert {(f.series, f.unit) for f in findings[:3]} == {
        ("layer 0 h", 3), ("layer 0 h", 9), ("layer 0 c", 5)}


def test_find_units_skips_unread_characters_and_constant_features():
    text = "abc\n" * 50
    series = {"layer 0 h": np.tile(np.arange(4.0), 50)[:, None] * np.ones((1, 3))}
    series["layer 0 h"][:, 2] = 1.0  # a constant unit correlates with nothing
    known = np.ones(len(text), dtype=bool)
    known[10] = False
    series["layer 0 h"][10] = np.nan
    findings = V.find_units(text, series, known=known)
    assert findings and all(f.unit != 2 for f in findings)
    assert all(np.isfinite(f.r) for f in findings)
    assert all(f.feature != "inside quotes" for f in findings)  # constant: no quotes at all


def test_a_hand_built_lstm_whose_cell_copies_inside_quotes_is_found():
    text = shakespeare(10_000, 1500).replace('"', "")
    text = text[:20] + '"' + text[20:140] + '"' + text[140:900] + '"' + text[900:1000] + \
        '"' + text[1000:]
    saved = quote_lstm(text)
    trace = V.trace_model(saved, text)
    inside = V.text_features(text)["inside quotes"]
    c = trace.series["layer 0 c"][:, 0]
    assert np.all((c > 0.5) == (inside > 0))  # the cell is the feature, character by character
    findings = V.find_units(trace.text, trace.series, trace.mode, trace.known)
    assert findings[0].feature == "inside quotes" and abs(findings[0].r) > 0.95
    found = {(f.series, f.unit, f.feature): f.r for f in findings}
    assert found[("layer 0 c", 0, "inside quotes")] > 0.95
    assert found[("layer 0 h", 0, "inside quotes")] > 0.95
    # g, what the cell would write at a quote, is the opposite: it has seen the feature too
    assert found[("layer 0 candidate g", 0, "inside quotes")] < -0.95


# --- the page ------------------------------------------------------------------------------------

def test_page_is_self_contained_and_well_formed():
    trace = planted_trace(shakespeare(0, 1500))
    page = V.build_page(trace, V.find_units(trace.text, trace.series))
    for forbidden in ("http://", "https://", "//cdn", "src=", "<link", "@import", "url(",
                      "fetch(", "XMLHttpRequest", "<iframe", "<img"):
        assert forbidden not in page, forbidden
    tags = parse(page)
    assert tags.doctypes == 1 and not tags.errors and tags.stack == []
    data = json.loads(tags.data_json)
    assert data["text"] == trace.text
    assert data["meanLoss"] == pytest.approx(trace.mean_loss(), abs=1e-4)
    assert data["loss"][0] is None  # the first character of a stream: nothing predicted it
    assert np.allclose(data["loss"][1:], trace.losses[1:], atol=5e-4)
    assert [f["unit"] for f in data["findings"]][:1] in ([3], [9], [5])


def test_embedded_activations_round_trip_within_a_quantisation_step():
    trace = planted_trace(shakespeare(0, 800))
    data = V.page_data(trace, [])
    for entry in data["series"]:
        values = trace.series[entry["name"]]
        codes = np.frombuffer(__import__("base64").b64decode(entry["q"]), np.uint8)
        codes = codes.reshape(len(trace.text), -1)
        lo, hi = np.array(entry["lo"]), np.array(entry["hi"])
        decoded = lo + codes * (hi - lo) / V.LEVELS
        assert np.all(np.abs(decoded - values) <= (values.max(0) - values.min(0)) / V.LEVELS)


def test_hostile_text_is_escaped_and_survives_intact():
    trace = planted_trace(HOSTILE * 3)
    page = V.build_page(trace, [])
    assert page.count("</script>") == 2  # the page's own two scripts, nothing from the text
    assert "<!--" not in page and "\u2028" not in page and "<b>bold" not in page
    tags = parse(page)
    assert not tags.errors
    assert json.loads(tags.data_json)["text"] == HOSTILE * 3
    assert "/x/<planted>.npz" in json.loads(tags.data_json)["facts"][2]


def test_page_size_at_the_cap_stays_a_few_mb():
    """MAX_LENGTH characters of a 2-layer, 512-unit LSTM's h, c and gates: whole series only as
    far as the budget goes, plus the units the finder picked; the page stays a few MB."""
    n, H = V.MAX_LENGTH, 512
    rng = np.random.default_rng(0)
    text = shakespeare(50_000, n)
    base = planted_trace(text, H=16)
    block = rng.standard_normal((n, H), dtype=np.float32)  # one array for all: only sizes count
    series = {f"layer {layer} {suffix}": block for layer in range(2)
              for suffix in ("h", "c", "gate i", "gate f", "gate o")}
    trace = V.Trace(text=text, losses=base.losses, top_ids=base.top_ids,
                    top_probs=base.top_probs, series=series, vocab=base.vocab)
    findings = [V.Finding("layer 1 gate o", 77, "vowel", 0.5)]
    data = V.page_data(trace, findings)
    whole = [s["name"] for s in data["series"] if s["units"] is None]
    assert whole == ["layer 0 h"] and len(text) * H * len(whole) <= V.VALUE_BUDGET
    partial = {s["name"]: s["units"] for s in data["series"] if s["units"] is not None}
    assert partial == {"layer 1 gate o": [77]}
    assert "layer 0 c" in data["left"]
    size = len(V.build_page(trace, findings).encode("utf-8"))
    assert size <= 6_000_000, size


# --- writing the page ----------------------------------------------------------------------------

def test_write_page_is_atomic_keeps_the_mode_and_refuses_inputs(tmp_path):
    out = tmp_path / "page.html"
    V.write_page(out, "<p>one</p>")
    out.chmod(0o640)
    V.write_page(out, "<p>two</p>")
    assert out.read_text() == "<p>two</p>"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]  # no temporary left
    text = tmp_path / "text.txt"
    text.write_text("hello")
    link = tmp_path / "link.html"
    link.symlink_to(text)
    inputs = {"--checkpoint": tmp_path / "ckpt.npz", "--text": text}
    for bad in (text, link, tmp_path / "sub" / ".." / "text.txt"):
        with pytest.raises(CharRNNError, match="never writes over one of its inputs"):
            V.write_page(bad, "<p>x</p>", inputs=inputs)
    assert text.read_text() == "hello"
    with pytest.raises(CharRNNError, match="Is a directory"):
        V.write_page(tmp_path, "<p>x</p>")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(CharRNNError, match="not a regular file"):
        V.write_page(tmp_path / "fifo", "<p>x</p>")
    # a symlink to a page (not an input) updates the page it points to and stays a link
    target = tmp_path / "real.html"
    target.write_text("old")
    alias = tmp_path / "alias.html"
    alias.symlink_to(target)
    V.write_page(alias, "new")
    assert alias.is_symlink() and target.read_text() == "new"


# --- the model's trace ---------------------------------------------------------------------------

@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("lstm", 2), ("gru", 1)])
def test_stream_losses_are_charrnn_evals(cell, layers):
    corpus = shakespeare(0, 300_000)
    saved = random_checkpoint(cell, "stream", corpus.replace("Z", ""), layers=layers)
    text = shakespeare(20_000, 260).replace("Z", "") + "Zounds, a Z!\nand more text"
    trace = V.trace_model(saved, text)
    assert trace.text == text and len(trace.losses) == len(text)
    unknown = [i for i, ch in enumerate(text) if ch not in saved.vocab]
    assert unknown == [i for i, ch in enumerate(text) if ch == "Z"]
    assert np.flatnonzero(~trace.known).tolist() == unknown  # shown, marked, not dropped
    assert np.isnan(trace.losses[unknown]).all()
    result = evaluate_text(saved.model, saved.vocab, text, "stream", batch_size=1)
    assert int(trace.scored.sum()) == result["characters"]
    assert trace.mean_loss() == pytest.approx(result["nats_per_char"], rel=1e-10)
    # character by character: eval of a prefix one character longer adds exactly its loss
    for j in (1, 2, 57, 200, 259):
        longer = evaluate_text(saved.model, saved.vocab, text[:j + 1], "stream", batch_size=1)
        total = longer["nats_per_char"] * longer["characters"]
        if j >= 2:
            shorter = evaluate_text(saved.model, saved.vocab, text[:j], "stream", batch_size=1)
            total -= shorter["nats_per_char"] * shorter["characters"]
        assert trace.losses[j] == pytest.approx(total, rel=1e-8)
    expected = {f"layer {k} h" for k in range(layers)}
    assert expected <= set(trace.series)
    H = saved.spec.hidden_size
    assert all(values.shape == (len(text), H) for values in trace.series.values())
    assert np.isnan(trace.series[f"layer {layers - 1} h"][unknown]).all()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_lines_losses_are_charrnn_evals(cell):
    rows = names(40)
    saved = random_checkpoint(cell, "lines", "\n".join(names(10_000, 1)).replace("q", ""))
    rows[5] = "jacques"  # 'q' is outside the vocabulary: shown, not read, like eval
    text, _ = V.prepare_text("\n".join(rows), "lines", 5000, "test")
    trace = V.trace_model(saved, text)
    result = evaluate_text(saved.model, saved.vocab, text, "lines", batch_size=64)
    assert int(trace.scored.sum()) == result["characters"]
    assert trace.mean_loss() == pytest.approx(result["nats_per_char"], rel=1e-10)
    start = 0
    for row in rows:
        span = slice(start, start + len(row) + 1)  # the name and its end
        start += len(row) + 1
        if row == "jacques":
            assert np.isnan(trace.losses[span]).all()
            assert trace.known[span].tolist() == [ch != "q" for ch in row + "\n"]
            continue
        alone = evaluate_text(saved.model, saved.vocab, row + "\n", "lines")
        assert trace.losses[span].sum() == pytest.approx(
            alone["nats_per_char"] * alone["characters"], rel=1e-10)
    assert trace.series["layer 0 h"][~np.isnan(trace.losses)].shape[1] == 8


def test_lines_trace_skips_empty_lines_and_wants_a_final_newline():
    saved = random_checkpoint("rnn", "lines", "\n".join(names(10_000, 1)))
    trace = V.trace_model(saved, "ann\n\nbo\n")
    assert np.isnan(trace.losses[4]) and np.isfinite(trace.losses[[0, 1, 2, 3, 5, 6, 7]]).all()
    with pytest.raises(CharRNNError, match="ends with a newline"):
        V.trace_model(saved, "ann\nbo")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_first_guess_is_what_sample_greedy_takes(cell):
    rng = np.random.default_rng(0)
    stream = random_checkpoint(cell, "stream", shakespeare(0, 20_000), layers=2, seed=3)
    text = shakespeare(9000, 50)
    trace = V.trace_model(stream, text)
    greedy = sample_text(stream.model, stream.vocab, 1, rng, greedy=True, prime=text[0])
    assert greedy == text[0] + stream.vocab.chars[trace.top_ids[1, 0]]
    assert np.all(np.diff(trace.top_probs[1:], axis=1) <= 0)  # likeliest first
    lines = random_checkpoint(cell, "lines", "\n".join(names(300)), seed=4)
    trace = V.trace_model(lines, "anna\nbob\n")
    name = sample_names(lines.model, lines.vocab, 1, rng, greedy=True)[0]
    assert (name[:1] or "\n") == lines.vocab.chars[trace.top_ids[0, 0]]


def test_prepare_text_cuts_and_refuses():
    assert V.prepare_text("abcdef", "stream", 4, "x") == ("abcd", "x (its first 4 of 6 characters)")
    text, source = V.prepare_text("ann\r\n\nbo\ncy", "lines", 7, "x")
    assert text == "ann\nbo\n" and "first 2 of 3 lines" in source
    with pytest.raises(CharRNNError, match="empty"):
        V.prepare_text("", "stream", 10, "--prime")
    with pytest.raises(CharRNNError, match="no line"):
        V.prepare_text("\n\n", "lines", 10, "--prime")
    with pytest.raises(CharRNNError, match="first line"):
        V.prepare_text("abcdefgh\n", "lines", 5, "x")
    assert V.check_length(None) == V.DEFAULT_LENGTH
    with pytest.raises(CharRNNError, match=f"cap of {V.MAX_LENGTH}"):
        V.check_length(V.MAX_LENGTH + 1)


# --- the command ---------------------------------------------------------------------------------

@pytest.fixture
def names_checkpoint(tmp_path, names_file) -> Path:
    corpus = names_file.read_text(encoding="utf-8")
    saved = random_checkpoint("lstm", "lines", corpus, corpus=str(names_file))
    path = tmp_path / "names.npz"
    save_checkpoint(path, saved)
    return path


def run(*args):
    return CliRunner().invoke(viz, [str(a) for a in args])


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_command_writes_a_page_of_held_out_names(tmp_path, names_checkpoint):
    out = tmp_path / "pages" / "viz.html"
    result = run("--checkpoint", names_checkpoint, "--out", out, "--length", 300)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.is_file()
    data = json.loads(parse(out.read_text(encoding="utf-8")).data_json)
    assert data["mode"] == "lines" and len(data["text"]) <= 300
    assert data["text"].endswith("\n") and data["meanLoss"] > 0
    facts = dict(data["facts"])
    assert facts["cell"] == "lstm" and facts["step"] == "1,234"
    assert "validation split" in facts["text"]
    assert command is viz


def test_command_shows_unknown_characters(tmp_path, names_checkpoint):
    out = tmp_path / "p.html"
    result = run("--checkpoint", names_checkpoint, "--prime", "zo\u00eb\nanna", "--out", out)
    assert result.exit_code == 0, result.output
    assert "1 outside the vocabulary" in result.output
    data = json.loads(parse(out.read_text(encoding="utf-8")).data_json)
    assert data["text"] == "zo\u00eb\nanna\n" and data["known"] == "110111111"


def test_command_errors_are_one_line(tmp_path, names_checkpoint):
    before = names_checkpoint.read_bytes()
    text = tmp_path / "t.txt"
    text.write_text("anna\nbob\n", encoding="utf-8")
    link = tmp_path / "to-text.html"
    link.symlink_to(text)
    assert "cap of 5000" in one_line_error(run("--checkpoint", names_checkpoint,
                                               "--length", 6000))
    inputs = "never writes over one of its inputs"
    assert inputs in one_line_error(run("--checkpoint", names_checkpoint,
                                        "--out", names_checkpoint))
    assert inputs in one_line_error(run("--checkpoint", names_checkpoint,
                                        "--text", text, "--out", link))
    assert "Is a directory" in one_line_error(run("--checkpoint", names_checkpoint,
                                                  "--out", tmp_path))
    assert "no line" in one_line_error(run("--checkpoint", names_checkpoint, "--prime", ""))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert "empty" in one_line_error(run("--checkpoint", names_checkpoint, "--text", empty))
    assert names_checkpoint.read_bytes() == before and text.read_text() == "anna\nbob\n"
    both = run("--checkpoint", names_checkpoint, "--text", text, "--prime", "x")
    assert both.exit_code == 2 and "not both" in both.output


def test_command_without_its_corpus_says_what_to_pass(tmp_path, names_file):
    saved = random_checkpoint("gru", "lines", names_file.read_text(encoding="utf-8"),
                              corpus=str(tmp_path / "gone.txt"))
    save_checkpoint(tmp_path / "c.npz", saved)
    assert "--text FILE or --prime" in one_line_error(run("--checkpoint", tmp_path / "c.npz",
                                                          "--out", tmp_path / "p.html"))


# --- a real browser ------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# CI sets CHARRNN_REQUIRE_BROWSER=1: there a missing Chromium fails these tests, never skips them
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CHARRNN_REQUIRE_BROWSER"),
    reason="headless Chromium not installed (Debian: apt-get install chromium; .ci/run "
           "installs it)")


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def console_messages(stderr: str, page: Path) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and page.name in line]


def browser_pages(tmp_path) -> dict[str, tuple[Path, V.Trace]]:
    pages = {}
    stream = planted_trace(shakespeare(7000, 900) + ' "quoted (text)" ' + HOSTILE)
    names_trace = planted_trace("\n".join(names(120)) + "\n", "lines", H=40)
    saved = random_checkpoint("lstm", "stream", shakespeare(0, 3000), layers=2)
    model_trace = V.trace_model(saved, HOSTILE + shakespeare(40_000, 400))
    lines = random_checkpoint("gru", "lines", "\n".join(names(10_000, 1)).replace("q", ""))
    lines_trace = V.trace_model(lines, "\n".join(names(60) + ["jacques", "zoe"]) + "\n")
    for name, trace in (("stream", stream), ("names", names_trace), ("model", model_trace),
                        ("model-lines", lines_trace)):
        findings = V.find_units(trace.text, trace.series, trace.mode, trace.known)
        path = tmp_path / f"{name}.html"
        V.write_page(path, V.build_page(trace, findings))
        pages[name] = (path, trace)
    return pages


@needs_chromium
@pytest.mark.slow
def test_page_runs_in_chromium_and_a_click_recolours(tmp_path):
    pages = browser_pages(tmp_path)
    for name, (path, trace) in pages.items():
        result = chromium(tmp_path, path.as_uri() + "#selftest", "--dump-dom")
        assert result.returncode == 0, result.stderr[-2000:]
        dom = parse(result.stdout)
        assert dom.attributes.get("data-viz-status") == "ok", (name, dom.attributes)
        assert console_messages(result.stderr, path) == [], name
        # every character is on the page as the script shows it, hostile ones included
        assert dom.spans == [shown(ch) for ch in trace.text], name
        selftest = dict(part.split("=", 1)
                        for part in dom.attributes["data-viz-selftest"].split(";"))
        assert selftest["guesses"] == str(min(5, len(trace.vocab)))
        if int(selftest["findings"]):
            assert selftest["by"] == "unit" and int(selftest["changed"]) > 0, (name, selftest)
            assert int(selftest["active"]) >= 1
    # a link straight to one unit: the legend names it
    path, _ = pages["stream"]
    result = chromium(tmp_path, path.as_uri() + "#unit=layer%200%20c:5&char=30", "--dump-dom")
    assert re.search(r'id="legendname">layer 0 c, unit 5<', result.stdout)
    assert 'class="ch pinned"' in result.stdout


@needs_chromium
@pytest.mark.slow
def test_screenshot_is_not_blank(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    path, _ = browser_pages(tmp_path)["stream"]
    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, path.as_uri() + "#char=40", f"--screenshot={shot}",
                      "--window-size=1200,900")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (900, 1200)
    not_white = (pixels < 0.95).any(axis=-1).mean()
    reddish = ((pixels[..., 0] > 0.8) & (pixels[..., 1] < 0.7) & (pixels[..., 2] < 0.7)).mean()
    assert not_white > 0.05, not_white  # text, colours and panels, not an empty page
    assert reddish > 0.002, reddish  # the surprise colouring is drawn
