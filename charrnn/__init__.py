"""charrnn: train, sample and gradient-check character-level RNN, LSTM and GRU models on NumPy.

The command line (`charrnn ...`, or `python -m charrnn ...`) is a thin layer over this library:

    from charrnn import load_config, load_checkpoint, sample_names
    from charrnn.train import train   # charrnn.train is the module; train() lives in it
    result = train(load_config("names", ["training.steps=500"]), progress=False)
    saved = load_checkpoint(result.out)
    print(sample_names(saved.model, saved.vocab, 10, numpy.random.default_rng(0)))
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from charrnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.config import Config, load_config
from charrnn.errors import CharRNNError
from charrnn.evaluate import evaluate_split, evaluate_text
from charrnn.model import Model, ModelSpec
from charrnn.sample import sample_names, sample_text
from charrnn.train import Run, Trainer, start_run
from charrnn.vocab import Vocabulary

try:
    __version__ = version("charrnn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree not installed
    __version__ = "0+unknown"

__all__ = ["CharRNNError", "Checkpoint", "Config", "Model", "ModelSpec", "Run", "Vocabulary",
           "__version__", "evaluate_split", "evaluate_text", "load_checkpoint", "load_config",
           "sample_names", "sample_text", "save_checkpoint", "start_run", "Trainer"]
