"""Shared fixtures: small real corpora written to tmp_path, and tiny configs over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from charrnn.config import Config

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Corpus caches go to a folder of this test session, never the user's or the source tree
    (subprocesses inherit it)."""
    import os
    import tempfile

    os.environ["CHARRNN_CACHE_DIR"] = tempfile.mkdtemp(prefix="charrnn-test-cache-")


@pytest.fixture(autouse=True)
def _slow_marker_is_honest(request, monkeypatch):
    """The fast loop (`pytest -m "not slow"`) starts no process: a test that starts one (a
    subprocess, a browser, a Dask cluster, a process pool) and is not marked slow fails here,
    whatever the machine's speed."""
    if request.node.get_closest_marker("slow") is not None:
        return
    import multiprocessing.process
    import subprocess

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it "
                             f"@pytest.mark.slow (the fast loop starts none)")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
NAMES = REPO / "corpora" / "names.txt"
SHAKESPEARE = REPO / "corpora" / "shakespeare.txt"


@pytest.fixture
def names_file(tmp_path) -> Path:
    """Every 4th shipped name: real data, 1.3K lines."""
    lines = NAMES.read_text(encoding="utf-8").splitlines()[::4]
    path = tmp_path / "names.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def text_file(tmp_path) -> Path:
    """The first 20K characters of the shipped Shakespeare."""
    path = tmp_path / "text.txt"
    path.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return path


def tiny_config(corpus: Path, out: Path, mode: str = "lines", **training) -> Config:
    settings = dict(batch_size=8, seq_length=10, steps=20, eval_every=10, sample_every=0,
                    checkpoint_every=10, out=str(out), optimizer="adam", lr=0.01)
    settings.update(training)
    return Config().replace(data={"corpus": str(corpus), "mode": mode},
                            model={"hidden_size": 16, "dtype": "float64"}, training=settings)


def run_cli(*args, ok: bool = True):
    """`charrnn ARGS...` in-process; never a traceback, and exit 0 unless ok=False."""
    from click.testing import CliRunner

    from charrnn.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    if ok:
        assert result.exit_code == 0, result.output
    return result


def sweep_table(out: Path) -> list[dict]:
    """A sweep's results.jsonl without the one column that measures time."""
    import json

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


def finished_rungs(out: Path) -> int:
    """Trial-rungs a sweep's state file records as finished (0 while it has none, or is being
    replaced)."""
    import json

    try:
        records = json.loads((out / "state.json").read_text())["records"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(map(len, records.values()))
