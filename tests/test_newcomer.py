"""What a newcomer meets (issue 19): numbers shown twice agree, hints name what exists, help
teaches, sampling does what users do, and the library answers what the command line prints."""

from __future__ import annotations

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
