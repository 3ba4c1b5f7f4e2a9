"""README promise: docs/config.md lists every config key with its default and rule, and is
generated from charrnn/config.py, so the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from charrnn.config import Config, reference_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_config_page_is_what_the_code_generates():
    assert PAGE.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/config.md differs from charrnn/config.py: run python scripts/config_doc.py")


def test_config_page_names_every_key_with_its_default():
    page = PAGE.read_text(encoding="utf-8")
    for section, values in Config().to_dict().items():
        assert f"## {section}" in page
        for key in values:
            assert f"| `{key}` |" in page, f"{section}.{key} missing from docs/config.md"
