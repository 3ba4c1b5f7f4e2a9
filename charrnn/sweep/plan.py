"""The sweep file: parsing and validating it into a `SweepPlan` of trials (every trial's config
built and checked here), grid or random enumeration of the combinations, and the successive-halving
rungs (`survivors`, `rung_views`: who enters, finishes and goes on at each rung).
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import math
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charrnn.config import (
    Config,
    did_you_mean,
    load_config,
    parse_yaml,
    refuse_unknown,
    shipped_configs,
    shipped_sweeps,
    suggest_key,
)
from charrnn.errors import CharRNNError
from charrnn.plumbing.paths import status
from charrnn.plumbing.reading import Reading
from charrnn.plumbing.terminal import shown

SWEEP_KEYS = ("base", "set", "grid", "random", "halving")
HALVING_KEYS = ("rungs", "keep")
RANDOM_KEYS = ("trials", "seed")
DEFAULT_KEEP = 0.5
MAX_SWEEP_BYTES = 1 << 20  # a sweep file is a page of YAML; a larger one is not one
MAX_PATH_CHARS = 4096  # PATH_MAX: a longer base is no file name
MAX_TRIALS = 10_000  # trials a sweep may hold: counted from the lists, before any is built
# keys the sweep itself decides: every trial writes DIR/trials/NAME.npz
RESERVED_KEYS = {"training.out": "the sweep writes each trial to DIR/trials/NAME.npz (--out DIR)",
                 "training.threads": "the sweep sets each trial's BLAS threads "
                                     "(--threads-per-trial)"}


# --- the plan ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trial:
    index: int
    name: str
    values: dict  # swept key (as in the sweep file) -> its value (as in the sweep file)
    config: Config  # corpus path absolute; with halving, training.steps is the last rung


@dataclass(frozen=True)
class SweepPlan:
    path: Path  # the sweep file
    base: Path  # the base config
    keys: tuple[str, ...]  # swept keys in file order: the results' columns
    trials: tuple[Trial, ...]
    rungs: tuple[int, ...] | None  # None: one rung, at each trial's own training.steps
    keep: float

    @property
    def rung_count(self) -> int:
        return len(self.rungs) if self.rungs else 1

    def steps(self, trial: Trial, rung: int) -> int:
        return self.rungs[rung] if self.rungs else trial.config.training.steps

    def planned(self) -> list[int]:
        """Trials entering each rung if none fails."""
        counts = [len(self.trials)]
        for _ in range(self.rung_count - 1):
            counts.append(survivors(counts[-1], self.keep))
        return counts


def survivors(entered: int, keep: float) -> int:
    """How many of the trials that entered a rung go on: floor(entered * keep), at least 1."""
    return max(1, math.floor(entered * keep + 1e-9))


def sweep_path(given: str | Path) -> Path:
    """A sweep file: an existing path, else a shipped sweep named as `charrnn configs` lists it
    (sweeps/names), by its name alone (names), or by its path in the repository
    (configs/sweeps/names.yaml), which a wheel keeps inside the package."""
    path = Path(given)
    if path.exists():
        return path
    shipped = shipped_sweeps()
    if path.suffix in ("", ".yaml", ".yml") and path.stem in shipped and \
            path.parent.parts in ((), ("sweeps",), ("configs", "sweeps")):
        return shipped[path.stem]
    return path


def load_sweep(path: str | Path) -> SweepPlan:
    """Read and validate a sweep file (a path, or a shipped sweep: see sweep_path); every
    trial's config is built and checked here."""
    path = sweep_path(path)
    where = str(path)
    try:
        reading = Reading(path, "sweep file", MAX_SWEEP_BYTES, "give a sweep YAML",
                          "give the path of a sweep YAML or a shipped sweep's name "
                          "(`charrnn configs` lists them)")
        text = b"".join(reading.chunks()).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CharRNNError(f"sweep file {path} cannot be read ({error}); give a readable "
                           f"UTF-8 YAML file") from None
    document = parse_yaml(text, where)
    if not isinstance(document, dict):
        raise CharRNNError(f"{where}: expected a mapping with keys {', '.join(SWEEP_KEYS)}, got "
                           f"{type(document).__name__}")
    refuse_unknown(where, document, SWEEP_KEYS)
    here = path.parent

    base = document.get("base")
    if not isinstance(base, str) or not base.strip():
        raise CharRNNError(f"{where}: 'base' is missing; name the config every trial starts "
                           f"from: a shipped one (base: names; `charrnn configs` lists them) or "
                           f"a file relative to the sweep file (base: my-config.yaml)")
    if len(base) > MAX_PATH_CHARS or "\0" in base:
        raise CharRNNError(f"{where}: base {shown(base)} is no config path ({len(base):,} "
                           f"characters); name a shipped config or a YAML file")
    base_path = Path(base) if Path(base).is_absolute() else here / base
    shipped = shipped_configs()
    if status(base_path) is None and len(Path(base).parts) == 1 and \
            Path(base).suffix in ("", ".yaml", ".yml") and Path(base).stem in shipped:
        base_path = shipped[Path(base).stem]  # a shipped config: base: names or names.yaml
    if not os.path.lexists(base_path):
        raise CharRNNError(f"{where}: base {shown(base)} not found: neither a file "
                           f"({base_path}, relative to the sweep file) nor a shipped config: "
                           f"{', '.join(shipped)} (`charrnn configs show NAME` prints one)")
    base_config = load_config(base_path)
    valid = _valid_keys(base_config)

    settings = _mapping(document.get("set"), f"{where}: set")
    grid = _mapping(document.get("grid"), f"{where}: grid")
    for key in (*settings, *grid):
        _check_key(key, valid, where)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise CharRNNError(f"{where}: grid {key}: expected a non-empty list of values, e.g. "
                               f"[64, 128], got {shown(values)}")
        for value in values:
            _check_scalar(value, f"{where}: grid {key}")
    if not grid:
        raise CharRNNError(f"{where}: the grid is empty; list values to try, e.g. grid: "
                           f"{{model.hidden_size: [64, 128]}}")
    for key, value in settings.items():
        _check_scalar(value, f"{where}: set {key}")
        if key in grid:
            raise CharRNNError(f"{where}: {key} is both in 'set' and in 'grid'; keep it in one")
    rungs, keep = _halving(document.get("halving"), where)
    _check_count([len(values) for values in grid.values()], document.get("random"), where)
    if rungs is not None:
        if "training.steps" in grid:
            raise CharRNNError(f"{where}: with halving the rungs set training.steps; take "
                               f"training.steps out of the grid")
        if "training.steps" in settings and settings["training.steps"] != rungs[-1]:
            raise CharRNNError(f"{where}: set training.steps {shown(settings['training.steps'])} "
                               f"differs from the last rung {rungs[-1]}; make them equal (or "
                               f"leave training.steps out)")

    def resolved(key: str, value: Any) -> Any:  # corpora given here are relative to this file
        if key == "data.corpus" and isinstance(value, str) and value and \
                not Path(value).is_absolute():
            return os.path.abspath(here / value)
        return value

    common = _apply(base_config, {key: resolved(key, value) for key, value in settings.items()},
                    f"{where}: set")
    for key, values in grid.items():  # name the bad value on its own before combining
        seen: dict[str, Any] = {}
        for value in values:  # compared as the config holds them: 1e-3 is 0.001
            applied = _apply(common, {key: resolved(key, value)},
                             f"{where}: grid {key}={shown(value)}")
            section, _, name = key.partition(".")
            held = json.dumps(getattr(getattr(applied, section), name))
            if held in seen:
                raise CharRNNError(f"{where}: grid {key}: {shown(value)} is the same value as "
                                   f"{shown(seen[held])}, listed before it; list each once")
            seen[held] = value
    keys = tuple(grid)
    combinations = _combinations([grid[key] for key in keys], document.get("random"), where)
    width = max(3, len(str(len(combinations) - 1)))
    trials = []
    for index, combination in enumerate(combinations):
        values = dict(zip(keys, combination))
        name = f"t{index:0{width}d}"
        config = _apply(common, {key: resolved(key, value) for key, value in values.items()},
                        f"{where}: trial {name} ({_describe(values)})")
        corpus = config.data.corpus
        if not Path(corpus).is_absolute():  # a default the config file did not set: the cwd's
            config = config.replace(data={"corpus": os.path.abspath(corpus)})
        if rungs is not None:
            config = config.replace(training={"steps": rungs[-1]})
        _check_trial(config, name, values, rungs, where, base_path)
        trials.append(Trial(index, name, values, config))
    return SweepPlan(path, base_path, keys, tuple(trials), rungs, keep)


