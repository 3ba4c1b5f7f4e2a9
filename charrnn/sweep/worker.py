"""What runs one trial-rung on a worker: `train_trial`, the top-level function a local pool or a
Dask worker is given (it is pickled by its module path, charrnn.sweep.worker.train_trial).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import tempfile
import threading
from pathlib import Path

from charrnn.plumbing.writing import atomic_write


@contextlib.contextmanager
def _blas_threads(threads: int):
    """Limit BLAS to `threads` with threadpoolctl when it is installed (it also works inside
    already-running Dask workers); otherwise the environment set before NumPy loaded decides."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(threads):
        yield


def train_trial(name: str, config_yaml: str, steps: int, corpus_name: str, corpus: bytes,
                checkpoint: bytes | None = None, log: str | None = None,
                threads: int = 1) -> dict:
    """Train one trial to `steps` on this worker (resuming `checkpoint` if given) in a temporary
    directory; return the new checkpoint, best checkpoint and log as bytes/text with the losses.

    Top-level and given plain values, so any Executor can ship it. The checkpoints keep the
    trial's own config and corpus path (the driver's corpus and DIR/trials/NAME.npz), not the
    worker's temporary paths, so `charrnn train --resume` and `charrnn sample --novel` work on
    them.
    """
    from charrnn.checkpoint import load_checkpoint, save_checkpoint
    from charrnn.config import config_from_yaml_text
    from charrnn.train import best_path, log_path, train

    stored = config_from_yaml_text(config_yaml, f"trial {name} config")
    with tempfile.TemporaryDirectory(prefix=f"charrnn-sweep-{name}-") as temporary:
        directory = Path(temporary)
        corpus_path = directory / "corpus" / corpus_name
        corpus_path.parent.mkdir()
        atomic_write(corpus_path, corpus, "the trial's corpus", follow=False)
        out = directory / f"{name}.npz"
        training = {"out": str(out), "steps": steps, "sample_every": 0, "checkpoint_every": 0}
        if "threads" in stored.to_dict()["training"]:  # the trainer's own BLAS thread policy
            training["threads"] = threads
        run_config = stored.replace(data={"corpus": str(corpus_path)}, training=training)
        logfile = log_path(out, stored.training.log_format)
        if checkpoint is not None:
            atomic_write(out, checkpoint, "the trial's checkpoint", follow=False)
            if log:
                atomic_write(logfile, log, "the trial's metrics log", follow=False)
        notes: list[str] = []

        def report(kind: str, text: str) -> None:
            if kind == "warning":
                notes.append(text)

        outcome: dict = {}

        def run() -> None:
            try:
                with _blas_threads(threads):
                    outcome["result"] = train(
                        run_config, resume=out if checkpoint is not None else None,
                        progress=False, report=report)
            except BaseException as error:  # re-raised below, in the calling thread
                outcome["error"] = error

        # Off the main thread the trainer installs no signal handlers, so the driver's SIGTERM
        # ends a pool worker at once (instead of a save and an exception that nobody reads).
        worker = threading.Thread(target=run, name=f"charrnn-trial-{name}", daemon=True)
        worker.start()
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        files = {}
        for key, path in (("checkpoint", out), ("best", best_path(out))):
            if path.exists():
                saved = load_checkpoint(path)  # the driver's corpus, not the worker's copy:
                meta = {**saved.meta, "corpus_path": stored.data.corpus}  # absolute (plan)
                save_checkpoint(path, dataclasses.replace(saved, config=stored, meta=meta))
                files[key] = path.read_bytes()
        if "checkpoint" not in files:
            raise RuntimeError(f"trial {name}: training wrote no checkpoint")
        best = result.best_val_loss
        train_loss = result.final_train_loss
        return {
            "name": name,
            "checkpoint": files["checkpoint"],
            "best": files.get("best"),
            "log": logfile.read_text(encoding="utf-8") if logfile.exists() else "",
            "log_suffix": logfile.suffix,
            "step": int(result.step),
            "val_loss": float(best) if best is not None and math.isfinite(best) else None,
            "train_loss": (float(train_loss) if train_loss is not None
                           and math.isfinite(train_loss) else None),
            "seconds": float(result.seconds),
            "notes": notes,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }
