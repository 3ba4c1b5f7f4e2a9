"""The PyTorch module that a `charrnn export --to torch` file fits, and its loader.

    CharRNN(cell, vocab_size, hidden_size, num_layers, nonlinearity, dropout)
        x (B, T) int64 character indices
        -> one-hot (B, T, V)                 charrnn's layer 0 reads one-hot characters
        -> nn.RNN / nn.LSTM / nn.GRU         batch_first, the checkpoint's layers and size
        -> nn.Dropout -> nn.Linear(H, V)     logits (B, T, V); softmax gives the next character
    forward(x, state=None) -> (logits, state); state is h (L, B, H), or (h, c) for the LSTM, as
    torch's recurrent modules take and return it, so a caller can feed one character at a time.

torch is imported when a function here is called, never at import, so the package works
without it. The class is made on first use and kept.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from charrnn.errors import CharRNNError
from charrnn.export import require

FILE_FORMAT = "charrnn-torch"
FILE_VERSION = 1
RECURRENT = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


@functools.cache
def module_class():
    """The CharRNN nn.Module class (imports torch)."""
    torch = require("torch", "torch")
    nn = torch.nn

    class CharRNN(nn.Module):
        """One-hot characters -> nn.RNN/LSTM/GRU (batch_first) -> dropout -> nn.Linear."""

        def __init__(self, cell: str, vocab_size: int, hidden_size: int, num_layers: int = 1,
                     nonlinearity: str = "tanh", dropout: float = 0.0):
            super().__init__()
            self.vocab_size = vocab_size
            recurrent = getattr(nn, RECURRENT[cell])
            options = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
            # torch drops between layers only; charrnn also drops before the output layer
            self.rnn = recurrent(vocab_size, hidden_size, num_layers, batch_first=True,
                                 dropout=dropout if num_layers > 1 else 0.0, **options)
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(hidden_size, vocab_size)

        def forward(self, x, state=None):
            one_hot = nn.functional.one_hot(x.long(), self.vocab_size).to(self.out.weight.dtype)
            h, state = self.rnn(one_hot, state)
            return self.out(self.drop(h)), state

    return CharRNN


def build_module(cell: str, vocab_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", dropout: float = 0.0):
    return module_class()(cell, vocab_size, hidden_size, num_layers, nonlinearity, dropout)


class Loaded(NamedTuple):
    module: object  # CharRNN in eval mode
    chars: str  # the vocabulary: index i is chars[i]
    mode: str  # "lines" (one name a line: start each after "\n") or "stream"


def load(path, map_location: str = "cpu") -> Loaded:
    """The module (in eval mode) and vocabulary of an exported file; weights_only loading, so
    the file cannot run code."""
    torch = require("torch", "torch")
    blob = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FILE_FORMAT:
        raise CharRNNError(f"{path} is not a file of `charrnn export --to torch`")
    if blob.get("version") != FILE_VERSION:
        raise CharRNNError(f"{path} has export version {blob.get('version')}; this charrnn "
                           f"reads version {FILE_VERSION}")
    module = build_module(**blob["hparams"])
    module.load_state_dict(blob["state_dict"])
    module.eval()
    return Loaded(module, blob["chars"], blob["mode"])
