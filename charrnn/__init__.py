"""charrnn: train, sample and gradient-check character-level RNN, LSTM and GRU models on NumPy.

The command line (`charrnn ...`, or `python -m charrnn ...`) is a thin layer over this library:

    from charrnn import load_config, load_checkpoint, sample_names
    from charrnn.train import train   # charrnn.train is the module; train() lives in it
    result = train(load_config("names", ["training.steps=500"]), progress=False)
    saved = load_checkpoint(result.out)
    print(sample_names(saved.model, saved.vocab, 10, numpy.random.default_rng(0)))
"""

from __future__ import annotations

import importlib

# What `from charrnn import X` gives, loaded on first use: `import charrnn` alone stays light, so
# the command's entry point (charrnn.cli.launch) is running before NumPy starts to load.
_EXPORTS = {
    "Checkpoint": "charrnn.checkpoint", "load_checkpoint": "charrnn.checkpoint",
    "save_checkpoint": "charrnn.checkpoint", "Config": "charrnn.config",
    "load_config": "charrnn.config", "CharRNNError": "charrnn.errors",
    "evaluate_split": "charrnn.evaluate", "evaluate_text": "charrnn.evaluate",
    "Model": "charrnn.model", "ModelSpec": "charrnn.model", "sample_names": "charrnn.sample",
    "sample_text": "charrnn.sample", "Run": "charrnn.train", "Trainer": "charrnn.train",
    "start_run": "charrnn.train", "Vocabulary": "charrnn.vocab",
}

__all__ = ["__version__", *_EXPORTS]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("charrnn")
    except PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        value = _installed_version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
