"""`plot.discovery`: the Pareto fronts and coefficients of a discovery."""

import math

import numpy as np
import sympy as sp

from .. import _display
from .._errors import ExportError
from ..discovery import Discovery
from ._common import figure


def discovery(found: Discovery):
    """Draw what a discovery chose, one column per discovered term.

    Top: the Pareto front, the relative error of the best model of each number
    of terms (and its held-out error, when the criterion measured it), with
    the chosen model marked. Bottom: the coefficients of the chosen terms.

    **Arguments:**

    - `found`: a [`Discovery`][symml.Discovery].

    **Returns:** the matplotlib `Figure`.
    """
    if not isinstance(found, Discovery):
        raise ExportError(
            f"`plot.discovery` draws a `symml.Discovery` (from `symml.discover`); "
            f"got {type(found).__name__}."
        )
    keys = list(found.fronts)
    fig, axes = figure(2, len(keys), width=4.2, height=3.0)
    for c, key in enumerate(keys):
        front = found.fronts[key]
        ax = axes[0, c]
        sizes = np.asarray(front.n_terms)
        # A perfect fit has zero error; keep it on the logarithmic axis.
        floor = 1e-16
        error = np.maximum(np.asarray(front.error, float), floor)
        ax.semilogy(sizes, error, "o-", color="C0", label="error")
        if front.held_out_error is not None:
            held = np.maximum(np.asarray(front.held_out_error, float), floor)
            ax.semilogy(sizes, held, "s--", color="C1", label="held-out error")
        if front.chosen is not None:
            chosen = front.chosen
            ax.semilogy(
                [sizes[chosen]],
                [error[chosen]],
                "*",
                color="C3",
                ms=14,
                label="chosen",
            )
        ax.set_xlabel("number of terms")
        ax.set_ylabel("relative error")
        ax.set_title(_display.text(key), fontsize=9)
        ax.legend(fontsize=7)
        terms = found.terms[key]
        ax = axes[1, c]
        if not terms:
            ax.set_axis_off()
            ax.set_title("no term kept", fontsize=9)
            continue
        labels = [f"${_display.latex(term)}$" for term in terms]
        values = [float(v) for v in terms.values()]
        positions = np.arange(len(values))
        ax.barh(positions, values, color=["C0" if v >= 0 else "C3" for v in values])
        ax.set_yticks(positions, labels)
        ax.axvline(0.0, color="k", lw=0.5)
        ax.invert_yaxis()
        ax.set_xlabel("coefficient")
        for p, v in zip(positions, values, strict=True):
            ax.annotate(
                _display.text(_float(v)),
                (v, p),
                xytext=(3 if v >= 0 else -3, 0),
                textcoords="offset points",
                ha="left" if v >= 0 else "right",
                va="center",
                fontsize=8,
            )
        bound = max(abs(v) for v in values) or 1.0
        ax.set_xlim(-1.4 * bound if min(values) < 0 else 0, 1.4 * bound)
    return fig


def _float(v: float):
    return sp.Float(v) if math.isfinite(v) else sp.nan
