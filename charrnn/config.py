"""Run configuration: dataclasses validated from YAML. The one place where defaults live.

A config file is a mapping with three sections, ``data``, ``model`` and ``training``; every key is
optional and falls back to the default below. Unknown keys, wrong types and out-of-range values
are refused with a `CharRNNError` that names the key (and suggests the closest valid one).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from charrnn.cells import CELLS
from charrnn.errors import CharRNNError
from charrnn.plumbing.reading import read_bytes
from charrnn.plumbing.terminal import shown

DEFAULT_CONFIG = "names"  # a shipped config, found by name wherever charrnn is installed

# Sizes past these would allocate gigabytes before the first step; refuse them up front.
MAX_HIDDEN_SIZE = 16384
MAX_SEED = 2**63 - 1  # --seed in every command, and training.seed
MAX_BATCH_TIMES_SEQ = 4_000_000


def _spec(default: Any, *, choices: tuple | None = None, low: float | None = None,
          high: float | None = None, low_open: bool = False, high_open: bool = False,
          nullable: bool = False, in_dtype: bool = False, doc: str = "") -> Any:
    """A dataclass field with its validation rules kept beside its default. in_dtype: the
    value enters the model's arithmetic, so it must be a finite number of model.dtype."""
    rules = dict(choices=choices, low=low, high=high, low_open=low_open,
                 high_open=high_open, nullable=nullable, in_dtype=in_dtype, doc=doc)
    return field(default=default, metadata=rules)


@dataclass(frozen=True)
class DataConfig:
    corpus: str = _spec("corpora/names.txt", doc="path of the text corpus: a file, or a "
                                                 "directory whose every text file is one "
                                                 "document")
    val: str = _spec("", doc="held-out text file (--val); empty: hold out val_fraction of the "
                             "corpus")
    mode: str = _spec("lines", choices=("lines", "stream"),
                      doc="lines: each line is one example (names); stream: one long text")
    val_fraction: float = _spec(0.1, low=0.0, high=1.0, high_open=True,
                                doc="share held out for validation (tail in stream mode, "
                                    "seeded random lines in lines mode)")
    encoding: str = _spec("utf-8", doc="text encoding of the corpus")
    errors: str = _spec("strict", choices=("strict", "replace"),
                        doc="strict: refuse undecodable bytes; replace: decode them as U+FFFD")
    cache: bool = _spec(True, doc="keep the encoded corpus in the per-user cache folder "
                                  "($CHARRNN_CACHE_DIR, else ~/.cache/charrnn) and read it "
                                  "memory-mapped")


CELL_NAMES = CELLS.keys()  # a live view of the registry: a registered cell is a valid choice
MAX_LAYERS = 64


