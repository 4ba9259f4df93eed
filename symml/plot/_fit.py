"""`plot.fit`: a fit against its data."""

from collections.abc import Mapping, Sequence

import numpy as np

from .._errors import ExportError
from ..training import PINNResult, UDEResult
from ._common import as_data_list, check_ax, check_mapping, figure, lookup, name_of


def fit(
    result,
    data=None,
    *,
    t=None,
    y0=None,
    trajectory: int | None = None,
    states: Sequence | None = None,
    truth: Mapping | Sequence[Mapping] | None = None,
    ax=None,
    label: str = "fit",
):
    """Draw a fit against its data.

    For a fit of an ODE system ([`UDEResult`][symml.UDEResult]) each
    trajectory gets a panel with the observations (markers) and the fitted
    model simulated from its fitted initial state (lines), one colour per
    state. States on a grid (a PDE by the method of lines) get space–time
    images instead: the data, the fit and their difference. For a
    physics-informed fit ([`PINNResult`][symml.PINNResult]) the observed
    fields are drawn against the network's values at the observed points.

    **Arguments:**

    - `result`: the fit result.
    - `data`: a [`Data`][symml.Data] or a list of them, one per trajectory
      (default: the data fitted). With `y0`, data to compare with the
      simulation from `y0`, or none.
    - `t`: the times of the simulated curves (default: 200 times over the
      data's span); they may reach past the data (an extrapolation).
    - `y0`: simulate from this state (flat, or `{state: value}`) at `t[0]`
      instead of a fitted initial state (one panel; `t` required without
      data).
    - `trajectory`: draw only this trajectory (default: every one).
    - `states`: the states to draw (states or names; default: all).
    - `truth`: `{state: values at t}` drawn as wide pale lines; a list of them
      for several trajectories.
    - `ax`: a matplotlib `Axes` to draw into (one trajectory of scalar states
      only), e.g. to draw several fits in one panel.
    - `label`: the name of the simulated curves in the legend.

    **Returns:** the matplotlib `Figure`.
    """
    if isinstance(result, PINNResult):
        return _pinn(result, data, ax)
    if not isinstance(result, UDEResult):
        raise ExportError(
            f"`plot.fit` draws fits of ODE systems (`UDEResult`) and "
            f"physics-informed fits (`PINNResult`); got {type(result).__name__}."
        )
    system = result.system
    names = (
        list(system.state_names)
        if states is None
        else [_state_name(s, system) for s in states]
    )
    if y0 is not None:
        datasets = [] if data is None else as_data_list(data)
        if len(datasets) > 1:
            raise ExportError(
                "With `y0`, give at most one `Data` to compare with (the "
                "simulation from `y0` is one trajectory)."
            )
        if t is None and not datasets:
            raise ExportError("With `y0` and no data, give the times `t` to draw.")
        runs = [(None, datasets[0] if datasets else None)]
    else:
        datasets = list(result.data) if data is None else as_data_list(data)
        if trajectory is not None:
            if not 0 <= trajectory < len(datasets):
                raise ExportError(
                    f"`trajectory={trajectory!r}` is out of range; there are "
                    f"{len(datasets)} trajectory(ies), numbered from 0."
                )
            runs = [(trajectory, datasets[trajectory])]
        else:
            runs = list(enumerate(datasets))
    truths = _truths(truth, len(runs))
    gridded = [n for n in names if system.state_shape(n) != ()]
    scalar = [n for n in names if system.state_shape(n) == ()]
    if gridded and scalar:
        raise ExportError(
            f"`plot.fit` draws either scalar states or states on a grid in one "
            f"figure; choose with `states=` (scalar: {scalar}, on a grid: "
            f"{gridded})."
        )
    if gridded:
        if ax is not None:
            raise ExportError(
                "`ax` draws one panel; states on a grid take three images each. "
                "Leave `ax` out."
            )
        return _images(result, runs, gridded, y0, truths)
    if ax is not None:
        if len(runs) != 1:
            raise ExportError(
                f"`ax` draws one panel, but {len(runs)} trajectories were asked "
                "for; pick one with `trajectory=`."
            )
        ax = check_ax(ax, "the fit")
        fig, axes = ax.figure, [ax]
    else:
        fig, grid = figure(1, len(runs), width=5.0, height=3.6)
        axes = list(grid[0])
    for panel, (j, d), true in zip(axes, runs, truths, strict=True):
        times = _times(t, d)
        solution = (
            result.predict(times, y0=y0)
            if j is None
            else result.predict(times, trajectory=j)
        )
        for k, name in enumerate(names):
            color = f"C{k % 10}"
            if true is not None:
                values = lookup(true, name, "truth")
                if values is not None:
                    panel.plot(
                        times,
                        np.asarray(values, float),
                        color=color,
                        lw=4,
                        alpha=0.3,
                        label=f"{name}, truth",
                    )
            if d is not None and name in d.values:
                panel.plot(
                    d.t, d.values[name], "o", color=color, ms=3.5, label=f"{name}, data"
                )
            panel.plot(
                times,
                np.asarray(solution[name]),
                "-" if label == "fit" else "--",
                color=color,
                lw=1.5,
                label=f"{name}, {label}",
            )
        panel.set_xlabel(str(system.model.independent))
        if j is not None and len(runs) > 1:
            panel.set_title(f"trajectory {j}")
        panel.legend(fontsize=7)
    return fig


def _state_name(state, system) -> str:
    name = name_of(state)
    if name not in system.state_names:
        raise ExportError(
            f"`states` names `{name}`, which is not a state of the fitted system; "
            f"its states are {', '.join(system.state_names)}."
        )
    return name


