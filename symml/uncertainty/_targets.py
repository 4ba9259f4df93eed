"""What uncertainty is propagated through: a lowered system's trajectory, a
sympy expression, or a JAX function, each as a pure function of the vector of
uncertain inputs."""

import abc
from collections.abc import Callable, Mapping
from typing import Any

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jaxtyping import Array, Bool, Float

from .._diffrax import SolveOptions, diffeqsolve, raise_if_failed
from .._errors import UncertaintyError
from ..discretization import DiscretizedModel
from ..dsl import Model, Trainable, UnknownOutput, trainable
from ..lowering import AbstractSystem, CompiledRHS, Compiler, Env, Params
from ..lowering._solve import _times
from ._inputs import Inputs, parse_inputs


class Target(abc.ABC):
    """A pure function `θ -> (outputs, ok)` of the uncertain inputs: `ok` is
    False where the evaluation failed (a solve that did not finish)."""

    inputs: Inputs
    # The save times of a trajectory, or None for an expression.
    ts: np.ndarray | None = None
    system: AbstractSystem | None = None

    @abc.abstractmethod
    def __call__(self, theta: Float[Array, " k"]) -> tuple[Array, Bool[Array, ""]]:
        """The outputs at `θ`, and whether they are valid."""

    def check(self, theta) -> None:
        """Raise a symml error if the evaluation at `θ` fails (the mean is
        checked before anything is propagated)."""
        out, ok = self(jnp.asarray(theta))
        if not bool(ok):
            raise UncertaintyError(
                "The evaluation at the mean of the uncertain inputs is not finite; "
                "check the inputs' means and the expression's domain."
            )


def _name(key) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, sp.Symbol):
        return key.name
    func = getattr(key, "func", None)
    if func is not None and isinstance(key, sp.Basic) and hasattr(func, "__name__"):
        return func.__name__
    return str(key)


# -- lowered systems ------------------------------------------------------------

# How a system is lowered again from its model with some fixed parameters made
# trainable (fixed parameters are compiled in as constants, so derivatives with
# respect to them need a system in which they are inputs). Looked up along the
# system's class's MRO.
_RELOWER: dict[type, Callable[[Any, Model], AbstractSystem]] = {
    CompiledRHS: lambda system, model: CompiledRHS(model, system.scheme),
    DiscretizedModel: lambda system, model: DiscretizedModel(
        model,
        {v: len(c) for v, c in system.grid.items()},
        order=system.order,
    ),
}


def _with_trainable(system: AbstractSystem, names: list[str]) -> AbstractSystem:
    """`system` lowered again with the fixed parameters `names` trainable."""
    if not names:
        return system
    model = system.model
    chosen = set(names)
    parameters = {
        p: trainable(v) if str(p) in chosen else v for p, v in model.parameters.items()
    }
    relower = next((_RELOWER[c] for c in type(system).__mro__ if c in _RELOWER), None)
    if relower is None:
        raise UncertaintyError(
            f"The fixed parameter(s) {', '.join(f'`{n}`' for n in names)} are "
            f"compiled into this {type(system).__name__} as constants, and symml "
            "does not know how to lower it again with them as inputs. Declare them "
            "with `symml.trainable(value)` in the model, lower it, and pass the "
            "system's `params=`."
        )
    rebuilt = Model(
        model.equations,
        conditions=model.conditions,
        parameters=parameters,
        domain=model.domain or None,
        boundary=model.boundary,
    )
    return relower(system, rebuilt)