@dataclass(frozen=True)
class ModelConfig:
    cell: str = _spec("rnn", choices=CELL_NAMES,
                      doc="rnn: vanilla (min-char-rnn); lstm; gru (PyTorch's convention)")
    num_layers: int = _spec(1, low=1, high=MAX_LAYERS, doc="stacked recurrent layers")
    hidden_size: int = _spec(128, low=1, high=MAX_HIDDEN_SIZE, doc="units in the hidden state")
    activation: str = _spec("tanh", choices=("tanh", "relu"),
                            doc="h_t = f(a_t), for cells that declare it (rnn)")
    dropout: float = _spec(0.0, low=0.0, high=1.0, high_open=True,
                           doc="inverted dropout between layers and before the output layer")
    forget_bias: float = _spec(1.0, in_dtype=True,
                               doc="the LSTM's forget-gate bias at initialisation")
    init_scale: float = _spec(0.01, low=0.0, low_open=True, in_dtype=True,
                              doc="weights start as N(0, 1) * init_scale (min-char-rnn: 0.01)")
    dtype: str = _spec("float64", choices=("float32", "float64"), doc="training precision")


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = _spec(32, low=1, doc="parallel streams (stream mode) or lines a step")
    seq_length: int = _spec(25, low=1, doc="characters a stream per step (stream mode); "
                                            "lines mode pads each batch to its longest line")
    steps: int = _spec(3000, low=0, doc="the step count the run ends at")
    optimizer: str = _spec("adagrad", choices=("adagrad", "sgd", "adam"), doc="update rule")
    lr: float = _spec(0.1, low=0.0, low_open=True, in_dtype=True, doc="learning rate")
    momentum: float = _spec(0.0, low=0.0, high=1.0, high_open=True, doc="SGD momentum")
    beta1: float = _spec(0.9, low=0.0, high=1.0, high_open=True, doc="Adam first-moment decay")
    beta2: float = _spec(0.999, low=0.0, high=1.0, high_open=True, doc="Adam second-moment decay")
    lr_schedule: str = _spec("step", choices=("step", "cosine", "linear"),
                             doc="step: lr_decay every lr_decay_every steps; cosine: "
                                 "lr * (1 + cos(pi * step / steps)) / 2, down to 0 at steps; "
                                 "linear: lr * (1 - step / steps) (both after warmup, down to "
                                 "lr * lr_floor)")
    warmup: int = _spec(0, low=0, doc="steps over which lr rises linearly to its peak "
                                      "(cosine and linear schedules)")
    lr_floor: float = _spec(0.0, low=0.0, high=1.0, doc="where cosine and linear end, as a "
                                                        "share of lr")
    lr_decay: float = _spec(1.0, low=0.0, high=1.0, low_open=True,
                            doc="multiply lr by this every lr_decay_every steps")
    lr_decay_every: int | None = _spec(None, low=1, nullable=True,
                                       doc="steps between lr decays; null: every eval_every "
                                           "steps (the first release's meaning)")
    clip: float = _spec(5.0, low=0.0, in_dtype=True, doc="clip threshold; 0 turns clipping off")
    clip_mode: str = _spec("value", choices=("value", "norm", "none"),
                           doc="value: each entry to [-clip, clip]; norm: global L2 norm to clip")
    seed: int = _spec(0, low=0, high=MAX_SEED, doc="seeds weights, batches and samples")
    eval_every: int = _spec(250, low=1, doc="steps between validation evaluations")
    eval_max_chars: int | None = _spec(None, low=1, nullable=True,
                                       doc="evaluate on about this many validation "
                                           "characters, spread over the split; null: all of it")
    sample_every: int = _spec(1000, low=0, doc="steps between printed samples; 0: never")
    sample_length: int = _spec(200, low=1, high=1_000_000,
                               doc="characters in a printed sample (stream mode)")
    checkpoint_every: int = _spec(500, low=0, doc="steps between checkpoint saves; 0: at the end")
    patience: int = _spec(0, low=0, doc="stop after this many evaluations without a better "
                                        "validation loss; 0: never")
    time_limit: float = _spec(0.0, low=0.0, doc="stop after this many seconds; 0: no limit")
    time_budget: float = _spec(0.0, low=0.0, doc="seconds the run may take (--time): a new run "
                                                 "plans steps and schedule to end within it; "
                                                 "0: none")
    step_seconds: float = _spec(0.0, low=0.0, doc="the plan's seconds a training step, measured "
                                                  "at the start of a time_budget run (0: "
                                                  "measure); --resume keeps it")
    eval_seconds: float = _spec(0.0, low=0.0, doc="the plan's seconds an evaluation, measured "
                                                  "with step_seconds")
    out: str = _spec("checkpoints/names.npz", doc="checkpoint path; the best one is *.best.npz")
    threads: int | str = _spec("auto", doc="BLAS threads: auto (one for small models, more "
                                           "for large ones; an explicit OPENBLAS_NUM_THREADS or "
                                           "OMP_NUM_THREADS wins) or a count")
    log_format: str = _spec("jsonl", choices=("jsonl", "csv"),
                            doc="metrics log beside the checkpoint (out with .jsonl or .csv)")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **sections: dict) -> Config:
        """A copy with some keys changed, validated like a file: replace(training={"steps": 10})."""
        merged = self.to_dict()
        for name, values in sections.items():
            merged.setdefault(name, {}).update(values)
        return from_mapping(merged)


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig}


# What char-rnn, torch-rnn and nanoGPT call our keys, so their users are pointed to ours.
PEER_NAMES = {
    "learning_rate": "lr", "rnn_size": "hidden_size", "n_hidden": "hidden_size",
    "hidden": "hidden_size", "n_embd": "hidden_size", "wordvec_size": "hidden_size",
    "seq_len": "seq_length", "block_size": "seq_length", "max_iters": "steps",
    "iterations": "steps", "num_iterations": "steps", "grad_clip": "clip",
    "eval_interval": "eval_every", "checkpoint_interval": "checkpoint_every",
    "checkpoint_every_n": "checkpoint_every", "input": "corpus", "data_dir": "corpus",
    "input_txt": "corpus", "input_h5": "corpus", "out_dir": "out", "checkpoint_name": "out",
    "seed_value": "seed", "lr_decay_rate": "lr_decay", "learning_rate_decay": "lr_decay",
    "model": "cell", "type": "cell", "rnn_type": "cell", "cell_type": "cell",
    "n_layer": "num_layers", "n_layers": "num_layers", "layers": "num_layers",
    "dropout_rate": "dropout", "p_dropout": "dropout",
}


