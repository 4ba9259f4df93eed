"""`SteadyFit`: fitting unknown terms and trainable parameters to steady states.

Each experiment's steady state is a root solve inside the loss; its gradient
comes from the implicit function theorem (see
[`steady_state`][symml.steady_state]), so the cost of a step does not grow with
the number of Newton iterations. The experiments' known inputs are parameters
of the model, set per experiment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from .._errors import DataError, FitError
from ..discretization import DiscretizedModel, discretize
from ..dsl import Model, ODEModel, trainable
from ..lowering import AbstractSystem, CompiledRHS, Params
from ..training import FitResult, register_fit_method
from ..training._checkpoint import fingerprint
from ..training._loop import Problem
from ..training._method import (
    AbstractFitMethod,
    positive_number,
    set_field,
)
from ..training._ude import system_of
from ._data import SteadyData
from ._guess import SkipGuess
from ._solve import steady_state
from ._solvers import AbstractSteadySolver, Newton

__all__ = ["SteadyFit", "SteadyFitResult"]


def _with_inputs(system: AbstractSystem, names: tuple[str, ...]) -> AbstractSystem:
    """`system` rebuilt with the experiments' input parameters trainable, so
    that they are read from `params.values` and can change per experiment
    without recompiling (fixed parameters are compiled in as constants)."""
    model = system.model
    by_name = {str(p): p for p in model.parameters}
    for name in names:
        if name not in by_name:
            known = ", ".join(f"`{p}`" for p in by_name) or "none"
            raise DataError(
                f"The input `{name}` is not a parameter of the model (its parameters:"
                f" {known}); declare it in `parameters=` with any number, e.g. "
                f"`{{{name}: 0.0}}`, and use it in the equations or conditions."
            )
        if by_name[name] in model.trainable_parameters:
            raise DataError(
                f"The input `{name}` is a trainable parameter of the model, but an "
                "experiment's inputs are known: declare it with a number, not "
                "`symml.trainable(...)`."
            )
    if not names:
        return system
    parameters = dict(model.parameters)
    for name in names:
        parameters[by_name[name]] = trainable(model.parameters[by_name[name]])
    rebuilt = Model(
        list(model.equations),
        conditions=list(model.conditions),
        parameters=parameters,
        domain=model.domain or None,
        boundary=model.boundary,
    )
    # Each kind of system is rebuilt by its own constructor: the lowering stage
    # compiles fixed parameters in as constants and has no way yet to read
    # them from `params` at run time.
    if isinstance(system, DiscretizedModel):
        sizes = {v: len(c) for v, c in system.grid.items()}
        return discretize(rebuilt, sizes, order=system.order)
    if isinstance(system, CompiledRHS):
        return CompiledRHS(rebuilt, system.scheme)
    raise FitError(
        f"Experiments with inputs need a lowered ODE or a `DiscretizedModel`; got "
        f"{type(system).__name__}."
    )


def _observed(system: AbstractSystem, data: SteadyData):
    """Flat indices of the observed entries, and the observations `(K, p)` in
    that order."""
    index, rows = [], []
    for name, v in data.values.items():
        if name not in system.state_names:
            raise DataError(
                f"The data observe `{name}`, which is not a state of the model; its "
                f"states are {', '.join(system.state_names)}."
            )
        shape = tuple(system.state_shape(name))
        if v.shape[1:] != shape:
            where = "the discretisation grid" if shape else "a scalar state"
            raise DataError(
                f"Each observation of `{name}` has shape {v.shape[1:]}; the model's "
                f"`{name}` has shape {shape} ({where}). Observe each experiment's "
                "steady state on the grid of the discretised model."
            )
        index.append(system.state_indices(name))
        rows.append(v.reshape(v.shape[0], -1))
    return np.concatenate(index), np.concatenate(rows, axis=1), rows


def _set_inputs(params: Params, names: tuple[str, ...], values: Array) -> Params:
    merged = dict(params.values)
    merged.update({n: values[i] for i, n in enumerate(names)})
    return Params(merged, params.networks)


class _Trainable(eqx.Module):
    params: Params
    guess: SkipGuess | None


class _Static(eqx.Module):
    inputs: Float[Array, "K m"]
    ys: Float[Array, "K p"]
    guesses: Float[Array, "K n"]
    scale: Float[Array, " p"]
    state_scale: Float[Array, " n"]


@dataclass(frozen=True)
class _Setup:
    """What the loss closes over (static under `jit`)."""

    system: AbstractSystem  # with the inputs as parameters read from `params`
    names: tuple[str, ...]
    index: np.ndarray
    solver: AbstractSteadySolver
    t: float
    skip_weight: float

    def solve(self, params: Params, skip, inputs, guesses, *, throw: bool = False):
        """The steady states `(K, n)`, whether each converged, and iterations."""

        def one(values, g0):
            u0 = g0 if skip is None else skip(values)
            sol = steady_state(
                self.system,
                u0,
                _set_inputs(params, self.names, values),
                solver=self.solver,
                t=self.t,
                throw=throw,
            )
            return sol.u, sol.converged, sol.num_steps

        return jax.vmap(one)(inputs, guesses)

    def loss(self, x: _Trainable, static: _Static):
        us, ok, _ = self.solve(x.params, x.guess, static.inputs, static.guesses)
        # A failed solve's state may be NaN: keep it out of the arithmetic so
        # that its (masked) gradient is zero, not NaN.
        us = jnp.where(ok[:, None], us, jax.lax.stop_gradient(static.guesses))
        misfit = jnp.mean(((us[:, self.index] - static.ys) / static.scale) ** 2)
        terms = {"data": misfit}
        total = misfit
        if x.guess is not None:
            # The guess learns to predict the root; the root does not depend
            # on the guess, so this term does not pull on the model.
            predicted = jax.vmap(x.guess)(static.inputs)
            skip = jnp.mean(
                ((predicted - jax.lax.stop_gradient(us)) / static.state_scale) ** 2
            )
            terms["skip_guess"] = skip
            total = total + self.skip_weight * skip
        # A failed solve makes the loss infinite: a line search backs off, and
        # Adam stops with a `FitError` naming this term.
        converged = jnp.all(ok)
        terms["steady_state_solves"] = jnp.where(converged, 0.0, jnp.nan)
        return jnp.where(converged, total, jnp.inf), terms


@dataclass(frozen=True, eq=False)
class SteadyFitResult(FitResult):
    """A model fitted to steady states: see [`FitResult`][symml.FitResult] for
    the common attributes.

    **Attributes:**

    - `system`: the fitted [`AbstractSystem`][symml.AbstractSystem].
    - `guess`: the trained [`SkipGuess`][symml.SkipGuess], or `None`.
    - `data`: the [`SteadyData`][symml.SteadyData].
    """

    system: AbstractSystem = None
    guess: SkipGuess | None = None
    data: SteadyData = None
    _setup: _Setup = field(default=None, repr=False)
    _guesses: Array = field(default=None, repr=False)

    def _inputs(self, inputs: Mapping | None) -> Array:
        names = self._setup.names
        dtype = self._guesses.dtype
        if inputs is None:
            return jnp.asarray(self.data.input_array(), dtype)
        given = {
            str(getattr(k, "name", k)): np.atleast_1d(np.asarray(v, float))
            for k, v in inputs.items()
        }
        if set(given) != set(names):
            raise DataError(
                f"`inputs` must give every input of the experiments "
                f"({', '.join(names) or 'none'}); got {', '.join(given) or 'none'}."
            )
        columns = [given[n] for n in names]
        if not names or columns[0].ndim != 1 or len({c.shape for c in columns}) > 1:
            raise DataError(
                "Every entry of `inputs` must be a 1-D array with one value per "
                "experiment, all of the same length."
            )
        return jnp.asarray(np.stack(columns, axis=1), dtype)

    def predict(self, inputs: Mapping | None = None, *, guess=None) -> np.ndarray:
        """The steady states of the fitted model, shape `(K, n)` (flat states:
        `system.unflatten` splits them).

        **Arguments:**

        - `inputs`: `{input: values (K,)}` of new experiments; `None` for the
          data's.
        - `guess`: the initial guess, `(n,)` or `(K, n)`. By default the
          trained skip guess if there is one, else the guesses of the fit (for
          the data's experiments) or their mean (for new ones).

        **Raises:** [`SteadyStateError`][symml.SteadyStateError] if a solve
        fails.
        """
        x = self._inputs(inputs)
        skip = self.guess if guess is None else None
        if guess is None:
            guess = self._guesses if inputs is None else jnp.mean(self._guesses, 0)
        guesses = jnp.broadcast_to(
            jnp.asarray(guess, x.dtype), (x.shape[0], self._guesses.shape[1])
        )
        us, _, _ = self._setup.solve(self.params, skip, x, guesses, throw=True)
        return np.asarray(us)

    def unknown_samples(self, n: int = 200) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """`{name: (X, Y)}`: each unknown term's inputs and outputs at the
        fitted steady state of every experiment (at every grid point of a
        discretised PDE); `n` is not used (the steady states fix the points)."""
        del n
        setup = self._setup
        x = self._inputs(None)
        us = jnp.asarray(self.predict())

        def one(values, u):
            return setup.system.unknown_values(
                setup.t, u, _set_inputs(self.params, setup.names, values)
            )

        values = jax.vmap(one)(x, us)
        return {
            name: (
                np.asarray(a).reshape(-1, a.shape[-1]),
                np.asarray(b).reshape(-1, b.shape[-1]),
            )
            for name, (a, b) in values.items()
        }


def _initial_guesses(
    guess: Any, full: np.ndarray | None, inputs: np.ndarray, n: int, method, key, dtype
) -> tuple[SkipGuess | None, Array]:
    """`(skip guess or None, fixed guesses (K, n))` for the `guess=` option;
    `full` holds the observed steady states when every state is observed."""
    k, m = inputs.shape
    if isinstance(guess, str) and guess == "auto":
        guess = "data" if full is not None else "skip"
    base = np.zeros((k, n)) if full is None else full
    if isinstance(guess, str):
        if guess == "data" and full is not None:
            return None, jnp.asarray(full, dtype)
        if guess == "skip" and m:
            skip = SkipGuess(
                m,
                n,
                hidden=tuple(method.skip_hidden),
                key=key,
                in_range=(inputs.min(0), inputs.max(0)),
                offset=base.mean(0),
                dtype=dtype,
            )
            return skip, jnp.asarray(base, dtype)
        if guess == "data":
            raise FitError(
                "`guess='data'` of `SteadyFit` needs every state observed on the "
                f"whole grid; pass `guess='skip'` or an array of shape ({n},) or "
                f"({k}, {n})."
            )
        raise FitError(
            "`guess='skip'` of `SteadyFit` predicts each experiment's root from its "
            f"inputs, but the data have no `inputs`; pass an array of shape ({n},) "
            f"or ({k}, {n})."
        )
    if isinstance(guess, SkipGuess):
        if guess.n_inputs != m or guess.n != n:
            raise FitError(
                f"The `SkipGuess` of `SteadyFit` maps {guess.n_inputs} inputs to "
                f"{guess.n} unknowns; this fit has {m} inputs and {n} unknowns."
            )
        return guess, jnp.asarray(base, dtype)
    array = np.asarray(guess, dtype=float)
    if array.shape not in ((n,), (k, n)):
        raise FitError(
            f"`guess` of `SteadyFit` has shape {array.shape}; this fit needs ({n},) "
            f"or ({k}, {n})."
        )
    return None, jnp.asarray(np.broadcast_to(array, (k, n)), dtype)


@dataclass(frozen=True)
class SteadyFit(AbstractFitMethod):
    """Fit a model's unknown terms and trainable parameters to steady states
    observed in several experiments ([`SteadyData`][symml.SteadyData]): the
    default of [`fit`][symml.fit] for such data.

    Each loss evaluation solves every experiment's steady state (vmapped over
    the experiments) and differentiates it by the implicit function theorem.
    The loss is the mean squared misfit of the observed entries, each divided
    by the variance of its state's observations; a skip guess adds the mean
    squared error of its prediction of the roots.

    **Arguments:**

    - `solver`: the root finder (default [`Newton`][symml.Newton]).
    - `guess`: each experiment's initial guess: `"data"` (the observed steady
      state; needs every state observed), `"skip"` (a
      [`SkipGuess`][symml.SkipGuess] of the inputs, trained jointly), a
      `SkipGuess`, or an array `(n,)` / `(K, n)`. `"auto"` (the default):
      `"data"` when every state is observed, else `"skip"`.
    - `skip_hidden`, `skip_weight`: the skip guess's hidden layers and the
      weight of its term in the loss.
    - `t`: the time at which a time-dependent right-hand side is frozen.
    - `derivatives`: the scheme of derivatives of networks (as in
      [`lower`][symml.lower]) when an ODE model is lowered here.
    """

    name: ClassVar[str] = "SteadyFit"
    default_steps: ClassVar[int] = 300
    default_learning_rate: ClassVar[float] = 1e-2
    default_lbfgs_steps: ClassVar[int] = 300

    solver: AbstractSteadySolver | None = None
    guess: Any = "auto"
    skip_hidden: tuple = (32,)
    skip_weight: float = 1.0
    t: float = 0.0
    derivatives: Any = None

    def __post_init__(self):
        owner = "SteadyFit"
        if self.solver is None:
            set_field(self, "solver", Newton())
        elif not isinstance(self.solver, AbstractSteadySolver):
            raise FitError(
                f"`solver` of `SteadyFit` must be `symml.Newton(...)`, "
                f"`symml.LevenbergMarquardt(...)` or `symml.IntegrateToSteady(...)`; "
                f"got {type(self.solver).__name__}."
            )
        if isinstance(self.guess, str) and self.guess not in ("auto", "data", "skip"):
            raise FitError(
                f"`guess={self.guess!r}` of `SteadyFit` is not known; use 'auto', "
                "'data', 'skip', a `symml.SkipGuess` or an array."
            )
        hidden = self.skip_hidden
        if not isinstance(hidden, tuple | list) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            raise FitError(
                f"`skip_hidden` of `SteadyFit` must be a tuple of positive layer "
                f"sizes; got {hidden!r}."
            )
        set_field(self, "skip_hidden", tuple(hidden))
        set_field(
            self, "skip_weight", positive_number(self.skip_weight, "skip_weight", owner)
        )
        try:
            set_field(self, "t", float(self.t))
        except (TypeError, ValueError):
            raise FitError(
                f"`t` of `SteadyFit` must be a number; got {self.t!r}."
            ) from None

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        system = system_of(
            target, self.derivatives, "SteadyFit", "discretise a PDE model first"
        )
        if not isinstance(data, SteadyData):
            raise FitError(
                f"`SteadyFit` needs `data=symml.SteadyData(...)`; got "
                f"{type(data).__name__}."
            )
        names = data.input_names
        inner = _with_inputs(system, names)
        index, ys, rows = _observed(system, data)
        n, k = system.n, data.n_experiments
        full = None
        if len(index) == n:
            full = np.zeros((k, n))
            full[:, index] = ys
        key_params, key_guess = jr.split(jr.PRNGKey(seed))
        inputs = data.input_array()
        skip, guesses = _initial_guesses(
            self.guess, full, inputs, n, self, key_guess, dtype
        )
        if init is not None:
            params = init.params
            if getattr(init, "guess", None) is not None and skip is not None:
                skip = init.guess
        else:
            # Unknown terms start small, so the first solves follow the known
            # physics.
            initial = inner.init_params(key=key_params, dtype=dtype, final_scale=0.1)
            params = Params(
                {n_: v for n_, v in initial.values.items() if n_ not in names},
                initial.networks,
            )
        # Each observed entry is scaled by the spread of its state's
        # observations, so states of different magnitudes weigh the same.
        scale = np.concatenate(
            [np.full(r.shape[1], max(float(np.std(r)), 1e-12)) for r in rows]
        )
        state_scale = np.full(n, float(np.mean(scale)))
        state_scale[index] = scale
        static = _Static(
            jnp.asarray(inputs, dtype),
            jnp.asarray(ys, dtype),
            guesses,
            jnp.asarray(scale, dtype),
            jnp.asarray(state_scale, dtype),
        )
        setup = _Setup(inner, names, index, self.solver, self.t, self.skip_weight)

        def result(x: _Trainable, history, static) -> SteadyFitResult:
            return SteadyFitResult(
                model=system.model,
                params=x.params,
                history=history,
                wall_time=0.0,
                method=self,
                seed=seed,
                system=system,
                guess=x.guess,
                data=data,
                _setup=setup,
                _guesses=guesses,
            )

        return Problem(
            loss=setup.loss,
            trainable=_Trainable(params, skip),
            static=static,
            result=result,
            fingerprint=fingerprint(
                "SteadyFit",
                system.model,
                self,
                seed,
                np.dtype(dtype).name,
                inputs,
                ys,
            ),
        )


register_fit_method(ODEModel, SteadyData, SteadyFit, name="steady")
register_fit_method(AbstractSystem, SteadyData, SteadyFit)