def _check_count(lengths: list[int], spec: Any, where: str) -> None:
    """Refuse, by counting, a sweep of more than MAX_TRIALS trials before any is enumerated:
    random's trials when it samples, else the grid's product."""
    if isinstance(spec, dict) and "trials" in spec:
        count = spec["trials"]
        if isinstance(count, int) and not isinstance(count, bool) and count > MAX_TRIALS:
            raise CharRNNError(f"{where}: random trials {shown(count)} is more than a sweep's "
                               f"{MAX_TRIALS}; lower it")
        return  # _combinations checks what trials is
    total = math.prod(lengths)
    if total > MAX_TRIALS:
        sizes = " x ".join(map(str, lengths[:8])) + (" x ..." if len(lengths) > 8 else "")
        raise CharRNNError(f"{where}: the grid has {shown(total)} combinations ({sizes} "
                           f"values), more than a sweep's {MAX_TRIALS} trials; shorten the "
                           f"lists, or sample some of them with random: {{trials: N}}")


def _valid_keys(config: Config) -> list[str]:
    """Every SECTION.KEY the config knows, read from the config itself (new keys included)."""
    return [f"{section}.{name}" for section, values in config.to_dict().items()
            for name in values]


def _check_key(key: Any, valid: list[str], where: str) -> None:
    if not isinstance(key, str) or key not in valid:
        meant = suggest_key(str(key)[:100])  # hidden_size, learning_rate, model.hiden_size
        hint = (f" (did you mean {meant!r}?)" if meant in valid else
                did_you_mean(str(key)[:100], valid))
        raise CharRNNError(f"{where}: unknown key {shown(key)}{hint}; keys are SECTION.KEY as in "
                           f"`charrnn train --set`, e.g. model.hidden_size")
    if key in RESERVED_KEYS:
        raise CharRNNError(f"{where}: {key} cannot be set in a sweep: {RESERVED_KEYS[key]}")


