"""README promise: installed from a wheel, charrnn works from any folder. Every package under
charrnn/ must be named in pyproject.toml's package list, or the wheel silently lacks it."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for init in (ROOT / "charrnn").rglob("__init__.py")
             if "__pycache__" not in init.parts}
    assert found, "no package found under charrnn/"
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
