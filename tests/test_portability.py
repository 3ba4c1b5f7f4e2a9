"""Windows lacks `resource`, `fcntl`, os.O_NOFOLLOW and os.fchmod (issue 19, point 6): the
package must import and its main job (train, sample, eval, sweep) must run without them. Each
command runs in a subprocess whose interpreters (the sweep's spawned workers too) start with
them made unavailable by a sitecustomize module.

README promise: "Both work on a fresh clone with Python >= 3.10 and pip": the package and its main
job run where `resource` and `fcntl` are missing (Windows).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import NAMES, REPO

pytestmark = pytest.mark.slow

WITHOUT_POSIX = textwrap.dedent("""\
    # as on Windows: these modules and attributes do not exist
    import os
    import sys

    sys.modules["resource"] = None  # `import resource` raises ImportError
    sys.modules["fcntl"] = None
    del os.O_NOFOLLOW
    del os.fchmod
""")

PROBE = ("import os, sys; import charrnn.train, charrnn.cli.group; "
         "print(hasattr(os, 'O_NOFOLLOW'), hasattr(os, 'fchmod'), "
         "sys.modules.get('fcntl'), sys.modules.get('resource'))")


@pytest.fixture
def without_posix(tmp_path):
    """(run, folder): run(*args) is `charrnn ARGS` in folder, as Windows would lack POSIX."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WITHOUT_POSIX, encoding="utf-8")
    folder = tmp_path / "work"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}

    def run(*args, code=None):
        command = ([sys.executable, "-c", code] if code else
                   [sys.executable, "-m", "charrnn", *map(str, args)])
        result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        return result

    return run, folder


def test_the_prelude_really_removes_them(without_posix):
    run, _ = without_posix
    assert run(code=PROBE).stdout.split() == ["False", "False", "None", "None"]


def test_train_sample_eval_and_sweep_run_without_posix_modules(without_posix):
    run, folder = without_posix
    lines = NAMES.read_text(encoding="utf-8").splitlines()[::10]
    (folder / "names.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run("train", "--corpus", "names.txt", "--out", "model.npz", "--steps", 20,
        "--set", "model.hidden_size=16", "--set", "training.eval_every=10")
    assert (folder / "model.npz").is_file() and (folder / "model.best.npz").is_file()
    assert oct((folder / "model.npz").stat().st_mode & 0o777) != oct(0o600)  # chmod by name
    run("train", "--resume", "model.npz", "--steps", 30)  # the lock and the atomic writer again
    names = run("sample", "--checkpoint", "model.npz", "--num", 5).stdout.splitlines()
    assert len(names) == 5
    run("sample", "--checkpoint", "model.npz", "--num", 3, "--output", "names.out")
    assert len((folder / "names.out").read_text(encoding="utf-8").splitlines()) == 3
    assert "nats/char" in run("eval", "--checkpoint", "model.npz", "names.txt").stdout
    (folder / "sweep.yaml").write_text(textwrap.dedent(f"""\
        base: {REPO / "configs" / "names.yaml"}
        set: {{data.corpus: names.txt, training.steps: 10, training.eval_every: 5,
              training.batch_size: 8, training.seq_length: 8}}
        grid:
          model.hidden_size: [8, 12]
    """), encoding="utf-8")
    run("sweep", "sweep.yaml", "--workers", 2, "--out", "swept")
    assert (folder / "swept" / "results.csv").is_file()
    assert (folder / "swept" / "best.npz").is_file()
