"""What the plots share: figures without pyplot, resolving keys and truths."""

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import sympy as sp

from .._errors import ExportError
from ..dsl import Data


def figure(nrows: int, ncols: int, *, width: float = 4.2, height: float = 3.2):
    """A new figure with a grid of axes (`axes[i, j]`), released by pyplot."""
    # Made by pyplot, which sets up a notebook's display of figures, then
    # released: pyplot neither keeps it alive nor shows it a second time at
    # the end of a notebook cell that returns it.
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width * ncols, height * nrows), layout="constrained")
    plt.close(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def check_ax(ax, what: str):
    """`ax` must be one matplotlib `Axes`."""
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        raise ExportError(
            f"`ax` must be a matplotlib `Axes` to draw {what} into (e.g. "
            f"`plt.gca()`); got {type(ax).__name__}."
        )
    return ax


def name_of(key) -> str:
    """The name of a state, field or unknown output given as itself or a name."""
    if isinstance(key, str):
        return key
    func = getattr(key, "func", None)
    if isinstance(key, sp.core.function.AppliedUndef):
        return func.__name__
    if isinstance(key, sp.Symbol):
        return key.name
    raise ExportError(
        f"Expected a state, a field, an unknown's output or a name; got {key!r}."
    )


def as_data_list(data) -> list[Data]:
    items = list(data) if isinstance(data, list | tuple) else [data]
    for i, d in enumerate(items):
        if not isinstance(d, Data):
            raise ExportError(
                f"`data` must be a `symml.Data` or a list of them (one per "
                f"trajectory); item {i} is {type(d).__name__}."
            )
    return items


def evaluator(truth, inputs: Sequence[sp.Expr], what: str) -> Callable:
    """A function of the input columns `f(*columns) -> values` from a sympy
    expression written in `inputs` (or numbers), or a callable taking the
    columns."""
    if callable(truth) and not isinstance(truth, sp.Basic):
        return truth
    try:
        expr = sp.sympify(truth)
    except (sp.SympifyError, TypeError):
        raise ExportError(
            f"{what} must be a sympy expression of the unknown's inputs or a "
            f"function of them; got {truth!r}."
        ) from None
    placeholders = [sp.Dummy(f"z{i}") for i in range(len(inputs))]
    body = expr.xreplace(dict(zip(inputs, placeholders, strict=True)))
    free = body.free_symbols - set(placeholders)
    if free:
        raise ExportError(
            f"{what} `{expr}` contains {', '.join(sorted(map(str, free)))}, which "
            f"are not inputs of the unknown ({', '.join(map(str, inputs))}); "
            "write it in the inputs with numbers for every parameter."
        )
    f = sp.lambdify(placeholders, body, "numpy")

    def evaluate(*columns):
        return np.broadcast_to(np.asarray(f(*columns), float), columns[0].shape)

    return evaluate


def lookup(mapping: Mapping, key, what: str):
    """`mapping[key]` where `mapping` is keyed by expressions or names."""
    target = name_of(key) if not isinstance(key, str) else key
    for k, v in mapping.items():
        if k == key or (isinstance(k, str) and k == target):
            return v
        if not isinstance(k, str) and _safe_name(k) == target:
            return v
    return None


def _safe_name(key) -> str | None:
    try:
        return name_of(key)
    except ExportError:
        return None


def check_mapping(value, what: str) -> Mapping:
    if value is not None and not isinstance(value, Mapping):
        raise ExportError(
            f"`{what}` must be a dict keyed by state, field or unknown output (or "
            f"their names); got {type(value).__name__}."
        )
    return value or {}
