"""Checkpoints: `.npz` files written atomically and read without pickle, checked before use.

Keys (all plain arrays; text is stored as 0-d unicode arrays):
    format          "charrnn-checkpoint"         version     int64, FORMAT_VERSION
    config          the run's config as YAML      meta        JSON: step, RNG state, best loss, ...
    vocab           (V,) uint32 code points, ascending
    l0.W_xh, l0.W_hh, l0.b_h, ..., W_hy, b_y   the weights (float32 or float64), named and shaped
                    by charrnn.model.param_shapes for the config's cell and layers
    opt.<slot>.<param>   optimizer state, shaped like the parameter (e.g. opt.mem.l0.W_xh)
    state.l<k>.<h|c>     (B, H) recurrent state carried between chunks (stream mode)

Version 1 (the first release: one vanilla layer named W_xh, W_hh, b_h, W_hy, b_y, its state
`h`) is read by renaming its keys to version 2's, and then checked like any other.

A checkpoint may come from anywhere, so loading trusts nothing in it: the zip directory and every
.npy header are read first, an array is only allocated once its header agrees with the bytes that
hold it and with the shapes the stored config and vocabulary imply, and nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.config import Config, config_from_yaml_text
from charrnn.errors import CharRNNError
from charrnn.model import Model, ModelSpec, param_shapes, state_keys
from charrnn.plumbing import writing
from charrnn.plumbing.paths import (
    TEMP_SUFFIX,  # noqa: F401  (TEMP_SUFFIX: re-exported)
    same_file,
)
from charrnn.plumbing.terminal import shown as quoted
from charrnn.plumbing.writing import replacing
from charrnn.vocab import MAX_VOCAB_SIZE, Vocabulary

FORMAT_NAME = "charrnn-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# version 1 names -> version 2 names (one vanilla layer)
V1_NAMES = {"W_xh": "l0.W_xh", "W_hh": "l0.W_hh", "b_h": "l0.b_h", "h": "state.l0.h"}
MAX_ARRAY_BYTES = 8 * 2**30  # no array of a checkpoint we could write is this large
MAX_DEFLATE_RATIO = 1032  # DEFLATE cannot expand data more than this; more is a zip bomb
TEXT_KEYS = ("format", "config", "meta")
MAX_COUNT = 2**53  # no counter of a real run comes near; JSON keeps integers exact up to here

# meta entries the trainer reads back, and what each must be; other entries load as they are
# (a resumed run writes a fresh meta without them)
META_COUNTS = ("step", "optimizer_t", "evals_since_best", "chars_seen", "stream_position")


@dataclass
class Checkpoint:
    """Everything needed to sample from a model or to resume its training exactly."""

    config: Config
    vocab: Vocabulary
    params: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, np.ndarray] | None = None  # state.l0.h, ...: carried between chunks
    meta: dict = field(default_factory=dict)
    version: int = FORMAT_VERSION  # of the file it was read from

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def best_val_loss(self) -> float | None:
        """The validation loss (nats per character) of the best weights this run wrote: the
        figure `charrnn info`, `viz` and `train` show for the file."""
        return self.meta.get("best_file_loss", self.meta.get("best_val_loss"))

    @property
    def corpus_fingerprint(self) -> dict | None:
        """The training text's {"characters", "sha256"} (meta 'corpus'); None in older files."""
        return self.meta.get("corpus")

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_config(self.config.model, len(self.vocab))

    @property
    def model(self) -> Model:
        return Model(self.spec, self.params)


