"""The names that ``explorer.reporting.views`` held before the reporting package was split by concern, kept so
code written against it (plugins that import ``views.caption``, as docs/plugins.md once showed) goes on working.
New code imports from the module that holds a name: ``figures`` (the house style), ``encoding`` (colour codes and
scales), ``rows`` (row axes), ``pickers``."""

from __future__ import annotations

from explorer.reporting.encoding import (COSINE, DIVERGING, LEVELS, ROBUST_QUANTILE, SCALES, CodeScale, Unpacker,
                                         decode, fine_source, heavy_tailed, linear_scale, matrix_scale, pack_lower,
                                         quantise, robust_limit, symlog_scale, symmetric_scale)
from explorer.reporting.figures import (MIN_WIDTH, SIZE, TOOLBAR, block_note, caption, captioned, div, figure, fmt,
                                        heading, number_grid, side_by_side, spacer, stack)
from explorer.reporting.rows import label_rows, row_numbers, row_range, row_text, row_word, shortened

__all__ = ["COSINE", "DIVERGING", "LEVELS", "MIN_WIDTH", "ROBUST_QUANTILE", "SCALES", "SIZE", "TOOLBAR", "CodeScale",
           "Unpacker", "block_note", "caption", "captioned", "decode", "div", "figure", "fine_source", "fmt", "heading",
           "heavy_tailed", "label_rows", "linear_scale", "matrix_scale", "number_grid", "pack_lower", "quantise",
           "robust_limit", "row_numbers", "row_range", "row_text", "row_word", "shortened", "side_by_side", "spacer",
           "stack", "symlog_scale", "symmetric_scale"]