def _check_scalar(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise CharRNNError(f"{where}: expected a number, a string, true/false or null, got "
                           f"{shown(value)}")


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CharRNNError(f"{where}: expected a mapping of SECTION.KEY: value, got {shown(value)}")
    for key, item in value.items():
        if isinstance(item, dict):
            example = shown(f"{key}.{next(iter(item), 'KEY')}", 60)
            raise CharRNNError(f"{where}: write keys as SECTION.KEY (e.g. {example}), not as "
                               f"nested mappings")
    return value


def _apply(config: Config, values: dict, where: str) -> Config:
    """config with SECTION.KEY values, validated like --set (errors name `where`)."""
    sections: dict[str, dict] = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    try:
        return config.replace(**sections)
    except CharRNNError as error:
        raise CharRNNError(f"{where}: {error}") from None


def _halving(value: Any, where: str) -> tuple[tuple[int, ...] | None, float]:
    if value is None:
        return None, 1.0
    if not isinstance(value, dict):
        raise CharRNNError(f"{where}: halving: expected a mapping like {{rungs: [500, 1500], "
                           f"keep: 0.5}}, got {shown(value)}")
    refuse_unknown(f"{where}: halving", value, HALVING_KEYS)
    rungs = value.get("rungs")
    if not isinstance(rungs, list) or not rungs or not all(
            isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in rungs):
        raise CharRNNError(f"{where}: halving rungs: expected a list of step counts > 0, e.g. "
                           f"[500, 1500, 3000], got {shown(rungs)}")
    if any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise CharRNNError(f"{where}: halving rungs {shown(rungs)} must increase strictly")
    keep = value.get("keep", DEFAULT_KEEP)
    if isinstance(keep, str):  # YAML 1.1 reads 5e-1 as a string
        with contextlib.suppress(ValueError):
            keep = float(keep)
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise CharRNNError(f"{where}: halving keep must be a fraction in (0, 1], e.g. 0.5, got "
                           f"{shown(keep)}")
    return tuple(rungs), float(keep)


def _combinations(lists: list[list], spec: Any, where: str) -> list[tuple]:
    """Every combination in grid order (the first key varies slowest), or `random` samples."""
    if spec is None:
        return list(itertools.product(*lists))
    if not isinstance(spec, dict):
        raise CharRNNError(f"{where}: random: expected {{trials: N, seed: S}}, got {shown(spec)}")
    refuse_unknown(f"{where}: random", spec, RANDOM_KEYS)
    count, seed = spec.get("trials"), spec.get("seed", 0)
    total = math.prod(len(values) for values in lists)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise CharRNNError(f"{where}: random trials must be a whole number >= 1, got "
                           f"{shown(count)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CharRNNError(f"{where}: random seed must be a whole number >= 0, got "
                           f"{shown(seed)}")
    if count > total:
        raise CharRNNError(f"{where}: random trials {count} is more than the grid's {total} "
                           f"combinations; lower it, or drop 'random' to run them all")
    draw = random.Random(seed)
    if total <= sys.maxsize:
        chosen = sorted(draw.sample(range(total), count))
    else:  # a range this long has no len(): distinct draws (count <= MAX_TRIALS, far fewer)
        picked: set[int] = set()
        while len(picked) < count:
            picked.add(draw.randrange(total))
        chosen = sorted(picked)
    combinations = []
    for number in chosen:  # mixed radix, the last list fastest, as in itertools.product
        picked = []
        for values in reversed(lists):
            number, digit = divmod(number, len(values))
            picked.append(values[digit])
        combinations.append(tuple(reversed(picked)))
    return combinations


def _check_trial(config: Config, name: str, values: dict, rungs, where: str,
                 base: Path) -> None:
    what = f"{where}: trial {name} ({_describe(values)})"
    training = config.training
    if not os.path.isfile(config.data.corpus):
        raise CharRNNError(f"{what}: corpus {shown(config.data.corpus)} not found; set "
                           f"data.corpus in the sweep file (relative to it) or in the base "
                           f"config {base}")
    try:
        codecs.lookup(config.data.encoding)
    except LookupError:
        raise CharRNNError(f"{what}: data.encoding {shown(config.data.encoding)} is no text "
                           f"encoding Python knows; use e.g. utf-8 or latin-1") from None
    if not config.data.val_fraction > 0:
        raise CharRNNError(f"{what}: data.val_fraction is 0, but trials are ranked by validation "
                           f"loss; set data.val_fraction above 0")
    if training.time_limit:
        raise CharRNNError(f"{what}: training.time_limit would make results depend on machine "
                           f"speed; set it to 0 in a sweep")
    if training.steps < 1:
        raise CharRNNError(f"{what}: training.steps must be >= 1 in a sweep")
    for rung in rungs or ():
        if rung % training.eval_every:
            raise CharRNNError(f"{what}: halving rung {rung} is not on the eval_every grid "
                               f"({training.eval_every}); use multiples of "
                               f"{training.eval_every}")


def _describe(values: dict) -> str:
    return ", ".join(f"{key}={shown(value, 40)}" for key, value in values.items())


@dataclass
class RungView:
    """A rung as the records say: who entered, who has finished, who goes on (when decided)."""

    index: int
    entered: list[Trial]
    missing: list[Trial]
    promoted: list[Trial] | None  # None: not decided yet, or the last rung


def rung_views(plan: SweepPlan, records: dict[str, list[dict]]) -> list[RungView]:
    """Replay successive halving over the records, up to the first rung not yet complete.

    Deterministic: ranks by best validation loss, ties (and missing losses) by trial index;
    failed trials never go on.
    """
    views = []
    entered = list(plan.trials)
    for index in range(plan.rung_count):
        done = {trial.name: records.get(trial.name, [])[index]
                for trial in entered if len(records.get(trial.name, [])) > index}
        missing = [trial for trial in entered if trial.name not in done]
        view = RungView(index, entered, missing, None)
        views.append(view)
        if missing or index == plan.rung_count - 1:
            break
        ok = [trial for trial in entered if done[trial.name]["status"] == "ok"]
        ok.sort(key=lambda trial: (loss_key(done[trial.name]["val_loss"]), trial.index))
        view.promoted = ok[:survivors(len(entered), plan.keep)]
        entered = view.promoted
        if not entered:
            break
    return views


def loss_key(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else math.inf