def closest(name: str, options, cutoff: float = 0.5) -> str | None:
    """The option a mistyped or foreign name most likely means: a peer tool's name for it, else
    the closest spelling of an option or of a peer tool's name (lerning_rate -> lr); None."""
    options = list(options)
    if PEER_NAMES.get(name) in options:
        return PEER_NAMES[name]
    peers = {peer: ours for peer, ours in PEER_NAMES.items() if ours in options}
    match = difflib.get_close_matches(name, [*options, *peers], n=1, cutoff=cutoff)
    return peers.get(match[0], match[0]) if match else None


def did_you_mean(name: str, options) -> str:
    """' (did you mean 'x'?)' for the closest of options (see closest), or ''."""
    match = closest(name, options)
    return f" (did you mean '{match}'?)" if match else ""


def config_keys() -> list[str]:
    """Every SECTION.KEY, in the order of the dataclasses."""
    return [f"{section}.{spec.name}" for section, cls in _SECTION_CLASSES.items()
            for spec in dataclasses.fields(cls)]


def suggest_key(key: str) -> str | None:
    """The SECTION.KEY a mistyped, unsectioned or foreign key most likely means: hidden_size ->
    model.hidden_size, learning_rate -> training.lr, training.lerning_rate -> training.lr."""
    section, dot, name = key.partition(".")
    if not dot:
        section, name = "", key
    by_name = {qualified.partition(".")[2]: qualified for qualified in config_keys()}
    if section in _SECTION_CLASSES:  # a key of this section first, then of any
        own = [spec.name for spec in dataclasses.fields(_SECTION_CLASSES[section])]
        match = closest(name, own, cutoff=0.6)
        if match:
            return f"{section}.{match}"
    match = closest(name, by_name, cutoff=0.6)
    return by_name[match] if match else None


