"""README promise: a newcomer's front door that reads in five minutes, whose two commands are the
ones that install and run the main job and the tests, the second being what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCED = re.compile(r"^```bash\n(.*?)\n```", re.M | re.S)


def test_readme_is_under_200_lines():
    assert len(README.splitlines()) < 200


def test_the_first_two_commands_install_and_run_the_main_job_and_then_the_tests():
    first, second = FENCED.findall(README)[:2]
    assert first == "pip install -e . && charrnn train && charrnn sample"
    assert second == 'pip install -e ".[test]" && pytest -q'


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install, test = FENCED.findall(README)[1].split(" && ")
    assert install.replace("pip install", "pip install --quiet") in ci
    assert re.search(rf"&& {re.escape(test)}\s*$", ci.strip()), "CI's last step is not pytest -q"
