"""What a newcomer meets (issue 19): numbers shown twice agree, hints name what exists, help
teaches, sampling does what users do, and the library answers what the command line prints.

README promise: "Bad input gets one line, a non-zero exit and no traceback", with a hint that names
what exists, and what `info`, `train` and `viz` show of one checkpoint agrees.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click
import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from conftest import NAMES, SHAKESPEARE, run_cli


@pytest.fixture(scope="module")
def names_model(tmp_path_factory):
    """A lines-mode model of every 8th shipped name, 20 steps."""
    folder = tmp_path_factory.mktemp("names")
    corpus = folder / "names.txt"
    corpus.write_text("\n".join(NAMES.read_text(encoding="utf-8").splitlines()[::8]) + "\n",
                      encoding="utf-8")
    out = folder / "names.npz"
    run_cli("train", "--corpus", corpus, "--out", out, "--steps", 20, "--seed", 3,
            "--set", "model.hidden_size=16", "--set", "training.eval_every=10")
    return out


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A stream-mode model of 20K characters of the shipped Shakespeare, 20 steps."""
    folder = tmp_path_factory.mktemp("text")
    corpus = folder / "text.txt"
    corpus.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    out = folder / "text.npz"
    run_cli("train", "--corpus", corpus, "--out", out, "--steps", 20, "--seed", 3,
            "--set", "model.hidden_size=16", "--set", "data.mode=stream",
            "--set", "training.eval_every=10")
    return out


# --- the names library: what `sample --novel` and the summary print, callable from Python -----

def test_novel_names_from_python_are_what_the_command_prints(names_model):
    from charrnn.names import novel_names

    result = run_cli("sample", "--checkpoint", names_model, "--num", 5, "--novel", "--seed", 4)
    found = novel_names(load_checkpoint(names_model), 5, np.random.default_rng(4))
    assert result.stdout.splitlines() == found.names
    assert found.summary in result.stderr


def test_names_summary_from_python_is_what_the_command_prints(names_model):
    from charrnn.names import names_summary

    result = run_cli("sample", "--checkpoint", names_model, "--num", 7, "--seed", 5)
    names = result.stdout.splitlines()
    assert names_summary(load_checkpoint(names_model), names) in result.stderr


# --- what the package says it is --------------------------------------------------------------

def test_license_file_and_metadata_describe_the_product():
    import tomllib

    from conftest import REPO

    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the charrnn developers" in license_text
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert all(cell in project["description"] for cell in ("RNN", "LSTM", "GRU"))
    assert "vanilla" not in project["description"]


# --- 1. one source for every figure shown twice -------------------------------------------------

def _train_log(tmp_path, corpus_text, mode, *extra):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text, encoding="utf-8")
    out = tmp_path / "model.npz"
    result = run_cli("train", "--corpus", corpus, "--out", out, "--steps", 20, "--seed", 3,
                     "--set", "model.hidden_size=8", "--set", f"data.mode={mode}",
                     "--set", "training.eval_every=7", *extra)
    return out, result.stderr


@pytest.mark.parametrize("mode", ["lines", "stream"])
def test_start_line_info_and_checkpoint_count_the_corpus_characters_once(tmp_path, mode):
    text = "\n".join(NAMES.read_text(encoding="utf-8").splitlines()[::10]) + "\n"
    out, log = _train_log(tmp_path, text, mode)
    start = next(line for line in log.splitlines() if line.startswith("corpus "))
    shown = int(re.search(r"([\d,]+) characters", start).group(1).replace(",", ""))
    assert shown == len(text)
    facts = json.loads(run_cli("info", out, "--json").stdout)
    assert facts["corpus_fingerprint"] == load_checkpoint(out).meta["corpus"]
    assert facts["corpus_fingerprint"]["characters"] == len(text)
    assert f"{len(text):,} characters, sha256 " in run_cli("info", out).stdout


def test_info_and_train_show_the_same_best_validation_loss(tmp_path):
    out, log = _train_log(tmp_path, SHAKESPEARE.read_text(encoding="utf-8")[:8000], "stream")
    trained = float(re.search(r"best val ([\d.]+) nats/char", log).group(1))
    facts = json.loads(run_cli("info", out, "--json").stdout)
    assert f"{facts['best_val_loss']:.4f}" == f"{trained:.4f}"
    assert f"best validation {trained:.4f} nats/char" in run_cli("info", out).stdout
    assert facts["best_val_loss"] == load_checkpoint(out).best_val_loss