class SystemTarget(Target):
    """The trajectory of a lowered system, shape `(T, n)`, as a function of
    uncertain parameters and initial states."""

    def __init__(
        self,
        system: AbstractSystem,
        uncertain: Mapping,
        *,
        params: Params | None,
        y0,
        t_span,
        saveat,
        solver,
        rtol: float,
        atol: float,
        max_steps: int,
    ):
        model = system.model
        parameters = {str(p): p for p in model.parameters}
        states = system.state_names

        def resolve(key) -> str:
            name = _name(key)
            if name in parameters or name in states:
                return name
            raise UncertaintyError(
                f"`{key}` in `uncertain` is neither a parameter nor a state of the "
                f"model; its parameters are "
                f"{', '.join(f'`{p}`' for p in parameters) or 'none'} and its states "
                f"{', '.join(f'`{s}`' for s in states)}."
            )

        def shape_of(name: str):
            return () if name in parameters else tuple(system.state_shape(name))

        self.inputs = parse_inputs(uncertain, resolve, shape_of)
        if params is None and system.needs_params:
            raise UncertaintyError(
                "The model has unknown terms or trainable parameters, so `propagate` "
                "needs `params=` (e.g. a fit result's `params`)."
            )
        if isinstance(y0, Mapping) or y0 is None:
            # Uncertain states start at their means (so the model needs no
            # initial condition for them).
            given = {_name(k): v for k, v in (y0 or {}).items()}
            for name, shape, sl in zip(
                self.inputs.names,
                self.inputs.shapes,
                self.inputs.slices().values(),
                strict=True,
            ):
                if name in states:
                    given[name] = self.inputs.mean[sl].reshape(shape)
            base = system.initial_state(given)
        else:
            base = system.check_state(y0, "y0")
            if base.ndim != 1:
                raise UncertaintyError(
                    f"`y0` has shape {base.shape}; expected ({system.n},), one state."
                )
        dtype = base.dtype
        fixed = [
            n
            for n in self.inputs.names
            if n in parameters
            and not isinstance(model.parameters[parameters[n]], Trainable)
        ]
        self.original = system
        self.system = _with_trainable(system, fixed)
        values = dict(params.values) if params is not None else {}
        for n in fixed:
            values[n] = jnp.asarray(model.parameters[parameters[n]], dtype)
        self.params = Params(values, params.networks if params is not None else {})
        t0, t1, ts = _times(system, t_span, saveat, dtype)
        self.t0, self.t1 = t0, t1
        self.ts = np.array([t1]) if ts is None else ts
        self._ts = None if ts is None else jnp.asarray(ts, dtype)
        self.base = base
        self.dtype = dtype
        # Forward mode through the solve: one JVP per direction of the inputs.
        self.options = SolveOptions.make(
            solver=system._default_solver if solver is None else solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            adjoint=dfx.ForwardMode(),
            error=UncertaintyError,
        )
        self._where = {}
        for name, sl in self.inputs.slices().items():
            if name in parameters:
                self._where[name] = ("parameter", sl, None)
            else:
                self._where[name] = ("state", sl, system.state_indices(name))
        self.out_shape = (len(self.ts), system.n)

    def _solve(self, theta):
        values = dict(self.params.values)
        y0 = self.base
        for name, (kind, sl, index) in self._where.items():
            if kind == "parameter":
                values[name] = theta[sl][0].astype(self.dtype)
            else:
                y0 = y0.at[index].set(theta[sl].astype(self.dtype))
        params = Params(values, self.params.networks)
        return diffeqsolve(
            self.system,
            self.options,
            y0,
            params,
            ts=self._ts,
            t0=self.t0,
            t1=self.t1,
        )

    def __call__(self, theta):
        solution = self._solve(theta)
        ok = (solution.result == dfx.RESULTS.successful) & jnp.all(
            jnp.isfinite(solution.ys)
        )
        return solution.ys, ok

    def check(self, theta) -> None:
        solution = jax.jit(self._solve)(jnp.asarray(theta, self.dtype))
        raise_if_failed(
            solution,
            names=self.system.state_names,
            slices={n: self.system.state_slice(n) for n in self.system.state_names},
            options=self.options,
            error=UncertaintyError,
            what="The solve at the mean of the uncertain inputs",
        )


# -- expressions and functions ---------------------------------------------------


