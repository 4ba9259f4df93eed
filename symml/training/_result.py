"""Fit results: the trained model and the means to use it."""

import abc
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from .. import _display
from .._diffrax import SolveOptions, check_times, diffeqsolve, raise_if_failed
from .._errors import FitError, SymmlError
from ..dsl import Model
from ..lowering import AbstractSystem, Params, Solution


@dataclass(frozen=True, eq=False)
class FitResult(abc.ABC):
    """What every fit returns.

    **Attributes:**

    - `model`: the fitted [`Model`][symml.Model].
    - `params`: the trained [`Params`][symml.Params] (network weights and
      trainable parameter values).
    - `history`: `{phase: losses per step}`, e.g. `{"adam": ..., "lbfgs": ...}`;
      the last entry of the last phase is the loss at `params`.
    - `wall_time`: seconds spent fitting.
    - `method`: the fit method and its options (e.g.
      [`SolveInLoop`][symml.SolveInLoop]).
    - `seed`: the seed of the fit.
    """

    model: Model
    params: Params
    history: dict[str, np.ndarray]
    wall_time: float
    method: Any
    seed: int

    @property
    def final_loss(self) -> float:
        """The loss at `params`."""
        last = [h for h in self.history.values() if len(h)]
        return float(last[-1][-1]) if last else float("nan")

    def parameter_values(self) -> dict[sp.Symbol, float]:
        """`{symbol: trained value}` of the model's trainable parameters."""
        return {
            p: float(self.params.values[str(p)])
            for p in self.model.trainable_parameters
        }

    @abc.abstractmethod
    def unknown_samples(self, n: int = 200) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """`{unknown name: (inputs (N, k), outputs (N, m))}`: each unknown term
        where the fit saw it, the data for [`discover`][symml.discover]."""

    def _with_time(self, wall_time: float) -> "FitResult":
        object.__setattr__(self, "wall_time", wall_time)
        return self

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # `@dataclass` gives each result a repr of every field (weights, loss
        # histories, data) unless the class has its own; a result reads as its
        # summary unless a subclass writes another.
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = FitResult.__repr__

    def _steps(self) -> dict[str, int]:
        """`{phase: optimisation steps}`; the last loss of a fit evaluates its
        final parameters and is not a step."""
        steps = {k: len(h) for k, h in self.history.items() if len(h)}
        if steps:
            steps[list(steps)[-1]] -= 1
        return steps

    def _learned(self) -> dict[sp.Symbol, float]:
        try:
            return self.parameter_values()
        except (AttributeError, KeyError, TypeError, ValueError):
            # A display must not fail on a partial result (a failed fit's).
            return {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, final_loss="
            f"{self.final_loss:.4g}, steps={self._steps()}, "
            f"wall_time={self.wall_time:.3g}, seed={self.seed})"
        )

    def __str__(self) -> str:
        steps = ", ".join(f"{k}: {n} steps" for k, n in self._steps().items())
        lines = [
            f"{type(self).__name__}: {type(self.model).__name__} fitted by "
            f"{type(self.method).__name__} (seed {self.seed}) in "
            f"{self.wall_time:.3g} s",
            f"  final loss {self.final_loss:.4g} ({steps or 'no steps'})",
        ]
        lines += _display.model_text(self.model, self._learned())
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        return _display.math_block(_display.model_lines(self.model, self._learned()))

    def _repr_html_(self) -> str:
        # Jupyter shows the HTML in preference to the LaTeX: the fitted model,
        # how the fit went, and the learned parameters beside their initial
        # values.
        summary = _display.html_table(
            ["method", "seed", "steps", "final loss", "wall time"],
            [
                [
                    _display.escape(type(self.method).__name__),
                    str(self.seed),
                    _display.escape(
                        ", ".join(f"{k}: {n}" for k, n in self._steps().items())
                    ),
                    f"{self.final_loss:.4g}",
                    f"{self.wall_time:.3g} s",
                ]
            ],
            caption="Fit",
        )
        learned = self._learned()
        parameters = ""
        if learned:
            initial = self.model.trainable_parameters
            parameters = _display.html_table(
                ["parameter", "initial", "learned"],
                [
                    [
                        _display.inline_math(_display.latex(p)),
                        _display.text(sp.Float(initial[p])),
                        _display.text(sp.Float(v)),
                    ]
                    for p, v in learned.items()
                ],
                caption="Trainable parameters",
            )
        return f"<div>{_display.escape(self._repr_latex_())}{summary}{parameters}</div>"