# --- writing -----------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write atomically (charrnn.plumbing.writing: a temporary file in the same directory, fsync,
    os.replace).

    Weights, optimizer state or carried state holding NaN or infinity are refused, so a diverged
    run never replaces the last good checkpoint with one that cannot be loaded.
    """
    path = Path(path)
    _refuse_non_finite(path, checkpoint)
    arrays = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "config": np.array(checkpoint.config.to_yaml()),
        "meta": np.array(json.dumps(checkpoint.meta, sort_keys=True)),
        "vocab": checkpoint.vocab.codes.astype(np.uint32),
        **checkpoint.params,
        **{f"opt.{key}": value for key, value in checkpoint.optimizer_state.items()},
    }
    if checkpoint.state is not None:
        arrays.update(checkpoint.state)
    with replacing(path, "checkpoint", "choose another --out or free the path") as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)


def _refuse_non_finite(path: Path, checkpoint: Checkpoint) -> None:
    unchanged = "the previous checkpoint there is unchanged"
    for name, value in checkpoint.params.items():
        if not np.all(np.isfinite(value)):
            raise CharRNNError(
                f"not writing checkpoint {path}: at step {checkpoint.step} {name} holds NaN or "
                f"infinite values (the run diverged); {unchanged}. Lower training.lr, or turn "
                f"clipping on (training.clip_mode: value)")
    for name, value in checkpoint.optimizer_state.items():
        if not np.all(np.isfinite(value)):
            # the weights are finite, so the step size was not the cause: squared gradients
            # (Adam's v, Adagrad's memory) overflowed
            raise CharRNNError(
                f"not writing checkpoint {path}: at step {checkpoint.step} the optimizer state "
                f"{name} holds NaN or infinite values, while every weight is finite: the "
                f"gradients grew too large for the optimizer's running sums; {unchanged}. Turn "
                f"clipping on (training.clip_mode: value or norm, training.clip)")
    for name, value in (checkpoint.state or {}).items():
        if not np.all(np.isfinite(value)):
            raise CharRNNError(
                f"not writing checkpoint {path}: at step {checkpoint.step} the carried hidden "
                f"state {name} holds NaN or infinite values; {unchanged}. Lower training.lr, "
                f"or turn clipping on (training.clip_mode: value)")


def is_checkpoint(path: str | Path) -> bool:
    """Whether path is a file charrnn wrote as a checkpoint (its format record says so); read
    from the zip directory and one small record, never the weights."""
    try:
        headers = _array_headers(Path(path), "checkpoint")
        header = headers.get("format")
        if header is None or header.shape != () or header.dtype.kind != "U":
            return False
        with np.load(path, allow_pickle=False) as archive:
            return str(archive["format"]) == FORMAT_NAME
    except (CharRNNError, OSError, ValueError, KeyError):
        return False


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete temporary files that a killed save left beside path; return what was removed.
    Call it holding the output's lock: every temporary file of path is stale then."""
    return writing.remove_stale_temporaries(path)


# --- reading -----------------------------------------------------------------------------------

@dataclass
class _Header:
    shape: tuple[int, ...]
    dtype: np.dtype


def _array_headers(path: Path, where: str) -> dict[str, _Header]:
    """Shape and dtype of every array in the archive, read from the headers alone.

    A header's claimed size must fit in the bytes its zip member holds, so no later read can be
    made to allocate more memory than the file could fill.
    """
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise CharRNNError(f"{where}: unexpected member {name!r}; not a charrnn "
                                       f"checkpoint")
                key = name[: -len(".npy")]
                if key in headers:
                    raise CharRNNError(f"{where}: array {key!r} is stored twice; the file is "
                                       f"damaged or forged")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise CharRNNError(f"{where}: array {key!r} uses a compression charrnn does "
                                       f"not read; pass a .npz written by charrnn train")
                if (info.compress_type == zipfile.ZIP_DEFLATED
                        and info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024):
                    raise CharRNNError(f"{where}: array {key!r} claims to expand from "
                                       f"{info.compress_size} to {info.file_size} bytes; "
                                       f"refusing a zip bomb")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                    else:
                        raise CharRNNError(f"{where}: array {key!r} has .npy format version "
                                           f"{version}, which charrnn never writes")
                    data_bytes = info.file_size - member.tell()
                headers[key] = _Header(shape, dtype)
                _check_claimed_size(key, shape, dtype, data_bytes, where)
    except CharRNNError:
        raise
    except Exception as error:  # noqa: BLE001 - untrusted bytes: any parse failure is "not ours"
        raise CharRNNError(f"{where} is not a readable charrnn checkpoint ({_short(error)}); "
                           f"pass a .npz written by charrnn train") from None
    return headers


