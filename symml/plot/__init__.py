"""Plots of fits, learned terms, discoveries and fields, and reports.

Each function draws with matplotlib and returns the `matplotlib.figure.Figure`
it drew into: save it with `fig.savefig(path)`, or let a notebook show it.
Figures are made without `pyplot` (no global state, nothing shown twice in a
notebook); to draw into a window or a figure of your own, pass `ax=` (or
`axes=`) from `pyplot`. matplotlib is imported only when a plot is drawn, so
`import symml` stays fast. Bad arguments raise
[`ExportError`][symml.ExportError].
"""

from ._discovery import discovery as discovery
from ._field import field as field
from ._fit import fit as fit
from ._report import report as report
from ._unknowns import unknowns as unknowns