def _check_value(where: str, value: Any, spec: dataclasses.Field) -> Any:
    rules = spec.metadata
    if spec.default == "auto":  # a count, or "auto": the value decides
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
            raise CharRNNError(f"config {where}: expected auto or a whole number from 1 to "
                               f"1024, got {shown(value, 60)}")
        return value
    kind = type(spec.default) if spec.default is not None else int
    if value is None:
        if rules["nullable"]:
            return None
        raise CharRNNError(f"config {where}: a value is required (got nothing)")
    if kind is bool:
        if not isinstance(value, bool):
            raise CharRNNError(f"config {where}: expected true or false, got {shown(value)}")
        return value
    if kind is float and isinstance(value, str):
        # YAML 1.1 reads 1e-3 (no dot) as a string; a number is what the user meant
        try:
            value = float(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**1023:  # float() would raise OverflowError
            raise CharRNNError(f"config {where}: must be a finite number, got an integer of "
                               f"{len(str(abs(value)))} digits")
        value = float(value)
    if kind is int and isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise CharRNNError(f"config {where}: expected {kind.__name__}, got {shown(value)}")
    if kind is str and "\0" in value:  # no file name or encoding holds one; open() would raise
        raise CharRNNError(f"config {where}: {shown(value)} holds a NUL character")
    if kind is float and not math.isfinite(value):
        raise CharRNNError(f"config {where}: must be a finite number, got {shown(value)}")
    if rules["choices"] and value not in rules["choices"]:
        raise CharRNNError(f"config {where}: must be one of {', '.join(rules['choices'])}, "
                           f"got {shown(value)}{did_you_mean(str(value)[:100], rules['choices'])}")
    low, high = rules["low"], rules["high"]
    if low is not None and (value < low or (rules["low_open"] and value == low)):
        bound = ">" if rules["low_open"] else ">="
        raise CharRNNError(f"config {where}: must be {bound} {low}, got {shown(value)}")
    if high is not None and (value > high or (rules["high_open"] and value == high)):
        bound = "<" if rules["high_open"] else "<="
        raise CharRNNError(f"config {where}: must be {bound} {high}, got {shown(value)}")
    return value


def _section_from_mapping(name: str, values: Any):
    cls = _SECTION_CLASSES[name]
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise CharRNNError(f"config {name}: expected a mapping of keys, got {shown(values)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    checked = {}
    refuse_unknown(f"config {name}", values, fields)
    for key, value in values.items():
        checked[key] = _check_value(f"{name}.{key}", value, fields[key])
    return cls(**checked)


def refuse_unknown(where: str, keys, valid, what: str = "key") -> None:
    """One line naming the first key not among valid, with the closest valid one suggested."""
    for key in keys:
        if key not in valid:
            raise CharRNNError(f"{where}: unknown {what} {shown(key)}"
                               f"{did_you_mean(str(key)[:100], valid)}; valid {what}s: "
                               f"{', '.join(valid)}")


def from_mapping(mapping: Any) -> Config:
    """Validate a parsed YAML document (or any mapping) into a Config."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise CharRNNError(f"config: expected a mapping with sections {', '.join(SECTIONS)}, "
                           f"got {type(mapping).__name__}")
    refuse_unknown("config", mapping, SECTIONS, "section")
    config = Config(**{name: _section_from_mapping(name, mapping.get(name)) for name in SECTIONS})
    _check_sizes(config)
    return config


def _check_sizes(config: Config) -> None:
    model = config.model
    takes = CELLS[model.cell].activations
    if model.activation not in takes:
        cells = ", ".join(name for name, cell in CELLS.items()
                          if model.activation in cell.activations)
        raise CharRNNError(f"config model.activation: {model.activation!r} does not apply to "
                           f"cell {model.cell} (it takes {', '.join(takes)}); remove "
                           f"model.activation or set model.cell to one of: {cells}")
    if Path(config.training.out).name in ("", ".", ".."):
        raise CharRNNError(f"config training.out: {shown(config.training.out)} is a directory, "
                           f"not a checkpoint file; give e.g. checkpoints/run.npz")
    if Path(config.training.out).suffix in (".jsonl", ".csv"):
        raise CharRNNError(f"config training.out: {shown(config.training.out)} would be its own "
                           f"metrics log; give the checkpoint a .npz name")
    _check_in_dtype(config)
    cells = config.training.batch_size * config.training.seq_length
    if cells > MAX_BATCH_TIMES_SEQ:
        raise CharRNNError(f"config training: batch_size * seq_length = {cells} is over the limit "
                           f"{MAX_BATCH_TIMES_SEQ}; lower one of them")


# the largest finite value and the smallest positive one (subnormal) of each model.dtype
DTYPE_RANGE = {"float32": (3.4028234663852886e38, 1.401298464324817e-45),
               "float64": (1.7976931348623157e308, 5e-324)}


def _check_in_dtype(config: Config) -> None:
    """Every value that enters the model's arithmetic is a number of model.dtype: 1e39 is
    infinite in float32, and 1e-46 is 0 there (a learning rate of 0 trains nothing)."""
    dtype = config.model.dtype
    largest, smallest = DTYPE_RANGE[dtype]
    for section in SECTIONS:
        values = getattr(config, section)
        for spec in dataclasses.fields(values):
            value = getattr(values, spec.name)
            if not spec.metadata["in_dtype"] or value is None:
                continue
            where = f"config {section}.{spec.name}: {shown(value)}"
            if abs(value) > largest:
                raise CharRNNError(f"{where} is past the largest {dtype} ({largest:.4g}), the "
                                   f"model's dtype, and would be infinite; lower it, or set "
                                   f"model.dtype=float64")
            if value and abs(value) < smallest / 2:
                raise CharRNNError(f"{where} is 0 in {dtype} (its smallest positive value is "
                                   f"{smallest:.4g}), the model's dtype; raise it, or set "
                                   f"model.dtype=float64")


MAX_YAML_CHARS = 1 << 20  # a config is a few hundred bytes
MAX_YAML_NODES = 10_000
MAX_YAML_DEPTH = 64


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (`*name`), and with bounded nesting and node count,
    so a few hundred bytes cannot expand into gigabytes (the "billion laughs")."""

    def __init__(self, stream):
        super().__init__(stream)
        self._nodes = self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a charrnn config: write the "
                "value out", mark)
        self._nodes += 1
        if self._nodes > MAX_YAML_NODES or self._depth >= MAX_YAML_DEPTH:
            too = (f"more than {MAX_YAML_NODES} values" if self._nodes > MAX_YAML_NODES
                   else f"nesting deeper than {MAX_YAML_DEPTH} levels")
            raise yaml.composer.ComposerError(None, None, f"{too}; a charrnn config has a few "
                                              "dozen", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str, where: str) -> Any:
    if len(text) > MAX_YAML_CHARS:
        raise CharRNNError(f"{where}: {len(text)} characters of YAML, more than a config can "
                           f"need ({MAX_YAML_CHARS}); pass the right file")
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        place = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise CharRNNError(f"{where}:{place}: {problem}; fix the YAML syntax") from None
    except (ValueError, OverflowError, RecursionError) as error:
        # PyYAML's constructors raise these for 2001-13-01, !!float 'x', a 5000-digit integer
        # or nesting thousands deep
        problem = textwrap.shorten(str(error) or type(error).__name__, 90, placeholder="...")
        raise CharRNNError(f"{where}: a value cannot be read ({problem}); fix the YAML") from None


def parse_override(item: str) -> tuple[str, str, Any]:
    """'training.lr=0.05' -> ('training', 'lr', 0.05), the value parsed as YAML."""
    key, sep, raw = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if dot and section not in SECTIONS and not suggest_key(key.strip()):
        raise CharRNNError(f"--set {shown(item)}: unknown section {shown(section)}"
                           f"{did_you_mean(section, SECTIONS)}; valid sections: "
                           f"{', '.join(SECTIONS)}")
    if not sep or not dot or not name or section not in SECTIONS:
        meant = suggest_key(key.strip()) if key.strip() else None
        hint = (f"; did you mean --set {meant}={raw}?" if meant and sep else
                f"; did you mean --set {meant}=VALUE?" if meant else ", e.g. training.lr=0.05")
        raise CharRNNError(f"--set {shown(item)}: expected SECTION.KEY=VALUE{hint}")
    keys = [spec.name for spec in dataclasses.fields(_SECTION_CLASSES[section])]
    if name not in keys:
        meant = suggest_key(key.strip())
        said = meant.partition(".")[2] if meant and meant.startswith(section + ".") else meant
        hint = f" (did you mean '{said}'?): try --set {meant}={raw}" if meant else ""
        raise CharRNNError(f"--set {shown(item)}: unknown key {shown(name)}{hint}; {section}'s "
                           f"keys: {', '.join(keys)}")
    return section, name, parse_yaml(raw, f"--set {shown(item)}")


def shipped_configs() -> dict[str, Path]:
    """The configs installed with charrnn (the repository's configs/), by name."""
    return {path.stem: path for path in sorted(shipped_folder("configs").glob("*.yaml"))}


def shipped_sweeps() -> dict[str, Path]:
    """The sweep files installed with charrnn (the repository's configs/sweeps/), by name."""
    return {path.stem: path
            for path in sorted((shipped_folder("configs") / "sweeps").glob("*.yaml"))}


def shipped_folder(name: str) -> Path:
    """Where the installed package keeps its `configs` or `corpora` (in a source checkout
    installed in editable mode: the repository's own top-level folders)."""
    spec = importlib.util.find_spec(f"charrnn.{name}")
    if spec is None or not spec.submodule_search_locations:
        raise CharRNNError(f"charrnn's shipped {name} are missing from this installation; "
                           f"reinstall charrnn")
    return Path(list(spec.submodule_search_locations)[0])


def config_path(name_or_path: str | Path | None) -> Path:
    """A config file: an existing path, else a shipped config's name (names, shakespeare, ...)."""
    name_or_path = DEFAULT_CONFIG if name_or_path is None else name_or_path
    path = Path(name_or_path)
    try:  # a name too long for the file system is no file: its reader says so in one line
        there = path.exists()
    except (OSError, ValueError):
        there = False
    if there or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    shipped = shipped_configs()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise CharRNNError(f"config {shown(str(name_or_path))} is neither a file nor a shipped config; "
                       f"shipped: {', '.join(shipped)}")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
                ) -> Config:
    """Read a YAML config (a path, or a shipped config's name; default: names) and apply
    SECTION.KEY=VALUE overrides.

    A relative data.corpus in the file is relative to the file's directory (so a config and its
    corpus travel together); overrides, like --corpus, are relative to the current directory,
    and so is training.out (outputs go where you run)."""
    path = config_path(path)
    if not os.path.lexists(path):
        raise CharRNNError(f"config file {path} not found; pass --config with an existing "
                           f"YAML file or a shipped config's name "
                           f"({', '.join(shipped_configs())})")
    raw = read_bytes(path, "config file", MAX_YAML_CHARS, "a charrnn config is a few hundred "
                     "bytes: pass the right file")  # a pipe or device too, read once, bounded
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CharRNNError(f"config file {path} cannot be read ({error.reason} at byte "
                           f"{error.start}); pass a readable UTF-8 YAML file") from None
    mapping = parse_yaml(text, str(path))
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise CharRNNError(f"config file {path}: expected a mapping with sections "
                           f"{', '.join(SECTIONS)}, got {type(mapping).__name__}")
    data = mapping.get("data")
    if isinstance(data, dict) and isinstance(data.get("corpus"), str) and data["corpus"]:
        corpus = Path(data["corpus"]).expanduser()
        if not corpus.is_absolute():
            corpus = Path(os.path.abspath(path.parent / corpus))
        mapping = {**mapping, "data": {**data, "corpus": str(corpus)}}
    return _validated(mapping, overrides, str(path))