def _check_claimed_size(key: str, shape: tuple, dtype: np.dtype, data_bytes: int,
                        where: str) -> None:
    if dtype.hasobject:
        raise CharRNNError(f"{where}: array {key!r} holds Python objects (pickle); refusing to "
                           f"load it, since loading could run code")
    if any(n < 0 for n in shape):
        raise CharRNNError(f"{where}: array {key!r} claims shape {shape}, which has a negative "
                           f"size; the file is damaged or forged")
    size = math.prod(shape) * dtype.itemsize  # exact: no float rounding, no overflow
    if size > MAX_ARRAY_BYTES or size > data_bytes:
        claimed = str(shape) if len(str(shape)) <= 60 else str(shape)[:57] + "..."
        raise CharRNNError(f"{where}: array {key!r} claims shape {claimed}, more than the "
                           f"{max(data_bytes, 0)} bytes stored for it; refusing to allocate it "
                           f"(the file is truncated or forged)")


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:120]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; anything amiss is a CharRNNError, never a traceback.

    Order matters: headers first, then the small records (format, version, config, meta, vocab),
    which fix the shapes every weight must have; only then are the weights read.
    """
    def weights(read, headers: dict[str, _Header], where: str):
        config, vocab, meta, version = _records(read, headers, where)
        stored_as = _stored_names(headers, version)  # current name -> name in the file
        expected = _expected_shapes(config, vocab, {name: headers[stored] for name, stored
                                                    in stored_as.items()}, where)
        arrays = {name: read(stored_as[name]) for name in expected}
        return config, vocab, meta, arrays, version

    path = Path(path)
    where = f"checkpoint {path}"
    config, vocab, meta, arrays, version = _read_checkpoint(path, where, weights)
    return _checkpoint_from_arrays(config, vocab, meta, arrays, where, version)


def load_checkpoint_config(path: str | Path) -> Config:
    """The stored config alone, checked as load_checkpoint checks it, without reading the
    weights: what the command line needs to set up a run that will load the file itself."""
    path = Path(path)
    return _read_checkpoint(path, f"checkpoint {path}",
                            lambda read, headers, where: _records(read, headers, where)[0])


def load_checkpoint_records(path: str | Path) -> tuple[Config, dict]:
    """The stored config and meta, checked as load_checkpoint checks them, without the weights:
    which run a file holds, and where its corpus is."""
    path = Path(path)
    return _read_checkpoint(path, f"checkpoint {path}",
                            lambda read, headers, where: _records(read, headers, where)[::2])


def training_corpus(config: Config, meta: dict, given: str | Path | None = None,
                    hint: str = "pass its path with --corpus") -> str:
    """The text a checkpoint was trained on, found from any folder: `given` when the user names
    it, else the absolute path stored at training (meta 'corpus_path'), else data.corpus as it
    was typed (older checkpoints: relative to the current folder). Whoever reads it compares
    it with meta 'corpus' (its fingerprint), so a file of the same name is never taken for it.
    """
    if given is not None:
        return str(given)
    typed, absolute = config.data.corpus, meta.get("corpus_path")
    if absolute and os.path.exists(typed) and same_file(typed, absolute):
        return typed  # as it was given, where it was given
    for candidate in (absolute, typed):
        if candidate and os.path.exists(candidate):
            return candidate
    stored = f" (stored as {absolute})" if absolute and absolute != typed else ""
    raise CharRNNError(f"the training corpus {typed} is not found{stored}; {hint}")


def corpus_inputs(config: Config, meta: dict) -> dict[str, str]:
    """The training corpus under each name a checkpoint holds for it (as typed, and absolute),
    for plumbing.paths.check_outputs: a command that may read it never writes over it."""
    inputs = {"the training corpus": config.data.corpus}
    if meta.get("corpus_path") and meta["corpus_path"] != config.data.corpus:
        inputs["the training corpus (stored as)"] = meta["corpus_path"]
    return inputs


def _read_checkpoint(path: Path, where: str, use):
    """use(read, headers, where) on the open archive, once the file is there and holds the
    records of a checkpoint; read(name) gives one array; anything amiss is a CharRNNError."""
    if not path.exists():
        raise CharRNNError(f"{where} not found; check the path, or train one with "
                           f"`charrnn train`")
    if path.is_dir():
        raise CharRNNError(f"{where} is a directory; pass the .npz file")
    headers = _array_headers(path, where)
    for required in ("format", "version", "config", "meta", "vocab"):
        if required not in headers:
            raise CharRNNError(f"{where}: missing {required!r}; not a charrnn checkpoint, or "
                               f"written by another program")
    try:
        with np.load(path, allow_pickle=False) as archive:
            def read(name: str) -> np.ndarray:
                try:
                    return archive[name]
                except Exception as error:  # noqa: BLE001 - as in _array_headers
                    raise CharRNNError(f"{where} is damaged: array {name!r} cannot be read "
                                       f"({_short(error)}); use an earlier checkpoint (e.g. the "
                                       f".best.npz beside it)") from None

            return use(read, headers, where)
    except CharRNNError:
        raise
    except Exception as error:  # noqa: BLE001 - opening the archive is parsing untrusted bytes
        raise CharRNNError(f"{where} is damaged ({_short(error)}); use an earlier checkpoint "
                           f"(e.g. the .best.npz beside it)") from None


def _stored_names(headers: dict[str, _Header], version: int) -> dict[str, str]:
    """Each array's current (version 2) name and the name it has in the file."""
    if version >= 2:
        return {key: key for key in headers}
    names = {}
    for key in headers:
        if key.startswith("opt."):
            slot, _, param = key[len("opt."):].partition(".")
            names[f"opt.{slot}.{V1_NAMES.get(param, param)}"] = key
        else:
            names[V1_NAMES.get(key, key)] = key
    return names


def _records(read, headers: dict[str, _Header],
             where: str) -> tuple[Config, Vocabulary, dict, int]:
    """The format, version, config, meta and vocab records, each checked before the next."""
    for name in TEXT_KEYS:
        header = headers[name]
        if header.shape != () or header.dtype.kind != "U":
            raise CharRNNError(f"{where}: {name!r} is not text; not a charrnn checkpoint")
    if str(read("format")) != FORMAT_NAME:
        raise CharRNNError(f"{where}: not a charrnn checkpoint (format field differs)")
    header = headers["version"]
    version = read("version") if header.shape == () and header.dtype.kind in "iu" else None
    if version is None or int(version) not in READABLE_VERSIONS:
        shown = "unreadable" if version is None else int(version)
        raise CharRNNError(f"{where}: checkpoint format version {shown} is not supported "
                           f"(this charrnn reads versions "
                           f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade charrnn")
    version = int(version)
    try:
        config = config_from_yaml_text(str(read("config")), f"{where} config")
    except CharRNNError as error:
        raise CharRNNError(f"{where}: stored config is invalid: {error}") from None
    except (ValueError, RecursionError) as error:  # an integer of 5000 digits, deep nesting
        raise CharRNNError(f"{where}: stored config cannot be parsed ({_short(error)}); the "
                           f"file is damaged") from None
    meta = _meta(str(read("meta")), where)
    header = headers["vocab"]
    if (len(header.shape) != 1 or header.dtype.kind not in "iu"
            or header.shape[0] > MAX_VOCAB_SIZE):
        raise CharRNNError(f"{where}: vocab is not a list of character codes; file is damaged")
    try:
        vocab = Vocabulary(read("vocab"))
    except CharRNNError as error:
        raise CharRNNError(f"{where}: {error}") from None
    return config, vocab, meta, version


def _meta(text: str, where: str) -> dict:
    """The meta record as a dict whose entries the trainer reads back have sane types."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        raise CharRNNError(f"{where}: its meta record is not JSON; the file is damaged") from None
    if not isinstance(meta, dict):
        raise CharRNNError(f"{where}: its meta record is not a JSON object; the file is damaged")
    for key in META_COUNTS:
        value = meta.get(key, 0)
        if (isinstance(value, bool) or not isinstance(value, int) or value < 0
                or value > MAX_COUNT):
            raise CharRNNError(f"{where}: meta {key!r} is {quoted(value, 40)}, not a "
                               f"count (0 to 2**53); the file is damaged")
    for key in ("best_val_loss", "best_file_loss"):
        best = meta.get(key)
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))
                                 or not math.isfinite(best)):
            raise CharRNNError(f"{where}: meta {key!r} is {str(best)[:40]!r}, not a finite "
                               f"number; the file is damaged")
    _check_fingerprint(meta.get("corpus"), where)
    corpus_path = meta.get("corpus_path")
    if corpus_path is not None and (not isinstance(corpus_path, str) or "\0" in corpus_path
                                    or not os.path.isabs(corpus_path)):
        raise CharRNNError(f"{where}: meta 'corpus_path' is {quoted(corpus_path, 60)}, not an "
                           f"absolute path; the file is damaged")
    if not isinstance(meta.get("stream_started", False), bool):
        raise CharRNNError(f"{where}: meta 'stream_started' is not true or false; the file is "
                           f"damaged")
    if "rng_state" in meta:
        try:
            np.random.default_rng().bit_generator.state = meta["rng_state"]
        except (TypeError, ValueError, KeyError, OverflowError):
            raise CharRNNError(f"{where}: its random generator state is invalid, so the run "
                               f"could not resume exactly; the file is damaged") from None
    return meta


def _check_fingerprint(fingerprint, where: str) -> None:
    """meta 'corpus', when there: {"characters": count, "sha256": 64 hex digits}."""
    if fingerprint is None:
        return
    ok = (isinstance(fingerprint, dict) and set(fingerprint) == {"characters", "sha256"}
          and isinstance(fingerprint["characters"], int)
          and not isinstance(fingerprint["characters"], bool)
          and 0 < fingerprint["characters"] <= MAX_COUNT
          and isinstance(fingerprint["sha256"], str) and len(fingerprint["sha256"]) == 64
          and all(c in "0123456789abcdef" for c in fingerprint["sha256"]))
    if not ok:
        raise CharRNNError(f"{where}: meta 'corpus' (the training text's fingerprint) is "
                           f"{quoted(fingerprint, 60)}, not a length and a SHA-256; the "
                           f"file is damaged")


def _expected_shapes(config: Config, vocab: Vocabulary, headers: dict[str, _Header],
                     where: str) -> dict[str, tuple[int, ...]]:
    """The shape each remaining array must have, checked against its header before it is read.

    The config's model section (cell, layers, hidden size) and the vocabulary fix every shape."""
    spec = ModelSpec.from_config(config.model, len(vocab))
    hidden_size = spec.hidden_size
    shapes = param_shapes(spec)
    carried = state_keys(spec)
    expected = dict(shapes)
    slots: dict[str, set[str]] = {}
    streams = None
    for key in headers:
        if key in TEXT_KEYS or key in ("version", "vocab") or key in shapes:
            continue
        slot, _, param = key[len("opt."):].partition(".")
        if key.startswith("opt.") and slot and param in shapes:
            slots.setdefault(slot, set()).add(param)
            expected[key] = shapes[param]
        elif key in carried:
            shape = headers[key].shape
            streams = streams if streams is not None else (shape[0] if len(shape) == 2 else -1)
            expected[key] = (streams, hidden_size)
        else:
            raise CharRNNError(f"{where}: unexpected array {key!r}; not a checkpoint of a "
                               f"{spec.describe()} model (its config's model section)")
    for name in shapes:
        if name not in headers:
            raise CharRNNError(f"{where}: missing {name!r}, which a {spec.describe()} model "
                               f"needs; the file is damaged or its config was edited")
    if streams is not None and any(key not in headers for key in carried):
        raise CharRNNError(f"{where}: the carried state lacks "
                           f"{', '.join(k for k in carried if k not in headers)}; the file is "
                           f"damaged")
    for slot, params in slots.items():
        if params != set(shapes):
            missing = ", ".join(sorted(set(shapes) - params))
            raise CharRNNError(f"{where}: optimizer state {slot!r} lacks {missing}; the file is "
                               f"damaged")
    for name, shape in expected.items():
        header = headers[name]
        if header.dtype not in (np.float32, np.float64):
            raise CharRNNError(f"{where}: {name} has dtype {header.dtype}, expected float32 or "
                               f"float64; file is damaged")
        if header.shape != shape or (name in carried and shape[0] < 1):
            raise CharRNNError(f"{where}: {name} has shape {header.shape}, but a "
                               f"{spec.describe()} model with a vocabulary of {len(vocab)} needs "
                               f"{_shape_text(shape)}; the file is damaged or edited")
    return expected


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(streams, " + str(shape[1]) + ")" if shape and shape[0] == -1 else str(shape)


def _checkpoint_from_arrays(config: Config, vocab: Vocabulary, meta: dict,
                            arrays: dict[str, np.ndarray], where: str,
                            version: int = FORMAT_VERSION) -> Checkpoint:
    dtype = config.model.dtype
    spec = ModelSpec.from_config(config.model, len(vocab))
    params = {name: arrays[name].astype(dtype, copy=False) for name in param_shapes(spec)}
    optimizer_state = {key[len("opt."):]: value.astype(dtype, copy=False)
                       for key, value in arrays.items() if key.startswith("opt.")}
    state = {key: arrays[key].astype(dtype, copy=False) for key in state_keys(spec)
             if key in arrays} or None
    checked = {**params, **{f"optimizer state {k}": v for k, v in optimizer_state.items()},
               **(state or {})}
    for name, value in checked.items():
        if not np.all(np.isfinite(value)):
            raise CharRNNError(f"{where}: {name} holds NaN or infinite values; use an earlier "
                               f"checkpoint")
    return Checkpoint(config, vocab, params, optimizer_state, state, meta, version)