@dataclass(frozen=True, eq=False)
class UDEResult(FitResult):
    """A fitted ODE system (a UDE, or a discretised PDE): see
    [`FitResult`][symml.FitResult] for the common attributes.

    **Attributes:**

    - `system`: the fitted [`AbstractSystem`][symml.AbstractSystem]
      (`f(t, u, params)`).
    - `initial_states`: the initial state of each trajectory at its first
      observation time, trained entries included, shape `(n,)` each.
    - `data`: the [`Data`][symml.Data] fitted, one per trajectory.
    """

    system: AbstractSystem = None
    initial_states: tuple = ()
    data: tuple = ()
    options: SolveOptions = field(default=None, repr=False)

    def predict(self, t, *, y0=None, trajectory: int = 0, t0=None) -> Solution:
        """Simulate the fitted model, saved at times `t`.

        By default the simulation starts from trajectory `trajectory`'s fitted
        initial state at its first observation time, so `t` must not start
        before it; with `y0` (a flat state, or `{state: value}`) it starts from
        `y0` at `t0` (default `t[0]`).

        **Returns:** a [`Solution`][symml.Solution]: `solution.ys` has shape
        `(T, n)` in the order of `system.state_names`, `solution[x]` one state,
        `solution.nfe` the evaluations of the right-hand side the solve made.
        """
        system = self.system
        dtype = self.initial_states[0].dtype
        try:
            ts = np.asarray(t, dtype=float)
        except (TypeError, ValueError):
            raise FitError(
                f"`t` must be a 1-D array of times; got {t!r}, which is not numeric."
            ) from None
        if ts.ndim != 1 or ts.size < 1 or not np.all(np.isfinite(ts)):
            raise FitError(
                f"`t` must be a 1-D array of finite times; got shape {ts.shape}."
            )
        if ts.size > 1 and np.any(np.diff(ts) <= 0):
            raise FitError("`t` must be strictly increasing.")
        if y0 is None:
            if (
                isinstance(trajectory, bool)
                or not isinstance(trajectory, int | np.integer)
                or not 0 <= trajectory < len(self.initial_states)
            ):
                raise FitError(
                    f"`trajectory={trajectory!r}` is out of range; the fit has "
                    f"{len(self.initial_states)} trajectory(ies), numbered from 0."
                )
            if t0 is not None:
                raise FitError(
                    "`t0` goes with `y0`: a trajectory's fitted initial state is at "
                    "its first observation time."
                )
            start = float(self.data[trajectory].t[0])
            state = self.initial_states[trajectory]
            if ts[0] < start:
                raise FitError(
                    f"`t` starts at {ts[0]:g}, before trajectory {trajectory}'s "
                    f"first observation at t = {start:g}, where its fitted initial "
                    "state is; predict from there on, or pass `y0=` and `t0=`."
                )
        else:
            try:
                if isinstance(y0, dict):
                    state = system.initial_state(y0, dtype=dtype)
                else:
                    state = system.check_state(y0, "y0")
            except SymmlError as e:  # the system's own class; here it is `predict`'s
                raise FitError(str(e)) from None
            if state.ndim != 1:
                raise FitError(f"`y0` has shape {state.shape}; expected ({system.n},).")
            try:
                start = float(ts[0] if t0 is None else t0)
            except (TypeError, ValueError):
                raise FitError(f"`t0` must be a time (a number); got {t0!r}.") from None
            if ts[0] < start:
                raise FitError(f"`t` starts at {ts[0]:g}, before `t0={start:g}`.")
            if not bool(jnp.all(jnp.isfinite(state))):
                raise FitError("`y0` is not finite (NaN or inf).")
        check_times(np.concatenate([[start], ts]), dtype, FitError, "`t`")
        solution = _predict(
            system,
            self.options,
            self.params,
            jnp.asarray(state, dtype),
            jnp.asarray(ts, dtype),
            jnp.asarray(start, dtype),
        )
        raise_if_failed(
            solution,
            names=system.state_names,
            slices={n: system.state_slice(n) for n in system.state_names},
            options=self.options,
            error=FitError,
            what="The prediction",
        )
        return Solution(system, solution)

    @property
    def nfe(self) -> int | None:
        """The number of evaluations of the right-hand side that solving the
        fitted model takes: the sum over the fitted trajectories of the
        solve from each one's fitted initial state over its observation times,
        with the fit's solver and tolerances (`None` for an implicit solver,
        whose Newton iterations are not counted). A learned vector field that
        is easy to solve has a small `nfe`; see
        [`SolverHeuristics`][symml.SolverHeuristics]."""
        counts = [self.predict(d.t, trajectory=j).nfe for j, d in enumerate(self.data)]
        return None if any(c is None for c in counts) else sum(counts)

    def unknown_samples(self, n: int = 200) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The unknown terms along the fitted trajectories: `{name: (X, Y)}` with
        the network inputs `X` (shape `(n_samples, n_inputs)`) and outputs `Y`
        at `n` evenly spaced times per trajectory over the data's time span
        (at every grid point, for a discretised PDE)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
            raise FitError(f"`n` must be an integer >= 2; got {n!r}.")
        samples: dict[str, list] = {u.name: ([], []) for u in self.model.unknowns}
        evaluate = jax.jit(jax.vmap(self.system.unknown_values, in_axes=(0, 0, None)))
        for j, d in enumerate(self.data):
            ts = np.linspace(d.t[0], d.t[-1], n)
            ys = self.predict(ts, trajectory=j).ys
            values = evaluate(jnp.asarray(ts, ys.dtype), ys, self.params)
            for name, (x, y) in values.items():
                samples[name][0].append(np.asarray(x).reshape(-1, x.shape[-1]))
                samples[name][1].append(np.asarray(y).reshape(-1, y.shape[-1]))
        return {
            name: (np.concatenate(xs), np.concatenate(ys))
            for name, (xs, ys) in samples.items()
        }


@eqx.filter_jit
def _predict(system, options, params, y0, ts, t0):
    return diffeqsolve(system, options, y0, params, ts=ts, t0=t0, count=True)
