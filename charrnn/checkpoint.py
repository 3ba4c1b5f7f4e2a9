"""Checkpoints: `.npz` files written atomically and read without pickle, checked before use.

Keys (all plain arrays; text is stored as 0-d unicode arrays):
    format          "charrnn-checkpoint"         version     int64, FORMAT_VERSION
    config          the run's config as YAML      meta        JSON: step, RNG state, best loss, ...
    vocab           (V,) uint32 code points, ascending
    W_xh (H, V), W_hh (H, H), b_h (H,), W_hy (V, H), b_y (V,)     the weights (float32 or float64)
    opt.<slot>.<param>   optimizer state, shaped like the parameter (e.g. opt.mem.W_xh)
    h               (B, H) hidden state carried between chunks (stream mode)
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.config import Config, config_from_yaml_text
from charrnn.errors import CharRNNError
from charrnn.model import PARAM_NAMES, param_shapes
from charrnn.vocab import Vocabulary

FORMAT_NAME = "charrnn-checkpoint"
FORMAT_VERSION = 1
MAX_ARRAY_BYTES = 8 * 2**30  # no array of a checkpoint we could write is this large
TEMP_SUFFIX = ".tmp"


@dataclass
class Checkpoint:
    """Everything needed to sample from a model or to resume its training exactly."""

    config: Config
    vocab: Vocabulary
    params: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    hidden: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write atomically: a temporary file in the same directory, fsync, then os.replace."""
    path = Path(path)
    arrays = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "config": np.array(checkpoint.config.to_yaml()),
        "meta": np.array(json.dumps(checkpoint.meta, sort_keys=True)),
        "vocab": checkpoint.vocab.codes.astype(np.uint32),
        **checkpoint.params,
        **{f"opt.{key}": value for key, value in checkpoint.optimizer_state.items()},
    }
    if checkpoint.hidden is not None:
        arrays["h"] = checkpoint.hidden
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory")
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                         dir=path.parent)
    except OSError as error:
        raise CharRNNError(f"cannot write checkpoint {path}: {error.strerror or error}; choose "
                           f"another --out or free the path") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
        _fsync_directory(path.parent)
    except OSError as error:
        _remove_quietly(temp_name)
        raise CharRNNError(f"cannot write checkpoint {path}: {error.strerror or error}; the "
                           f"previous checkpoint there is unchanged") from None
    except BaseException:
        _remove_quietly(temp_name)
        raise


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(name: str | Path) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete temporary files that a killed save left beside path; return what was removed."""
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
            _remove_quietly(stale)
            removed.append(stale)
    return removed


def _array_headers(path: Path, where: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in the archive, read from the headers alone."""
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise CharRNNError(f"{where}: unexpected member {info.filename!r}; "
                                       f"not a charrnn checkpoint")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                headers[info.filename[: -len(".npy")]] = (shape, dtype)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError,
            SyntaxError, TypeError) as error:
        raise CharRNNError(f"{where} is not a readable charrnn checkpoint ({_short(error)}); "
                           f"pass a .npz written by charrnn train") from None
    return headers


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:120]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; anything amiss is a CharRNNError, never a traceback."""
    path = Path(path)
    where = f"checkpoint {path}"
    if not path.exists():
        raise CharRNNError(f"{where} not found; train one with `charrnn train` or pass "
                           f"--checkpoint with an existing file")
    if path.is_dir():
        raise CharRNNError(f"{where} is a directory; pass the .npz file")
    headers = _array_headers(path, where)
    for name, (shape, dtype) in headers.items():
        if dtype.hasobject:
            raise CharRNNError(f"{where}: array {name!r} holds Python objects (pickle); refusing "
                               f"to load it, since loading could run code")
        size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if size > MAX_ARRAY_BYTES:
            raise CharRNNError(f"{where}: array {name!r} claims shape {shape}, too large to be a "
                               f"charrnn checkpoint; refusing to allocate it")
    for required in ("format", "version", "config", "meta", "vocab", *PARAM_NAMES):
        if required not in headers:
            raise CharRNNError(f"{where}: missing {required!r}; not a charrnn checkpoint, or "
                               f"written by another program")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in headers}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise CharRNNError(f"{where} is damaged ({_short(error)}); use an earlier checkpoint "
                           f"(e.g. the .best.npz beside it)") from None
    return _checkpoint_from_arrays(arrays, where)


def _text(arrays: dict, name: str, where: str) -> str:
    value = arrays[name]
    if value.shape != () or value.dtype.kind != "U":
        raise CharRNNError(f"{where}: {name!r} is not text; not a charrnn checkpoint")
    return str(value)


def _checkpoint_from_arrays(arrays: dict[str, np.ndarray], where: str) -> Checkpoint:
    if _text(arrays, "format", where) != FORMAT_NAME:
        raise CharRNNError(f"{where}: not a charrnn checkpoint (format field differs)")
    version = arrays["version"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
        raise CharRNNError(f"{where}: checkpoint format version {version!r} is not supported "
                           f"(this charrnn reads version {FORMAT_VERSION})")
    try:
        meta = json.loads(_text(arrays, "meta", where))
    except json.JSONDecodeError:
        raise CharRNNError(f"{where}: its meta record is not JSON; the file is damaged") from None
    if not isinstance(meta, dict):
        raise CharRNNError(f"{where}: its meta record is not a JSON object; the file is damaged")
    try:
        config = config_from_yaml_text(_text(arrays, "config", where), f"{where} config")
    except CharRNNError as error:
        raise CharRNNError(f"{where}: stored config is invalid: {error}") from None
    codes = arrays["vocab"]
    if codes.ndim != 1 or codes.dtype.kind not in "iu":
        raise CharRNNError(f"{where}: vocab is not a list of character codes; file is damaged")
    vocab = Vocabulary(codes)
    hidden_size = config.model.hidden_size
    shapes = param_shapes(len(vocab), hidden_size)
    params = {}
    for name in PARAM_NAMES:
        value = arrays[name]
        if value.dtype not in (np.float32, np.float64):
            raise CharRNNError(f"{where}: {name} has dtype {value.dtype}, expected float32 or "
                               f"float64; file is damaged")
        if value.shape != shapes[name]:
            raise CharRNNError(f"{where}: {name} has shape {value.shape}, but a vocabulary of "
                               f"{len(vocab)} and hidden_size {hidden_size} need "
                               f"{shapes[name]}; the file is damaged or edited")
        params[name] = value.astype(config.model.dtype, copy=False)
    optimizer_state = {}
    for key, value in arrays.items():
        if key.startswith("opt."):
            param = key.rsplit(".", 1)[-1]
            if param not in shapes or value.shape != shapes[param]:
                raise CharRNNError(f"{where}: optimizer state {key} does not fit the weights; "
                                   f"the file is damaged")
            optimizer_state[key[len("opt."):]] = value.astype(config.model.dtype, copy=False)
    hidden = arrays.get("h")
    if hidden is not None:
        if hidden.ndim != 2 or hidden.shape[1] != hidden_size:
            raise CharRNNError(f"{where}: carried hidden state has shape {hidden.shape}, "
                               f"expected (streams, {hidden_size}); the file is damaged")
        hidden = hidden.astype(config.model.dtype, copy=False)
    for name, value in params.items():
        if not np.all(np.isfinite(value)):
            raise CharRNNError(f"{where}: {name} holds NaN or infinite values; use an earlier "
                               f"checkpoint")
    return Checkpoint(config, vocab, params, optimizer_state, hidden, meta)