def _times(t, data) -> np.ndarray:
    if t is not None:
        times = np.asarray(t, float)
        if times.ndim != 1 or times.size < 2:
            raise ExportError(
                f"`t` must be a 1-D array of at least two times; got shape "
                f"{times.shape}."
            )
        return times
    return np.linspace(data.t[0], data.t[-1], 200)


def _truths(truth, n: int) -> list:
    if truth is None:
        return [None] * n
    if isinstance(truth, Mapping):
        if n != 1:
            raise ExportError(
                f"`truth` is one mapping but {n} trajectories are drawn; give a "
                "list of mappings, one per trajectory."
            )
        return [truth]
    truths = list(truth)
    if len(truths) != n:
        raise ExportError(
            f"`truth` has {len(truths)} entries for {n} trajectories; give one "
            "mapping `{state: values at t}` per trajectory."
        )
    return [check_mapping(x, "truth") for x in truths]


def _images(result, runs, names, y0, truths):
    system = result.system
    grid = getattr(system, "grid", None)
    if not grid or len(grid) != 1:
        raise ExportError(
            "`plot.fit` draws states on a one-dimensional grid as space–time "
            "images; this system's states have shape "
            f"{system.state_shape(names[0])}. Plot slices of `result.predict(...)` "
            "instead."
        )
    ((variable, xs),) = grid.items()
    xs = np.asarray(xs, float)
    rows = [
        (j, d, n, true)
        for (j, d), true in zip(runs, truths, strict=True)
        for n in names
    ]
    fig, axes = figure(len(rows), 3, width=3.8, height=3.2)
    for row, (j, d, name, true) in zip(axes, rows, strict=True):
        if d is None:
            raise ExportError("Images of a fit need its data; give `data=`.")
        solution = (
            result.predict(d.t, y0=y0)
            if j is None
            else result.predict(d.t, trajectory=j)
        )
        fitted = np.asarray(solution[name])
        observed = d.values.get(name)
        reference = None if true is None else lookup(true, name, "truth")
        compare, what = (
            (np.asarray(reference, float), "truth")
            if reference is not None
            else (observed, "data")
        )
        extent = (xs[0], xs[-1], d.t[0], d.t[-1])
        limits = [a for a in (observed, fitted) if a is not None]
        vmin = min(float(np.min(a)) for a in limits)
        vmax = max(float(np.max(a)) for a in limits)
        panels = [("data", observed), (f"fit ({name})", fitted)]
        for ax, (title, values) in zip(row[:2], panels, strict=True):
            if values is None:
                ax.set_axis_off()
                ax.set_title(f"{name} not observed", fontsize=9)
                continue
            image = ax.imshow(
                values,
                origin="lower",
                aspect="auto",
                extent=extent,
                vmin=vmin,
                vmax=vmax,
                cmap="viridis",
            )
            fig.colorbar(image, ax=ax, shrink=0.85)
            ax.set_title(title, fontsize=9)
        ax = row[2]
        if compare is None:
            ax.set_axis_off()
        else:
            difference = fitted - compare
            bound = float(np.max(np.abs(difference))) or 1.0
            image = ax.imshow(
                difference,
                origin="lower",
                aspect="auto",
                extent=extent,
                cmap="RdBu_r",
                vmin=-bound,
                vmax=bound,
            )
            fig.colorbar(image, ax=ax, shrink=0.85)
            ax.set_title(f"fit − {what}", fontsize=9)
        for ax in row:
            ax.set_xlabel(str(variable))
        row[0].set_ylabel(str(system.model.independent))
    return fig


def _pinn(result, data, ax):
    datasets = (
        list(result.data)
        if data is None
        else list(data if isinstance(data, list | tuple) else [data])
    )
    variables = [str(v) for v in result.model.variables]
    fields = {f.func.__name__ for f in result.model.fields}
    pairs = []
    for d in datasets:
        if hasattr(d, "targets"):  # as the fit laid it out: points (n, d)
            coordinates = {v: d.points[:, i] for i, v in enumerate(variables)}
            observed = dict(zip(d.keys, d.targets, strict=True))
        elif hasattr(d, "coordinates"):  # a `Data.points(...)` cloud
            coordinates, observed = d.coordinates, d.values
        else:
            raise ExportError(
                "`plot.fit` of a physics-informed fit draws its point observations "
                "(`symml.Data.points(...)`); for the fields over the domain use "
                "`symml.plot.field(result)`."
            )
        predicted = None
        for key, values in observed.items():
            name = key if isinstance(key, str) else _field_name(key)
            if name not in fields:
                continue  # an observed expression, not a field
            if predicted is None:
                predicted = result.predict(**coordinates)
            pairs.append((name, np.asarray(values), np.asarray(predicted[name])))
    if not pairs:
        raise ExportError(
            "This physics-informed fit has no observations of its fields to draw; "
            "use `symml.plot.field(result)` for the fields over the domain."
        )
    if ax is not None:
        ax = check_ax(ax, "the fit")
        fig = ax.figure
    else:
        fig, axes = figure(1, 1, width=4.2, height=4.0)
        ax = axes[0, 0]
    low = min(min(o.min(), p.min()) for _, o, p in pairs)
    high = max(max(o.max(), p.max()) for _, o, p in pairs)
    ax.plot([low, high], [low, high], color="0.6", lw=1, label="equal")
    for k, (name, observed, predicted) in enumerate(pairs):
        ax.plot(observed, predicted, "o", ms=3, color=f"C{k % 10}", label=name)
    ax.set_xlabel("observed")
    ax.set_ylabel("network")
    ax.legend(fontsize=7)
    return fig


def _field_name(key) -> str | None:
    try:
        return name_of(key)
    except ExportError:
        return None
