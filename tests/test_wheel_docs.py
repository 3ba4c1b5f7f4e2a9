"""The wheel holds every file the README and docs use (issue 19, point 3): build the wheel,
install it into a fresh virtual environment, and run every shell block of README.md and
docs/*.md in one empty directory, in the order a reader meets them (README first).

README promise: "Installed from a wheel it works from any folder", and every shell block of
README.md and docs/*.md runs as shown.

Which blocks run, read from the files at run time:
- a fenced block whose info string is bash, sh, shell or console (an untagged block is a
  synopsis, not a command);
- unless the line before its opening fence is `<!-- no-test -->`: a block that trains for
  minutes, needs a machine it names (a Dask scheduler) or a file the reader brings.
`pip install ...` steps are skipped (installing the wheel is the test's own first step), and a
console block's `$ ` prompts are dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

NO_TEST = "<!-- no-test -->"
SHELLS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(```+|~~~+)\s*([\w-]*)[^\n]*$")
# what the source tree holds beside the package: left out of the copy the wheel is built from
TOP_LEVEL_EXTRAS = {".git", "build", "dist", "checkpoints", "sweeps", "benchmarks", ".venv",
                    ".ci-venv", "tests"}
CACHES = shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
                                ".hypothesis")


def not_shipped(folder: str, names: list[str]) -> set[str]:
    extras = TOP_LEVEL_EXTRAS if Path(folder) == REPO else set()
    return set(CACHES(folder, names)) | (extras & set(names))


def doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def shell_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, text) of each block of page that the test runs (see the module's doc)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(fence)),
                   len(lines))
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        if language in SHELLS and before != NO_TEST:
            blocks.append((i + 1, "\n".join(lines[i + 1:end])))
        i = end + 1
    return blocks


def runnable(block: str) -> str:
    """The block as a shell script: prompts dropped, pip install steps left out."""
    out = []
    for line in block.splitlines():
        line = re.sub(r"^\$ ", "", line)
        steps = [step for step in line.split(" && ")
                 if not re.match(r"\s*(python3? -m )?pip install\b", step)]
        out.append(" && ".join(steps))
    return "\n".join(out)


def test_marker_convention_selects_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```bash\ncharrnn train\n```\n\n<!-- no-test -->\n```bash\n"
                    "charrnn train --config shakespeare-lstm\n```\n\n```\ncharrnn train "
                    "[--steps N]\n```\n\n```console\n$ pip install charrnn && charrnn info x\n"
                    "```\n",
                    encoding="utf-8")
    blocks = shell_blocks(page)
    assert [text for _, text in blocks] == ["charrnn train",
                                            "$ pip install charrnn && charrnn info x"]
    assert runnable(blocks[1][1]) == "charrnn info x"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The bin/ folder of a fresh venv holding only the wheel built from this checkout (its
    dependencies come from the system site-packages, so nothing is downloaded)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=not_shipped)
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(dist), str(source)], check=True,
                   capture_output=True, text=True)
    wheel = next(dist.glob("charrnn-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index",
                    "-q", str(wheel)], check=True, capture_output=True, text=True)
    where = subprocess.run([str(bin_dir / "python"), "-c",
                            "import charrnn, sys; print(charrnn.__file__)"], cwd=root,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(venv), f"charrnn imported from {where}, not the wheel"
    return bin_dir


def test_the_wheel_holds_the_shipped_configs_sweeps_and_corpora(installed, tmp_path):
    python = str(installed / "python")
    listed = subprocess.run([str(installed / "charrnn"), "configs"], cwd=tmp_path, check=True,
                            capture_output=True, text=True).stdout
    for name in ("names", "shakespeare-lstm", "sweeps/names"):
        assert re.search(rf"^\s+{re.escape(name)}\s", listed, re.M), listed
    shown = subprocess.run([str(installed / "charrnn"), "configs", "show", "sweeps/names"],
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert shown.startswith("#") and "grid:" in shown
    files = subprocess.run([python, "-c", "from charrnn.config import shipped_folder as f; "
                            "print(*sorted(p.name for p in f('corpora').iterdir()))"],
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert "names.txt" in files and "shakespeare.txt" in files
    # docs/sweep.md's first command, by its repository path, and a copied sweep whose base is
    # a shipped config's file name
    for given in ("configs/sweeps/names.yaml", "sweeps/names"):
        plan = subprocess.run([str(installed / "charrnn"), "sweep", given, "--dry-run"],
                              cwd=tmp_path, capture_output=True, text=True)
        assert plan.returncode == 0 and "t011" in plan.stdout, plan.stdout + plan.stderr
    (tmp_path / "mine.yaml").write_text("base: names.yaml\ngrid: {training.lr: [0.001, 0.01]}\n",
                                        encoding="utf-8")
    plan = subprocess.run([str(installed / "charrnn"), "sweep", "mine.yaml", "--dry-run"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert plan.returncode == 0 and "t001" in plan.stdout, plan.stdout + plan.stderr


def test_every_doc_block_runs_from_the_wheel_in_an_empty_directory(installed, tmp_path):
    """One directory for all pages, README first: a reader's checkpoints/names.npz from the
    quick start is what the later pages' commands use."""
    env = {**os.environ, "PATH": os.pathsep.join([str(installed), os.environ["PATH"]]),
           "VIRTUAL_ENV": str(installed.parent)}
    env.pop("PYTHONPATH", None)
    ran = 0
    for page in doc_pages():
        for line, block in shell_blocks(page):
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", runnable(block)],
                                    cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=1800)
            where = f"{page.relative_to(REPO)}:{line}"
            assert result.returncode == 0, (
                f"{where}: the block failed (mark it {NO_TEST} on the line before its fence "
                f"if it is not meant to run here):\n{block}\n--- stderr ---\n"
                f"{result.stderr[-3000:]}")
            assert "Traceback" not in result.stderr, f"{where}:\n{result.stderr[-3000:]}"
            ran += 1
    assert ran > 0