def _fixed_values(values, what: str) -> dict[str, Array]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise UncertaintyError(
            f"`values` must be a dict `{{symbol: value}}` of the {what}'s certain "
            f"inputs; got {type(values).__name__}."
        )
    out = {}
    for key, value in values.items():
        try:
            out[_name(key)] = jnp.asarray(value, dtype=jnp.zeros(()).dtype)
        except TypeError:
            raise UncertaintyError(
                f"`values[{key}]` must be a number or an array; got {value!r}."
            ) from None
    return out


class _InputsTarget(Target):
    """Shared by expressions and functions: θ split into named inputs."""

    def _named(self, theta) -> dict[str, Array]:
        out = dict(self.fixed)
        for name, shape, sl in zip(
            self.inputs.names,
            self.inputs.shapes,
            self.inputs.slices().values(),
            strict=True,
        ):
            out[name] = theta[sl].reshape(shape)
        return out

    def _finish(self, value):
        value = jnp.asarray(value)
        if not jnp.issubdtype(value.dtype, jnp.floating):
            value = value.astype(jnp.zeros(()).dtype)
        return value, jnp.all(jnp.isfinite(value))

    def _shape(self):
        out = jax.eval_shape(self, jnp.asarray(self.inputs.mean))
        self.out_shape = tuple(out[0].shape)


class ExpressionTarget(_InputsTarget):
    """A sympy expression of uncertain and certain symbols, compiled by
    symml's lowering rules."""

    def __init__(self, expr: sp.Expr, uncertain: Mapping, values):
        if expr.atoms(UnknownOutput):
            raise UncertaintyError(
                f"`{expr}` contains network terms; propagate through the lowered "
                "system (`symml.lower`) with `params=`, or pass a function of the "
                "inputs that calls the networks."
            )
        symbols = {s.name: s for s in expr.free_symbols if isinstance(s, sp.Symbol)}

        def resolve(key) -> str:
            name = _name(key)
            if name not in symbols:
                raise UncertaintyError(
                    f"`{key}` in `uncertain` is not a symbol of `{expr}`; its symbols "
                    f"are {', '.join(f'`{s}`' for s in sorted(symbols)) or 'none'}."
                )
            return name

        self.inputs = parse_inputs(uncertain, resolve, lambda name: None)
        self.fixed = _fixed_values(values, "expression")
        missing = sorted(set(symbols) - set(self.inputs.names) - set(self.fixed))
        if missing:
            raise UncertaintyError(
                f"The symbol(s) {', '.join(f'`{m}`' for m in missing)} of `{expr}` "
                "have no value: give them an uncertainty in `uncertain` or a value "
                "in `values=`."
            )
        self._symbols = symbols
        compiler = Compiler(bound=list(symbols.values()))
        self._evaluate = compiler(sp.sympify(expr).doit(deep=True))
        self._requests = compiler.requests
        self._shape()

    def __call__(self, theta):
        named = self._named(theta)
        env = Env({s: named[n] for n, s in self._symbols.items()}, {}, self._requests)
        return self._finish(self._evaluate(env))


class FunctionTarget(_InputsTarget):
    """A pure JAX function of the inputs by name, `f(**inputs) -> array`."""

    def __init__(self, fn: Callable, uncertain: Mapping, values):
        self.inputs = parse_inputs(uncertain, _name, lambda name: None)
        self.fixed = _fixed_values(values, "function")
        self._fn = fn
        try:
            self._shape()
        except TypeError as e:
            raise UncertaintyError(
                f"Calling the function with the inputs "
                f"{', '.join(f'`{n}`' for n in (*self.inputs.names, *self.fixed))} "
                f"by keyword failed: {e}. It must take each uncertain input and "
                "each entry of `values=` as a keyword argument and return an array."
            ) from None

    def __call__(self, theta):
        return self._finish(self._fn(**self._named(theta)))