def with_overrides(config: Config, overrides: list[str] | tuple[str, ...],
                   where: str = "config") -> Config:
    """config with SECTION.KEY=VALUE changes, validated as if they stood in its YAML file."""
    return _validated(config.to_dict(), overrides, where)


def _validated(mapping: dict, overrides, where: str) -> Config:
    original = mapping
    mapping = {name: dict(values) if isinstance(values, dict) else values
               for name, values in mapping.items()}
    for item in overrides:
        section, name, value = parse_override(item)
        current = mapping.get(section) or {}
        if not isinstance(current, dict):
            current = {}
        mapping[section] = {**current, name: value}
    try:
        return from_mapping(mapping)
    except CharRNNError as error:
        if overrides and _valid_alone(original):  # the command line's change is what is wrong
            raise
        raise CharRNNError(f"{where}: {error}") from None


def _valid_alone(mapping: dict) -> bool:
    try:
        from_mapping(mapping)
    except CharRNNError:
        return False
    return True


def config_from_yaml_text(text: str, where: str = "checkpoint config") -> Config:
    return from_mapping(parse_yaml(text, where))


def reference_markdown() -> str:
    """docs/config.md: every key with its default, its rule and its doc, from the dataclasses
    above (scripts/config_doc.py writes it; a test fails when the page and this code differ)."""
    lines = ["# Config keys", "",
             "Generated from `charrnn/config.py` by `python scripts/config_doc.py`; do not edit.",
             "A config file is YAML with three optional sections; every key is optional and falls",
             "back to the default here. `--set SECTION.KEY=VALUE` changes one key on the command",
             "line. Unknown keys, wrong types and out-of-range values are refused by name.", ""]
    for section, kind in _SECTION_CLASSES.items():
        lines += [f"## {section}", "", "| key | default | allowed | what it does |",
                  "| --- | --- | --- | --- |"]
        for spec in dataclasses.fields(kind):
            rules = spec.metadata
            doc = rules["doc"].replace("<", "&lt;").replace(">", "&gt;")
            lines.append(f"| `{spec.name}` | `{yaml.safe_dump(spec.default).splitlines()[0]}` "
                         f"| {_allowed(rules, spec.type)} | {doc} |")
        lines.append("")
    aliases = ", ".join(f"`{peer}` → `{ours}`" for peer, ours in sorted(PEER_NAMES.items()))
    lines += ["## Names from other tools", "",
              f"A key spelled as char-rnn, torch-rnn or nanoGPT spell it is pointed to ours: "
              f"{aliases}.", ""]
    return "\n".join(lines)


_TYPE_WORDS = {"int": "integer", "float": "number", "bool": "`true` \\| `false`", "str": "text"}


def _allowed(rules: dict, annotation: str) -> str:
    """A key's rule in words: its choices, or its type and range, and null where allowed."""
    kinds = [_TYPE_WORDS.get(kind.strip(), kind) for kind in str(annotation).split("|")
             if kind.strip() != "None"]
    parts = [] if rules["choices"] else [" or ".join(kinds)]
    if rules["choices"]:
        parts.append(" \\| ".join(f"`{choice}`" for choice in rules["choices"]))
    if rules["low"] is not None:
        parts.append(f"{'>' if rules['low_open'] else '>='} {rules['low']:g}")
    if rules["high"] is not None:
        parts.append(f"{'<' if rules['high_open'] else '<='} {rules['high']:g}")
    if rules["nullable"]:
        parts.append("or `null`")
    if rules["in_dtype"]:
        parts.append("a finite number of `model.dtype`")
    return ", ".join(parts)
