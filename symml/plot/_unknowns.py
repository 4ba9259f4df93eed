"""`plot.unknowns`: each learned term against its inputs."""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .. import _display
from .._errors import ExportError
from ..discovery import Discovery
from ..training import FitResult
from ._common import check_mapping, evaluator, figure, lookup


def unknowns(
    result,
    truth: Mapping | None = None,
    *,
    recovered: "Discovery | Mapping | None" = None,
    span: tuple[float, float] | None = None,
    n: int = 200,
):
    """Draw each unknown term the fit learned against its inputs.

    One column per output of every unknown. An unknown of one input is drawn
    as a curve of the network over `span` (default: the unknown's declared
    `input_range`, else the inputs the fit saw), with the inputs the fit saw
    shaded, the truth and the recovered expression beside it, and below it
    their differences from the truth. An unknown of several inputs is drawn at
    the inputs the fit saw: the network's output against the truth's when
    `truth` is given, else coloured over the plane of its first two inputs.

    **Arguments:**

    - `result`: a fit result with unknowns.
    - `truth`: `{output: expression or function}` per unknown output (the
      output as it appears in the model, `U[0]`, or its name `"U_0"`): a sympy
      expression in the unknown's inputs (`-0.9 * x * y`) or a function of the
      input columns.
    - `recovered`: a [`Discovery`][symml.Discovery] (or a mapping like
      `truth`) whose expressions are drawn beside the network.
    - `span`: `(low, high)` of the input of one-input unknowns.
    - `n`: the points of each curve (and the samples per trajectory).

    **Returns:** the matplotlib `Figure`.
    """
    if not isinstance(result, FitResult):
        raise ExportError(
            f"`plot.unknowns` draws the unknowns of a fit result; got "
            f"{type(result).__name__}."
        )
    model = result.model
    if not model.unknowns:
        raise ExportError(
            "The fitted model has no unknown terms to draw; `plot.unknowns` shows "
            "what the networks of `symml.Unknown` terms learned."
        )
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ExportError(f"`n` must be an integer >= 2; got {n!r}.")
    truth = check_mapping(truth, "truth")
    if isinstance(recovered, Discovery):
        recovered = recovered.expressions
    recovered = check_mapping(recovered, "recovered")
    if span is not None:
        try:
            low, high = (float(v) for v in span)
        except (TypeError, ValueError):
            raise ExportError(
                f"`span` must be a pair (low, high); got {span!r}."
            ) from None
        if not low < high:
            raise ExportError(f"`span` must have low < high; got {span!r}.")
        span = (low, high)
    samples = result.unknown_samples(n)
    columns = [(u, j) for u in model.unknowns for j in range(u.n_outputs)]
    one_input = any(len(u.inputs) == 1 for u, _ in columns)
    rows = 2 if one_input and (truth or recovered) else 1
    fig, axes = figure(rows, len(columns), width=4.2, height=3.2)
    for c, (u, j) in enumerate(columns):
        X, Y = (np.asarray(a, float) for a in samples[u.name])
        Y = Y.reshape(len(Y), -1)
        output = u.outputs[j]
        true = lookup(truth, output, "truth")
        found = lookup(recovered, output, "recovered")
        true = None if true is None else evaluator(true, u.inputs, f"`truth[{output}]`")
        found = (
            None
            if found is None
            else evaluator(found, u.inputs, f"`recovered[{output}]`")
        )
        network = result.params.networks[u.name]
        ax = axes[0, c]
        if len(u.inputs) == 1:
            error_ax = axes[1, c] if rows == 2 else None
            _curve(ax, error_ax, u, j, X, Y, network, true, found, span, n)
        else:
            if rows == 2:
                axes[1, c].set_axis_off()
            _cloud(fig, ax, u, j, X, Y, true, found)
        ax.set_title(_display.text(output), fontsize=9)
    return fig


def _range(u, X, span):
    if span is not None:
        return span
    declared = getattr(u, "input_range", None)
    if declared is not None:
        (low,), (high,) = declared
        return float(low), float(high)
    return float(X.min()), float(X.max())


def _curve(ax, error_ax, u, j, X, Y, network, true, found, span, n):
    low, high = _range(u, X, span)
    grid = np.linspace(low, high, n)
    dtype = jax.tree.leaves(network)[0].dtype
    learned = np.asarray(jax.vmap(network)(jnp.asarray(grid[:, None], dtype)))
    learned = learned.reshape(n, -1)[:, j]
    seen = (float(X.min()), float(X.max()))
    label = _display.text(u.inputs[0])
    for a in (ax, error_ax):
        if a is not None:
            a.axvspan(*seen, color="0.92", label="inputs the fit saw")
    if true is not None:
        truth = true(grid)
        ax.plot(grid, truth, color="0.5", lw=4, alpha=0.5, label="truth")
    ax.plot(grid, learned, color="C0", lw=1.5, label="network")
    ax.plot(X[:, 0], Y[:, j], ".", color="C0", ms=2, label="along the fit")
    if found is not None:
        ax.plot(grid, found(grid), "--", color="C1", lw=1.5, label="recovered")
    ax.set_xlabel(label)
    ax.legend(fontsize=7)
    if error_ax is not None:
        if true is not None:
            error_ax.plot(grid, learned - truth, color="C0", label="network − truth")
            if found is not None:
                error_ax.plot(
                    grid,
                    found(grid) - truth,
                    "--",
                    color="C1",
                    label="recovered − truth",
                )
        elif found is not None:
            error_ax.plot(
                grid,
                found(grid) - learned,
                "--",
                color="C1",
                label="recovered − network",
            )
        error_ax.axhline(0.0, color="k", lw=0.5)
        error_ax.set_xlabel(label)
        error_ax.legend(fontsize=7)


def _cloud(fig, ax, u, j, X, Y, true, found):
    columns = [X[:, i] for i in range(X.shape[1])]
    if true is not None:
        truth = true(*columns)
        low = float(min(truth.min(), Y[:, j].min()))
        high = float(max(truth.max(), Y[:, j].max()))
        ax.plot([low, high], [low, high], color="0.6", lw=1, label="equal")
        ax.plot(truth, Y[:, j], ".", color="C0", ms=3, label="network")
        if found is not None:
            ax.plot(truth, found(*columns), "x", color="C1", ms=3, label="recovered")
        ax.set_xlabel("truth")
        ax.set_ylabel("learned")
        ax.legend(fontsize=7)
        return
    points = ax.scatter(X[:, 0], X[:, 1], c=Y[:, j], s=6, cmap="viridis")
    fig.colorbar(points, ax=ax, shrink=0.85)
    ax.set_xlabel(_display.text(u.inputs[0]))
    ax.set_ylabel(_display.text(u.inputs[1]))
