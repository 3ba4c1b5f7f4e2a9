"""Write docs/config.md from charrnn/config.py, the one place where config keys are defined.

    python scripts/config_doc.py          # rewrite docs/config.md
    python scripts/config_doc.py --check  # exit 1 if docs/config.md differs from the code
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from charrnn.config import reference_markdown
from charrnn.plumbing.writing import atomic_write

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = reference_markdown()
    if args.check:
        same = PAGE.is_file() and PAGE.read_text(encoding="utf-8") == text
        print(f"{PAGE} is {'up to date' if same else 'out of date: run scripts/config_doc.py'}")
        return 0 if same else 1
    atomic_write(PAGE, text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
