"""The sweep's output directory: state.json (what is finished, with each checkpoint's SHA-256),
trials/, results.csv/results.jsonl and best.npz, read and written through the project's atomic
writer, one driver at a time; `Store.recover` finishes or undoes a commit a killed driver left.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

from charrnn.errors import CharRNNError
from charrnn.plumbing.paths import Output, check_outputs, file_kind, status
from charrnn.plumbing.reading import read_bytes
from charrnn.plumbing.terminal import shown
from charrnn.plumbing.writing import atomic_write, output_lock, remove_stale_temporaries
from charrnn.sweep.plan import RungView, SweepPlan, Trial, loss_key, rung_views
from charrnn.sweep.table import RESULT_COLUMNS

STATE_NAME = "state.json"
RESULT_NAMES = ("results.csv", "results.jsonl", "best.npz")
OUT_HINT = "pass another --out"
MAX_STATE_BYTES = 1 << 28  # state.json: a record per trial-rung; a larger one is not ours
STATE_FORMAT = "charrnn-sweep-state"
STATE_VERSION = 1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sweep_outputs(out: Path, plan: SweepPlan) -> list[Path]:
    """Every file a sweep writes in out: the state, the results, best.npz and each trial's
    checkpoint, best checkpoint and log, with the `*.new` each commit writes first."""
    paths = [out / STATE_NAME, *(out / name for name in RESULT_NAMES)]
    for trial in plan.trials:
        for suffix in (".npz", ".best.npz", ".jsonl", ".csv"):
            path = out / "trials" / f"{trial.name}{suffix}"
            paths += [path, path.with_name(path.name + ".new")]
    return paths


def check_sweep_outputs(plan: SweepPlan, out: Path) -> None:
    """Before any work: no file the sweep writes is one of its inputs (the sweep file, the base
    config, a corpus) or anything but a regular file, and none is a symbolic link."""
    inputs: dict[str, str | Path] = {"the sweep file": plan.path, "the base config": plan.base}
    for trial in plan.trials:
        if trial.config.data.corpus not in inputs.values():
            inputs[f"the corpus of trial {trial.name}"] = trial.config.data.corpus
    for path in sweep_outputs(out, plan):  # one at a time: our own names never coincide
        what = f"the sweep's {path.relative_to(out)}"
        check_outputs(inputs, [Output(path, what, OUT_HINT, derived=True)])


def _write(path: Path, data: bytes) -> None:
    """A file of the sweep's, through the one atomic writer; never through a link."""
    atomic_write(path, data, f"the sweep's {path.name}", OUT_HINT, follow=False)


def plan_fingerprint(plan: SweepPlan, corpora: dict[str, bytes]) -> str:
    """What makes two runs the same sweep: trials, their configs and corpora, rungs and keep
    (not where the files are)."""
    trials = []
    for trial in plan.trials:
        corpus = _sha256(corpora[trial.config.data.corpus])
        config = trial.config.replace(data={"corpus": f"sha256:{corpus}"},
                                      training={"out": "trial.npz"})
        trials.append([trial.name, config.to_yaml()])
    document = {"trials": trials, "rungs": list(plan.rungs or ()), "keep": plan.keep}
    return _sha256(json.dumps(document, sort_keys=True).encode())


# what each field of a state.json record may hold
_RECORD_FIELDS = {"rung": (int,), "steps": (int,), "val_loss": (int, float, type(None)),
                  "train_loss": (int, float, type(None)), "seconds": (int, float, type(None)),
                  "status": (str,), "sha256": (str, type(None))}


