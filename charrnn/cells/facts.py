"""The facts a cell declares about itself, so that no other module keeps a table of cells.

gradflow reads `carrying_gate` (the gate that scales a cell's direct path back in time) and
`gate_names` (the blocks of W_hh); the viewer reads `shown_series()`; config reads `activations`;
gradcheck checks every activation a cell declares.
"""

from __future__ import annotations

from typing import NamedTuple


class CarryingGate(NamedTuple):
    """The gate along whose direct path the gradient travels back almost whole when it is near 1.

    field: the cache field holding it, (T, B, H); key: its name in gradflow's report and JSON;
    label: how the report names it; path: what it carries, as the equation of that path."""

    field: str
    key: str
    label: str
    path: str


class Series(NamedTuple):
    """One thing the viewer can colour the text by: a (T, B, H) cache field, its name, and its
    natural range (None: scaled to the largest value shown)."""

    field: str
    label: str
    natural_range: tuple[float, float] | None