def test_viz_shows_the_best_validation_loss_info_shows(tmp_path):
    out, _ = _train_log(tmp_path, SHAKESPEARE.read_text(encoding="utf-8")[:8000], "stream")
    best = json.loads(run_cli("info", out, "--json").stdout)["best_val_loss"]
    page = tmp_path / "viz.html"
    run_cli("viz", "--checkpoint", out, "--out", page, "--length", 200)
    shown = re.findall(r"best val loss\W+([\d.]+) nats/char", page.read_text(encoding="utf-8"))
    assert shown == [f"{best:.4f}"]


# --- 2. every hint names an option or a file that exists ---------------------------------------

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _command(name):
    from charrnn.cli import main

    return main.commands[name]


def _options(command) -> set[str]:
    return {opt for param in command.params for opt in param.opts + param.secondary_opts
            if opt.startswith("--")} | {"--help"}


def check_hint(command_name: str, message: str) -> None:
    """Every --option a message names is one of the command's own, or of the `charrnn X` it
    suggests; every `charrnn X` it suggests is a command; every --set K=V it suggests is valid."""
    from charrnn.config import Config, with_overrides

    parts = re.split(r"(`?)charrnn (?=[a-z-])", message)  # [text, tick, text, tick, ...]
    for index in range(0, len(parts), 2):
        part, name = parts[index], command_name
        if index:  # the text after 'charrnn ': a command of the group, or prose
            name = part.split()[0].strip("`'.,;:)")
            if name.startswith("--") or (not parts[index - 1] and name not in _command_names()):
                name = command_name  # charrnn --version, or prose: "a charrnn checkpoint"
            assert name in _command_names(), f"{message!r} suggests no command: charrnn {name}"
        for option in OPTION.findall(part):
            assert option in _options(_command(name)), (
                f"{message!r} names {option}, which `charrnn {name}` does not have")
        for setting in re.findall(r"--set ([a-z_]+\.[a-z_]+=[^\s?;,)]+)", part):
            with_overrides(Config(), [setting])  # raises if the suggestion is wrong


def _command_names():
    from charrnn.cli import main

    return set(main.commands)