def _check_records(path: Path, name, records) -> None:
    """A damaged record in state.json is one line naming the file and the record, not a
    TypeError later."""
    def damaged(where: str, why: str) -> CharRNNError:
        return CharRNNError(f"{path} is damaged: {where} {why}; delete {path.parent} to start "
                            f"the sweep over, or pass another --out")

    if not isinstance(records, list):
        raise damaged(f"the records of trial {shown(name, 40)}", f"are {shown(records, 60)}, "
                                                                 f"not a list")
    for index, record in enumerate(records):
        where = f"record {index} of trial {shown(name, 40)}"
        if not isinstance(record, dict):
            raise damaged(where, f"is {shown(record, 60)}, not a mapping")
        for key, kinds in _RECORD_FIELDS.items():
            value = record.get(key)
            if key not in record or isinstance(value, bool) or not isinstance(value, kinds):
                found = "is missing" if key not in record else f"is {shown(value, 60)}"
                raise damaged(where, f"field {key!r} {found}")
        if record["status"] not in ("ok", "failed") or record["rung"] != index or \
                (record["status"] == "ok" and not isinstance(record["sha256"], str)):
            raise damaged(where, f"does not follow from the one before it "
                                 f"({shown(record, 100)})")


class Store:
    """DIR: the state file, the trials' files, results and best.npz; one driver at a time."""

    def __init__(self, out: Path, plan: SweepPlan, fingerprint: str, resume: bool,
                 report: Callable[[str, str], None]):
        self.out, self.plan, self.report = out, plan, report
        self.trials_dir = out / "trials"
        self._check_directory(fingerprint, resume)  # a refusal creates nothing
        self._best_written: tuple | None = None
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(output_lock(
            out / STATE_NAME, f"another charrnn sweep is writing {out}; wait for it, or pass "
                              f"another --out", OUT_HINT))
        try:
            self.state = self._read_state(fingerprint, resume)
            self.records: dict[str, list[dict]] = self.state["records"]
            if not (out / STATE_NAME).exists():
                self._save_state()  # first, so that DIR is this sweep's before it holds more
            try:
                self.trials_dir.mkdir(exist_ok=True)
            except OSError as error:
                raise CharRNNError(f"cannot create {self.trials_dir}: "
                                   f"{error.strerror or error}; choose another --out") from None
            self._remove_temporaries()
            self.recover()
        except BaseException:
            self.close()
            raise

    def _check_directory(self, fingerprint: str, resume: bool) -> None:
        """DIR is missing, empty, or holds this very sweep (its state.json, same fingerprint):
        a sweep never writes among files that are not its own."""
        found = status(self.out)
        if found is not None and not stat.S_ISDIR(found.st_mode):
            raise CharRNNError(f"--out {self.out} is a {file_kind(found.st_mode)}, not a "
                               f"directory; {OUT_HINT}")
        if found is not None and (self.out / STATE_NAME).exists():
            self._read_state(fingerprint, resume)  # refuses another sweep's, or a damaged one
            return
        try:
            entries = sorted(os.listdir(self.out)) if found is not None else []
        except OSError as error:
            raise CharRNNError(f"cannot read --out {self.out}: {error.strerror or error}; "
                               f"{OUT_HINT}") from None
        foreign = [name for name in entries if not self._leftover(name)]
        if foreign:
            raise CharRNNError(f"--out {self.out} holds files that are not a sweep's "
                               f"({shown(', '.join(foreign[:4]), 80)}"
                               f"{', ...' if len(foreign) > 4 else ''}); a sweep writes only "
                               f"into an empty directory or one holding the same sweep: "
                               f"{OUT_HINT}")
        if resume:
            raise CharRNNError(f"--resume: {self.out} holds no sweep to resume ({STATE_NAME} "
                               f"is missing); run without --resume to start it")

    def _leftover(self, name: str) -> bool:
        """What a driver killed before its first state.json leaves: the lock, a temporary
        state file, an empty trials/."""
        if name == f".{STATE_NAME}.lock" or (name.startswith(f".{STATE_NAME}.")
                                               and name.endswith(".tmp")):
            return True
        path = self.out / name
        return name == "trials" and path.is_dir() and not path.is_symlink() and \
            not any(path.iterdir())

    # locking and state
    def close(self) -> None:
        self._lock.close()  # the lock file goes with the lock

    def _read_state(self, fingerprint: str, resume: bool) -> dict:
        path = self.out / STATE_NAME
        names = [trial.name for trial in self.plan.trials]
        if not path.exists():
            if resume:
                raise CharRNNError(f"--resume: {self.out} holds no sweep to resume ({STATE_NAME} "
                                   f"is missing); run without --resume to start it")
            return {"format": STATE_FORMAT, "version": STATE_VERSION,
                    "fingerprint": fingerprint, "sweep": str(self.plan.path),
                    "trials": names, "records": {name: [] for name in names}}
        try:
            raw = read_bytes(path, "the sweep state", MAX_STATE_BYTES, "it is not ours")
            state = json.loads(raw.decode("utf-8"))
            if state.get("format") != STATE_FORMAT or not isinstance(state.get("records"), dict):
                raise ValueError("not a sweep state")
        except (CharRNNError, OSError, UnicodeDecodeError, ValueError, AttributeError,
                RecursionError) as error:
            reason = (str(error) or type(error).__name__).splitlines()[0][:200]
            raise CharRNNError(f"{path} cannot be read ({reason}); delete {self.out} to start "
                               f"the sweep over, or pass another --out") from None
        if state.get("fingerprint") != fingerprint:
            raise CharRNNError(f"{self.out} holds the results of a different sweep (its trials, "
                               f"configs, corpora or rungs differ from {self.plan.path}); pass "
                               f"another --out, or delete {self.out} to start over")
        for name, records in state["records"].items():
            _check_records(path, name, records)
        state["records"] = {name: list(state["records"].get(name, [])) for name in names}
        return state

    def _save_state(self) -> None:
        self.state["records"] = self.records
        _write(self.out / STATE_NAME, (json.dumps(self.state, indent=1) + "\n").encode("utf-8"))

    def _remove_temporaries(self) -> None:
        """The temporary files a killed driver left beside the sweep's files (under the lock,
        all of them are stale); other hidden files in --out are not the sweep's and stay."""
        for path in sweep_outputs(self.out, self.plan):
            remove_stale_temporaries(path)

    def _paths(self, name: str, log_suffix: str = ".jsonl") -> dict[str, Path]:
        return {"log": self.trials_dir / f"{name}{log_suffix}",
                "best": self.trials_dir / f"{name}.best.npz",
                "checkpoint": self.trials_dir / f"{name}.npz"}

    def _last_ok(self, name: str) -> dict | None:
        oks = [record for record in self.records.get(name, []) if record["status"] == "ok"]
        return oks[-1] if oks else None

    def recover(self) -> None:
        """Finish or undo a commit a killed driver left half done; drop records whose
        checkpoint is gone or changed (those trials are trained again, to the same result)."""
        for trial in self.plan.trials:
            name = trial.name
            pending = sorted(self.trials_dir.glob(f"{name}.*.new"))
            pending = [path for path in pending if path.name.split(".")[0] == name]
            last = self._last_ok(name)
            new_checkpoint = self.trials_dir / f"{name}.npz.new"
            forward = (last is not None and new_checkpoint.exists()
                       and _sha256(new_checkpoint.read_bytes()) == last["sha256"])
            for path in sorted(pending, key=lambda p: p == new_checkpoint):  # checkpoint last
                if forward:
                    os.replace(path, path.with_suffix(""))
                else:
                    with contextlib.suppress(OSError):
                        path.unlink()
            if last is None:
                continue
            checkpoint = self.trials_dir / f"{name}.npz"
            try:
                intact = _sha256(checkpoint.read_bytes()) == last["sha256"]
            except OSError:
                intact = False
            if not intact:
                self.report("warning", f"warning: {checkpoint} is missing or changed; trial "
                                       f"{name} is trained again from the start")
                self.records[name] = []
                self._save_state()

    # what is done and what is next
    def done_count(self) -> int:
        return sum(len(records) for records in self.records.values())

    def next_rung(self) -> RungView | None:
        views = rung_views(self.plan, self.records)
        last = views[-1]
        return last if last.missing else None

    def task_arguments(self, trial: Trial, rung: int, corpora: dict[str, bytes],
                       threads: int) -> tuple:
        steps = self.plan.steps(trial, rung)
        paths = self._paths(trial.name)
        config = trial.config.replace(training={"out": str(paths["checkpoint"]), "steps": steps})
        checkpoint = log = None
        if rung > 0:
            checkpoint = paths["checkpoint"].read_bytes()
            if _sha256(checkpoint) != self._last_ok(trial.name)["sha256"]:
                raise CharRNNError(f"{paths['checkpoint']} changed while the sweep ran; "
                                   f"rerun the sweep")
            suffix = "." + trial.config.training.log_format
            logfile = self._paths(trial.name, suffix)["log"]
            log = logfile.read_text(encoding="utf-8") if logfile.exists() else None
        corpus = trial.config.data.corpus
        return (trial.name, config.to_yaml(), steps, Path(corpus).name, corpora[corpus],
                checkpoint, log, threads)

    # commits
    def commit(self, trial: Trial, rung: int, result: dict) -> None:
        previous = self.records[trial.name][:rung]
        seconds = sum(record.get("seconds") or 0.0 for record in previous) + result["seconds"]
        paths = self._paths(trial.name, result["log_suffix"])
        files = [(paths["log"], result["log"].encode("utf-8"))]
        if result["best"] is not None:
            files.append((paths["best"], result["best"]))
        files.append((paths["checkpoint"], result["checkpoint"]))
        for path, data in files:
            _write(path.with_name(path.name + ".new"), data)
        record = {"rung": rung, "steps": result["step"], "val_loss": result["val_loss"],
                  "train_loss": result["train_loss"], "seconds": round(seconds, 3),
                  "status": "ok", "sha256": _sha256(result["checkpoint"]),
                  "worker": result.get("worker")}
        self.records[trial.name] = [*previous, record]
        self._save_state()
        for path, _ in files:
            os.replace(path.with_name(path.name + ".new"), path)
        self.write_results()

    def commit_failure(self, trial: Trial, rung: int, error: str) -> None:
        previous = self.records[trial.name][:rung]
        record = {"rung": rung, "steps": self.plan.steps(trial, rung), "val_loss": None,
                  "train_loss": None, "seconds": round(sum(r.get("seconds") or 0.0
                                                           for r in previous), 3),
                  "status": "failed", "error": error, "sha256": None}
        self.records[trial.name] = [*previous, record]
        self._save_state()
        self.write_results()

    # results
    def rows(self) -> list[dict]:
        """One row per trial and rung trained, in trial then rung order, with its status."""
        views = rung_views(self.plan, self.records)
        promoted = {view.index: {t.name for t in view.promoted}
                    for view in views if view.promoted is not None}
        rows = []
        for trial in self.plan.trials:
            for record in self.records.get(trial.name, []):
                rung = record["rung"]
                if record["status"] != "ok":
                    status = "failed"
                elif rung == self.plan.rung_count - 1:
                    status = "done"
                elif rung in promoted:
                    status = "promoted" if trial.name in promoted[rung] else "pruned"
                else:
                    status = "trained"  # its rung is not decided yet
                row = {"trial": trial.name, **trial.values, "steps": record["steps"],
                       "val_loss": record["val_loss"], "train_loss": record["train_loss"],
                       "seconds": record["seconds"], "status": status}
                if record.get("error"):
                    row["error"] = record["error"]
                rows.append(row)
        return rows

    def ranking(self) -> list[dict]:
        """Each trial's last row, best first: furthest rung, then validation loss, then index;
        failed trials last."""
        index = {trial.name: trial.index for trial in self.plan.trials}
        last = {row["trial"]: row for row in self.rows()}  # rows come in rung order

        def key(row: dict):
            depth = len(self.records[row["trial"]])
            return (row["status"] == "failed", -depth, loss_key(row["val_loss"]),
                    index[row["trial"]])

        return sorted(last.values(), key=key)

    def write_results(self) -> None:
        rows = self.rows()
        columns = ["trial", *self.plan.keys, *RESULT_COLUMNS]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
        _write(self.out / "results.csv", text.getvalue().encode("utf-8"))
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        _write(self.out / "results.jsonl", lines.encode("utf-8"))
        ranking = self.ranking()
        leader = ranking[0] if ranking and ranking[0]["status"] != "failed" else None
        if leader is not None:
            key = (leader["trial"], leader["steps"])
            if key != self._best_written or not (self.out / "best.npz").exists():
                paths = self._paths(leader["trial"])
                source = paths["best"] if paths["best"].exists() else paths["checkpoint"]
                _write(self.out / "best.npz", source.read_bytes())
                self._best_written = key
