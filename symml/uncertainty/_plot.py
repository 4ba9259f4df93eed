"""`plot_band`: a propagation's mean with shaded ±kσ bands."""

import math
from collections.abc import Sequence

import numpy as np

from .._errors import UncertaintyError
from ._propagate import Propagation


def plot_band(
    propagation: Propagation,
    state=None,
    *,
    index: int | tuple[int, ...] | None = None,
    sigmas: Sequence[float] = (1.0, 2.0),
    ax=None,
    color: str | None = None,
    label: str | None = None,
    x: np.ndarray | None = None,
):
    """Draw the mean of a propagation with shaded bands of `mean ± k·std` for
    each `k` in `sigmas` (the widest palest), with matplotlib.

    **Arguments:**

    - `propagation`: from [`propagate`][symml.propagate] or
      [`ParameterUncertainty.predict`][symml.ParameterUncertainty.predict].
    - `state`: for a trajectory, the state to draw (a state or its name); by
      default every state of scalar shape, one colour each.
    - `index`: for a state on a grid, the grid point to draw (a flat index or
      a tuple of indices).
    - `sigmas`: the widths of the bands in standard deviations.
    - `ax`: a matplotlib `Axes` to draw into; by default a new figure.
    - `color`, `label`: of the mean's line (the bands share its colour).
    - `x`: for an expression's 1-D output, its abscissae (default: indices).

    **Returns:**

    The matplotlib `Figure`.
    """
    import matplotlib.pyplot as plt

    widths = sorted(float(s) for s in sigmas)
    if not widths or any(not (math.isfinite(s) and s > 0) for s in widths):
        raise UncertaintyError(
            f"`sigmas` must be positive numbers of standard deviations, e.g. "
            f"(1, 2); got {sigmas!r}."
        )
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
    else:
        fig = ax.figure
    curves = []
    if propagation.system is None:
        mean, std = propagation.mean, propagation.std
        if mean.ndim > 1:
            raise UncertaintyError(
                f"`plot_band` draws a 1-D output; this one has shape {mean.shape}. "
                "Plot a slice of `propagation.mean` and `propagation.std`."
            )
        abscissa = np.arange(mean.size) if x is None else np.asarray(x)
        curves.append((label, np.atleast_1d(mean), np.atleast_1d(std), color))
    else:
        system = propagation.system
        abscissa = np.asarray(propagation.ts)
        names = system.state_names if state is None else (system._name(state),)
        for i, name in enumerate(names):
            mean, std = propagation[name]
            shape = system.state_shape(name)
            if shape:
                if index is None:
                    if state is None:
                        continue
                    raise UncertaintyError(
                        f"`{name}` is a state on a grid of shape {shape}; pass "
                        "`index=` (a grid point) to draw it."
                    )
                flat_mean = mean.reshape(mean.shape[0], -1)
                flat_std = std.reshape(std.shape[0], -1)
                k = (
                    int(np.ravel_multi_index(index, shape))
                    if isinstance(index, tuple)
                    else int(index)
                )
                if not 0 <= k < flat_mean.shape[1]:
                    raise UncertaintyError(
                        f"`index={index!r}` is outside the grid of `{name}` "
                        f"(shape {shape})."
                    )
                mean, std = flat_mean[:, k], flat_std[:, k]
                name = f"{name}[{index}]"
            c = color if color is not None else f"C{i}"
            curves.append((label or name, mean, std, c))
    for text, mean, std, c in curves:
        (line,) = ax.plot(abscissa, mean, color=c, label=text)
        c = line.get_color()
        for j, k in enumerate(reversed(widths)):
            ax.fill_between(
                abscissa,
                mean - k * std,
                mean + k * std,
                color=c,
                alpha=0.2 + 0.25 * j / max(1, len(widths) - 1),
                lw=0,
                label=f"± {k:g}σ" if text == curves[0][0] else None,
            )
    ax.set_xlabel("t" if propagation.system is not None else "")
    ax.legend(fontsize=8)
    return fig
