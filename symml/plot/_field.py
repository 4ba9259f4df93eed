"""`plot.field`: the fields of a physics-informed fit over their domain."""

from collections.abc import Mapping, Sequence

import numpy as np

from .._errors import ExportError
from ..training import PINNResult
from ._common import figure, lookup


def field(
    result: PINNResult,
    *,
    reference: Mapping | None = None,
    grid: Mapping | None = None,
    resolution: int = 200,
    slices: Sequence[float] = (),
):
    """Draw each field of a physics-informed fit over its domain.

    A field of two variables is drawn as an image, the model's first variable
    (usually time) across, the second up; with `reference`, the reference and
    the difference beside it, and with `slices` a row of curves at fixed
    values of the first variable. A field of one variable is drawn as a
    curve.

    **Arguments:**

    - `result`: a [`PINNResult`][symml.PINNResult].
    - `reference`: `{field: values}` on the grid (shape `(len(grid[v0]),
      len(grid[v1]))`), or a function of the coordinates by name
      (`reference(t=..., x=...)` returning `{field name: values}` or one
      array), to compare with.
    - `grid`: `{variable: 1-D coordinates}` (default: `resolution` points over
      each variable's domain).
    - `resolution`: the points per variable of the default grid.
    - `slices`: values of the first variable at which to draw the fields as
      curves of the second.

    **Returns:** the matplotlib `Figure`.
    """
    if not isinstance(result, PINNResult):
        raise ExportError(
            f"`plot.field` draws the fields of a physics-informed fit "
            f"(`PINNResult`); got {type(result).__name__}. For a fit of a "
            "discretised PDE use `symml.plot.fit(result)`."
        )
    model = result.model
    variables = list(model.variables)
    if len(variables) > 2:
        raise ExportError(
            f"`plot.field` draws fields of one or two variables; this model has "
            f"{len(variables)} ({', '.join(map(str, variables))}). Draw slices of "
            "`result.predict(...)` instead."
        )
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or resolution < 2
    ):
        raise ExportError(f"`resolution` must be an integer >= 2; got {resolution!r}.")
    axes_values = {}
    for v in variables:
        given = None if grid is None else lookup(grid, v, "grid")
        if given is not None:
            values = np.asarray(given, float)
            if values.ndim != 1 or values.size < 2:
                raise ExportError(
                    f"`grid[{v}]` must be a 1-D array of at least two points; got "
                    f"shape {values.shape}."
                )
        elif v in model.domain:
            values = np.linspace(*model.domain[v], resolution)
        else:
            raise ExportError(
                f"The model has no domain for `{v}`; give its points in `grid=`."
            )
        axes_values[v] = values
    mesh = np.meshgrid(*axes_values.values(), indexing="ij")
    coordinates = {str(v): m for v, m in zip(variables, mesh, strict=True)}
    predicted = result.predict(**coordinates)
    references = _references(reference, coordinates, predicted)
    names = list(predicted)
    if len(variables) == 1:
        (v,) = variables
        fig, axes = figure(1, len(names), width=4.6, height=3.2)
        for ax, name in zip(axes[0], names, strict=True):
            ref = references.get(name)
            if ref is not None:
                ax.plot(
                    axes_values[v], ref, color="0.5", lw=4, alpha=0.5, label="reference"
                )
            ax.plot(axes_values[v], predicted[name], color="C0", label="network")
            ax.set_xlabel(str(v))
            ax.set_title(name, fontsize=9)
            ax.legend(fontsize=7)
        return fig
    v0, v1 = variables
    first, second = axes_values[v0], axes_values[v1]
    columns = 3 if references else 1
    rows = len(names) + (1 if slices else 0)
    fig, axes = figure(rows, max(columns, len(slices) if slices else 1), width=4.0)
    extent = (first[0], first[-1], second[0], second[-1])
    for r, name in enumerate(names):
        values = np.asarray(predicted[name])
        ref = references.get(name)
        low = float(np.min(values) if ref is None else min(values.min(), ref.min()))
        high = float(np.max(values) if ref is None else max(values.max(), ref.max()))
        panels = [(f"{name}, network", values, "viridis", (low, high))]
        if ref is not None:
            difference = values - ref
            bound = float(np.max(np.abs(difference))) or 1.0
            panels += [
                (f"{name}, reference", ref, "viridis", (low, high)),
                ("network − reference", difference, "RdBu_r", (-bound, bound)),
            ]
        for c in range(axes.shape[1]):
            ax = axes[r, c]
            if c >= len(panels):
                ax.set_axis_off()
                continue
            title, image_values, cmap, (vmin, vmax) = panels[c]
            image = ax.imshow(
                image_values.T,
                origin="lower",
                aspect="auto",
                extent=extent,
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
            )
            fig.colorbar(image, ax=ax, shrink=0.85)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(str(v0))
            ax.set_ylabel(str(v1))
    if slices:
        for c in range(axes.shape[1]):
            ax = axes[-1, c]
            if c >= len(slices):
                ax.set_axis_off()
                continue
            i = int(np.argmin(np.abs(first - float(slices[c]))))
            for k, name in enumerate(names):
                ref = references.get(name)
                color = f"C{k % 10}"
                if ref is not None:
                    ax.plot(
                        second,
                        ref[i],
                        color="0.5",
                        lw=4,
                        alpha=0.5,
                        label=f"{name}, reference",
                    )
                ax.plot(
                    second,
                    np.asarray(predicted[name])[i],
                    "--",
                    color=color,
                    label=f"{name}, network",
                )
            ax.set_title(f"{v0} = {first[i]:.3g}", fontsize=9)
            ax.set_xlabel(str(v1))
            ax.legend(fontsize=7)
    return fig


def _references(reference, coordinates, predicted) -> dict[str, np.ndarray]:
    if reference is None:
        return {}
    shape = next(iter(predicted.values())).shape
    if callable(reference):
        values = reference(**coordinates)
        if not isinstance(values, Mapping):
            if len(predicted) != 1:
                raise ExportError(
                    "`reference` returned one array, but the model has several "
                    "fields; return `{field name: values}`."
                )
            values = {next(iter(predicted)): values}
    elif isinstance(reference, Mapping):
        values = reference
    else:
        raise ExportError(
            f"`reference` must be `{{field: values on the grid}}` or a function of "
            f"the coordinates; got {type(reference).__name__}."
        )
    out = {}
    for name in predicted:
        value = lookup(values, name, "reference")
        if value is None:
            continue
        array = np.asarray(value, float)
        if array.shape != shape:
            raise ExportError(
                f"`reference` of `{name}` has shape {array.shape}; the grid has "
                f"shape {shape} (one axis per variable, in the model's order)."
            )
        out[name] = array
    return out