def test_every_option_a_message_names_exists_in_some_command():
    """A static walk over every string in the package: an --option named anywhere (a hint, a
    help text) is an option of some command."""
    import ast

    from conftest import REPO

    known = set().union(*(_options(_command(name)) for name in _command_names())) | {
        "--version"}
    other_programs = re.compile(r"dask worker|benchmarks/\w+\.py")  # their options are theirs
    missing = []
    for path in sorted((REPO / "charrnn").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parts = {id(value) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                 for value in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):  # an f-string, read whole: {} for each field
                text = "".join(value.value if isinstance(value, ast.Constant) else "{}"
                               for value in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    id(node) not in parts:
                text = node.value
            else:
                continue
            missing += [(path.name, option)
                        for option in OPTION.findall(other_programs.split(text)[0])
                        if option not in known]
    assert not missing, sorted(set(missing))


def test_plot_of_a_best_checkpoint_names_the_log_that_exists(names_model):
    best = names_model.with_name(names_model.stem + ".best.npz")
    assert best.exists()
    for given in (best, names_model):
        message = run_cli("plot", given, ok=False).output
        log = re.search(r"charrnn plot (\S+)", message).group(1)
        assert Path(log).is_file() and log.endswith(".jsonl"), message
        check_hint("plot", message)


def test_plot_of_a_checkpoint_without_its_log_names_no_file_that_is_not_there(tmp_path,
                                                                             names_model):
    lone = tmp_path / "lone.npz"
    lone.write_bytes(names_model.read_bytes())
    message = run_cli("plot", lone, ok=False).output
    assert "charrnn plot" not in message and "which is not in" in message


@pytest.mark.parametrize("setting, suggested", [
    ("hidden_size=64", "model.hidden_size=64"),
    ("learning_rate=0.01", "training.lr=0.01"),
    ("rnn_size=32", "model.hidden_size=32"),
    ("num_layers=2", "model.num_layers=2"),
    ("training.lerning_rate=0.1", "training.lr=0.1"),
    ("training.learning_rate=0.1", "training.lr=0.1"),
    ("model.rnn_size=32", "model.hidden_size=32"),
    ("trainng.lr=0.1", "training.lr=0.1"),
    ("model.hiden_size=8", "model.hidden_size=8"),
])
def test_set_suggests_the_key_it_means(setting, suggested):
    result = run_cli("train", "--set", setting, "--steps", 1, ok=False)
    assert result.exit_code == 2 or result.exit_code == 1
    assert (f"did you mean --set {suggested}?" in result.output
            or f"try --set {suggested};" in result.output), result.output
    check_hint("train", result.output)


def test_set_errors_are_not_blamed_on_the_shipped_config():
    result = run_cli("train", "--set", "training.lr=-1", "--steps", 1, ok=False)
    assert "training.lr" in result.output and "site-packages" not in result.output
    assert "names.yaml" not in result.output and "configs" not in result.output


HINTED_ERRORS = [  # (command, arguments): error paths whose message suggests something
    ("train", ["--resume", "missing.npz"]),
    ("train", ["--init-from", "missing.npz", "--steps", "1"]),
    ("train", ["--config", "no-such-config"]),
    ("train", ["--config", "names", "--resume", "{model}"]),
    ("train", ["--resume", "{model}", "--init-from", "{model}"]),
    ("train", ["--resume", "{model}", "--set", "model.hidden_size=9"]),
    ("sample", ["--checkpoint", "missing.npz"]),
    ("sample", ["--checkpoint", "{model}", "--num", "3", "--length", "5"]),
    ("sample", ["--checkpoint", "{model}", "--novel", "--length", "5"]),
    ("sample", ["--checkpoint", "{model}", "--greedy", "--beam", "2"]),
    ("sample", ["--checkpoint", "{model}", "--greedy", "--top-k", "2"]),
    ("sample", ["--checkpoint", "{model}", "--beam-score", "mean"]),
    ("sample", ["--checkpoint", "{model}", "--prime", "Q"]),
    ("sample", ["--checkpoint", "{model}", "--prime", "ZZ9"]),
    ("sample", ["--checkpoint", "{model}", "--beam", "2", "--num", "3"]),
    ("eval", ["--checkpoint", "missing.npz"]),
    ("eval", ["--checkpoint", "{model}", "missing.txt"]),
    ("info", ["missing.npz"]),
    ("info", ["{corpus}"]),
    ("viz", ["--checkpoint", "{model}", "--text", "x.txt", "--prime", "ab"]),
    ("viz", ["--checkpoint", "missing.npz"]),
    ("gradflow", ["--checkpoint", "missing.npz"]),
    ("gradcheck", ["--config", "names", "--checkpoint", "{model}"]),
    ("plot", ["{model}"]),
    ("plot", ["missing.jsonl"]),
    ("sweep", ["missing.yaml"]),
    ("sweep", ["{sweeps}/bad-base.yaml", "--dry-run"]),
    ("sweep", ["{sweeps}/bad-key.yaml", "--dry-run"]),
    ("sweep", ["{sweeps}/bad-key.yaml", "--workers", "2", "--address", "tcp://h:1"]),
    ("gradflow", ["--checkpoint", "{model}", "--compare", "{model}"]),
    ("gradflow", ["--checkpoint", "{model}", "--text", "x.txt", "--prime", "ab"]),
    ("viz", ["--checkpoint", "{model}", "--length", "999999"]),
    ("train", ["--corpus", "{corpus}", "--time", "3q"]),
    ("train", ["--set", "hidden_size=8"]),
    ("train", ["--set", "model.rnn_size=8"]),
    ("export", ["--checkpoint", "missing.npz", "--to", "html", "--out", "x.html"]),
    ("export", ["{model}", "--to", "html", "--out", "{model}"]),
    ("configs", ["show", "nmes"]),
    ("eval", ["--checkpoint", "{model}"]),
    ("eval", ["--checkpoint", "{model}", "--corpus", "x.txt", "--text", "{corpus}"]),
]


@pytest.mark.parametrize("command, arguments", HINTED_ERRORS,
                         ids=[" ".join([c, *a]) for c, a in HINTED_ERRORS])
def test_every_hint_names_an_option_or_file_that_exists(command, arguments, names_model,
                                                        monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    corpus = load_checkpoint(names_model).config.data.corpus
    (tmp_path / "bad-base.yaml").write_text("base: nope.yaml\ngrid: {training.lr: [0.1, 0.2]}\n")
    (tmp_path / "bad-key.yaml").write_text("base: names\ngrid: {hidden_size: [8, 9]}\n")
    args = [a.format(model=names_model, corpus=corpus, sweeps=tmp_path) for a in arguments]
    result = run_cli(command, *args, ok=False)
    assert result.exit_code != 0, result.output
    check_hint(command, result.output)


# --- 5. sampling: several texts, a stop string, a prime from a file, streaming ---------------

def _samples(stdout: str, num: int) -> list[str]:
    """The texts between `=== sample i of num ===` headers."""
    parts = re.split(r"(?:^|\n\n)=== sample \d+ of \d+ ===\n", stdout)
    assert parts[0] == "" and len(parts) == num + 1, stdout
    return [part.removesuffix("\n") for part in parts[1:]]


def test_num_on_a_text_model_gives_independent_samples_each_of_length(text_model):
    from charrnn.sample import sample_text

    result = run_cli("sample", "--checkpoint", text_model, "--num", 3, "--length", 60,
                     "--seed", 7)
    samples = _samples(result.stdout, 3)
    saved = load_checkpoint(text_model)
    rng = np.random.default_rng(7)
    assert samples == [sample_text(saved.model, saved.vocab, 60, rng) for _ in range(3)]
    assert len(set(samples)) == 3 and all(len(s) == 60 for s in samples)


def test_output_dir_writes_one_file_a_sample(text_model, tmp_path):
    stdout = run_cli("sample", "--checkpoint", text_model, "--num", 3, "--length", 50,
                     "--seed", 2).stdout
    out = tmp_path / "samples"
    out.mkdir()
    run_cli("sample", "--checkpoint", text_model, "--num", 3, "--length", 50, "--seed", 2,
            "--output", out)
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["sample-1.txt", "sample-2.txt", "sample-3.txt"]
    assert [f.read_text(encoding="utf-8").removesuffix("\n") for f in files] == _samples(
        stdout, 3)
    run_cli("sample", "--checkpoint", text_model, "--num", 2, "--length", 50, "--seed", 2,
            "--output", f"{tmp_path / 'new'}/")  # a name ending in / is a directory to make
    assert sorted(f.name for f in (tmp_path / "new").iterdir()) == ["sample-1.txt",
                                                                    "sample-2.txt"]


@pytest.mark.parametrize("where", [0, 30])
def test_stop_ends_each_sample_at_its_first_stop_string(text_model, where):
    full = _samples(run_cli("sample", "--checkpoint", text_model, "--num", 4, "--length", 300,
                            "--seed", 5).stdout, 4)
    # a string the model writes (in the first sample at least), without the newline that
    # the samples' framing ends them with
    where = next(i for i in range(where, 298) if "\n" not in full[0][i:i + 2])
    stop = full[0][where:where + 2]
    cut = _samples(run_cli("sample", "--checkpoint", text_model, "--num", 4, "--length", 300,
                           "--seed", 5, "--stop", stop.replace("\\", "\\\\")).stdout, 4)
    for whole, short in zip(full, cut):
        at = whole.find(stop)
        assert short == (whole if at < 0 else whole[:at + len(stop)])
    assert len(cut[0]) <= where + 2


def test_stop_reads_backslash_n_and_t_as_a_newline_and_a_tab():
    from charrnn.cli.sample import _unescape

    assert _unescape("\\n\\n") == "\n\n" and _unescape("a\\tb") == "a\tb"
    assert _unescape("\\\\n") == "\\n"


def test_prime_file_is_the_same_as_that_prime(text_model, tmp_path):
    prime = "ROMEO:\nWhat light"
    (tmp_path / "prime.txt").write_text(prime, encoding="utf-8")
    given = run_cli("sample", "--checkpoint", text_model, "--prime", prime, "--length", 40,
                    "--seed", 1).stdout
    from_file = run_cli("sample", "--checkpoint", text_model, "--prime-file",
                        tmp_path / "prime.txt", "--length", 40, "--seed", 1).stdout
    assert from_file == given and given.startswith(prime) and len(given) == len(prime) + 41
    both = run_cli("sample", "--checkpoint", text_model, "--prime", "a", "--prime-file",
                   tmp_path / "prime.txt", ok=False)
    assert both.exit_code == 2 and "not both" in both.output


class _Terminal:
    """A stdout that says it is a terminal and records each write."""

    def __init__(self):
        self.writes: list[str] = []
        self.flushes = 0

    def isatty(self):
        return True

    def write(self, text):
        self.writes.append(text)

    def flush(self):
        self.flushes += 1


def test_text_streams_to_a_terminal_as_it_is_generated(text_model, monkeypatch):
    import charrnn.cli.sample as cli_sample

    terminal = _Terminal()
    seen_when_drawn = []
    original = cli_sample.generate_text

    def watched(*args, **kwargs):
        for char in original(*args, **kwargs):
            seen_when_drawn.append(len("".join(terminal.writes)))
            yield char

    monkeypatch.setattr(cli_sample, "generate_text", watched)
    monkeypatch.setattr("sys.stdout", terminal)
    cli_sample.command.main(["--checkpoint", str(text_model), "--length", 80, "--seed", 3],
                            standalone_mode=False)
    saved = load_checkpoint(text_model)
    from charrnn.sample import sample_text

    assert "".join(terminal.writes) == sample_text(saved.model, saved.vocab, 80,
                                                   np.random.default_rng(3)) + "\n"
    # when the k-th character is drawn, the k - 1 before it are already on the screen
    assert seen_when_drawn == list(range(80)) and terminal.flushes >= 80


def test_names_model_keeps_num_for_names(names_model):
    result = run_cli("sample", "--checkpoint", names_model, "--num", 5, "--seed", 1)
    assert len(result.stdout.splitlines()) == 5 and "===" not in result.stdout
    refused = run_cli("sample", "--checkpoint", names_model, "--stop", "a", ok=False)
    assert refused.exit_code == 2 and "--stop" in refused.output


# --- 3. the shipped configs and sweeps, from any folder ----------------------------------------

def test_configs_lists_the_shipped_configs_and_sweeps():
    from charrnn.config import shipped_configs, shipped_sweeps

    listed = run_cli("configs").stdout
    for name in [*shipped_configs(), *(f"sweeps/{name}" for name in shipped_sweeps())]:
        assert re.search(rf"^\s+{re.escape(name)}\s", listed, re.M), (name, listed)


def test_a_shown_config_copied_into_any_folder_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(run_cli("configs", "show", "names").stdout,
                                        encoding="utf-8")
    run_cli("train", "--config", "mine.yaml", "--steps", 2, "--out", "mine.npz",
            "--set", "training.eval_every=1")
    assert (tmp_path / "mine.npz").is_file()


def test_a_shown_sweep_copied_into_any_folder_plans(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(run_cli("configs", "show", "sweeps/names").stdout,
                                        encoding="utf-8")
    assert "t011" in run_cli("sweep", "mine.yaml", "--dry-run").stdout


@pytest.mark.parametrize("base", ["names", "names.yaml"])
def test_sweep_base_names_a_shipped_config_with_or_without_yaml(tmp_path, monkeypatch, base):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(f"base: {base}\ngrid: {{training.lr: [0.001, 0.01]}}\n",
                                     encoding="utf-8")
    assert "t001" in run_cli("sweep", "s.yaml", "--dry-run").stdout


@pytest.mark.parametrize("given", ["configs/sweeps/names.yaml", "sweeps/names", "names"])
def test_sweep_finds_the_shipped_sweep_from_any_folder(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    assert "t011" in run_cli("sweep", given, "--dry-run").stdout


def test_configs_show_of_an_unknown_name_suggests_one_that_exists():
    result = run_cli("configs", "show", "nmes", ok=False)
    assert "did you mean 'names'?" in result.output
    check_hint("configs", result.output)


# --- 4. help that teaches; inputs named alike -------------------------------------------------

def _help(*path) -> str:
    return run_cli(*path, "--help").stdout


def _all_commands():
    from charrnn.cli import main

    found = []
    for name, command in sorted(main.commands.items()):
        found.append(((name,), command))
        for sub, inner in sorted(getattr(command, "commands", {}).items()):
            found.append(((name, sub), inner))
    return found


@pytest.mark.parametrize("path", [p for p, _ in _all_commands()], ids=" ".join)
def test_every_help_ends_with_examples_that_use_real_options(path):
    text = _help(*path)
    head, _, tail = text.partition("\n  Examples:\n")
    assert tail, f"charrnn {' '.join(path)} --help has no examples"
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    assert 2 <= len(lines) <= 3, lines
    for line in lines:
        assert line.startswith(f"charrnn {path[0]}"), line
        check_hint(path[0] if len(path) == 1 else path[0], line.partition("#")[0])
    assert "the default config's training.out" not in text
    assert "9223372036854775807" not in text  # --seed shows INTEGER


PATH_OPTIONS = {"--checkpoint", "--corpus", "--val", "--out", "--output", "--text",
                "--prime-file", "--plot", "--resume", "--init-from", "--config", "--compare"}


@pytest.mark.parametrize("path", [p for p, _ in _all_commands()], ids=" ".join)
def test_metavars_say_what_an_option_takes(path):
    command = dict(_all_commands())[path]
    ctx = command.make_context("charrnn", [], resilient_parsing=True)
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        metavar = param.make_metavar(ctx)
        vague = ("PATH", "DIRECTORY", "INTEGER RANGE", "FLOAT RANGE") + (
            () if "--prime" in param.opts else ("TEXT",))  # --prime's value is text
        assert metavar not in vague, (path, param.opts, metavar)
        if set(param.opts) & PATH_OPTIONS and not param.is_flag:
            assert metavar in ("FILE", "DIR", "FILE|DIR", "NAME|FILE"), (path, param.opts)


def test_commands_that_read_a_model_take_checkpoint_and_a_text_take_text():
    from charrnn.cli import main

    for name in ("sample", "eval", "info", "gradflow", "viz", "export", "gradcheck"):
        assert "--checkpoint" in _options(main.commands[name]), name
    for name in ("eval", "viz", "gradflow"):
        assert "--text" in _options(main.commands[name]), name
    assert "[default: checkpoints/names.npz]" in _help("sample")


def test_old_positional_spellings_still_work(names_model, tmp_path):
    assert run_cli("info", names_model).stdout == run_cli("info", "--checkpoint",
                                                          names_model).stdout
    text = tmp_path / "more.txt"
    text.write_text("emma\nolivia\n", encoding="utf-8")
    assert run_cli("eval", "--checkpoint", names_model, text).stdout == run_cli(
        "eval", "--checkpoint", names_model, "--text", text).stdout
    twice = run_cli("info", names_model, "--checkpoint", tmp_path / "other.npz", ok=False)
    assert twice.exit_code == 2 and "give one" in twice.output


# --- 6. what differs on macOS and Windows -----------------------------------------------------

def test_a_blas_that_threadpoolctl_cannot_set_is_said_on_the_start_line(monkeypatch):
    import threadpoolctl

    from charrnn.plumbing import threads

    choice = threads.ThreadChoice(1, "auto: small matrices")
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [
        {"user_api": "blas", "internal_api": "openblas"}])
    assert choice.describe() == "1 BLAS thread (auto: small matrices)"
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: [])  # Apple's Accelerate
    assert "not enforced" in choice.describe() and "VECLIB_MAXIMUM_THREADS" in choice.describe()


def test_accelerates_own_thread_setting_wins_over_auto():
    from charrnn.plumbing.threads import choose_threads

    chosen = choose_threads("auto", 64, 512, 4, environ={"VECLIB_MAXIMUM_THREADS": "3"},
                            cores=8, load=0.0)
    assert chosen.threads == 3 and "VECLIB_MAXIMUM_THREADS" in chosen.reason


def test_without_proc_stat_or_a_load_average_auto_takes_one_thread(monkeypatch):
    from charrnn.plumbing import threads

    def unreadable():
        raise OSError("no /proc here")

    monkeypatch.setattr(threads, "_cpu_times", unreadable)
    monkeypatch.delattr(threads.os, "getloadavg")
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    assert threads.busy_cores(0) == 4.0
    assert threads.choose_threads("auto", 64, 512, 4, environ={}, cores=4).threads == 1


def test_portability_fallbacks_where_the_features_are_missing(monkeypatch, tmp_path):
    from charrnn.plumbing import portability

    monkeypatch.setattr(portability, "fcntl", None)
    monkeypatch.setattr(portability, "msvcrt", None)
    with open(tmp_path / "lock", "w") as handle:
        assert portability.try_lock(handle.fileno()) is None  # no lock, and no error
    monkeypatch.delattr(portability.os, "fchmod")
    target = tmp_path / "f"
    target.write_text("x")
    fd = os.open(target, os.O_RDONLY)
    try:
        portability.set_mode(fd, target, 0o640)
    finally:
        os.close(fd)
    assert target.stat().st_mode & 0o777 == 0o640
    monkeypatch.delattr(portability.os, "sysconf")
    assert portability.memory_limit() is None
