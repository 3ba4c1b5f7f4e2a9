"""`charrnn viz`: one self-contained HTML page of what every character and every unit does.

The work is split in two halves that meet in a Trace:
- trace_model runs a checkpoint over a text and records, for every character shown, the loss the
  model paid for it, its top guesses for it, and the state of every unit after reading it;
- find_units, build_page and write_page need only the Trace: they correlate units with simple
  features of the text, and write one HTML file (inline CSS and JavaScript, data embedded as
  JSON, no network access of any kind) that colours the text by surprise or by any unit.

One module a job, in the order the command meets them:

- `text`: the text to show (the checkpoint's held-out text by default) and its length;
- `trace`: the Trace, and running the model over the text to fill it;
- `units`: the features of the text and the units that follow them (`Finding`s);
- `page`: what the page embeds, the page itself (`page.html`, `page.css` and `page.js`, files
  of this package) and writing it.
"""

from charrnn.viz.page import (
    LEVELS,
    MISSING,
    PAGE_HINT,
    VALUE_BUDGET,
    build_page,
    check_output_path,
    checkpoint_facts,
    choose_series,
    page_data,
    script_json,
    series_kind,
    write_page,
)
from charrnn.viz.text import (
    DEFAULT_LENGTH,
    MAX_LENGTH,
    check_length,
    default_text,
    prepare_text,
    read_start,
)
from charrnn.viz.trace import LINES_BATCH, TOP_K, Trace, cell_series, trace_model
from charrnn.viz.units import (
    FINDINGS,
    MIN_ABS_R,
    PER_FEATURE,
    Finding,
    correlations,
    find_units,
    text_features,
)

__all__ = [
    "DEFAULT_LENGTH",
    "FINDINGS",
    "LEVELS",
    "LINES_BATCH",
    "MAX_LENGTH",
    "MIN_ABS_R",
    "MISSING",
    "PAGE_HINT",
    "PER_FEATURE",
    "TOP_K",
    "VALUE_BUDGET",
    "Finding",
    "Trace",
    "build_page",
    "cell_series",
    "check_length",
    "check_output_path",
    "checkpoint_facts",
    "choose_series",
    "correlations",
    "default_text",
    "find_units",
    "page_data",
    "prepare_text",
    "read_start",
    "script_json",
    "series_kind",
    "text_features",
    "trace_model",
    "write_page",
]
