"""Plots of fits, learned terms, discoveries and fields, and reports.

Each function draws with matplotlib and returns the `matplotlib.figure.Figure`
it drew into: save it with `fig.savefig(path)`, or let a notebook show it.
pyplot does not keep the figures (nothing piles up in a loop, nothing shows
twice in a notebook), so `plt.show()` does not show them; to draw into a
window or a figure of your own, pass `ax=` from `pyplot` where a function
takes one. matplotlib is imported only when a plot is drawn, so
`import symml` stays fast. Bad arguments raise
[`ExportError`][symml.ExportError].
"""

from ._discovery import discovery as discovery
from ._field import field as field
from ._fit import fit as fit
from ._report import report as report
from ._unknowns import unknowns as unknowns
