"""`lower`: an ODE model → a pure JAX right-hand side and its parameters."""

from typing import Any

import jax.numpy as jnp
import scipy.sparse as ssp
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .._errors import LoweringError
from ..dsl import Model, ODEModel
from ._compile import Env, compile_exprs, state_compiler
from ._params import Params, check_dtype, check_key
from ._system import AbstractSystem


def _scalar(value, dtype) -> Array:
    return jnp.broadcast_to(jnp.asarray(value, dtype), ())


class CompiledRHS(AbstractSystem):
    """The right-hand side `f(t, u, params) -> du/dt` of a first-order ODE
    system: an [`AbstractSystem`][symml.AbstractSystem] whose states are
    scalars.

    Pure: safe under `jit`, `vmap` and `grad` (with respect to `t`, `u` and
    `params`, network weights included). Its signature is diffrax's vector
    field signature, so `diffrax.ODETerm(f)` works as it is.

    **Attributes:** `model`, `state_names` (the order of `u`), `scheme` (the
    derivative scheme of network derivatives).
    """

    def __init__(self, model: ODEModel, scheme=None, rules=None):
        if not isinstance(model, ODEModel):
            raise LoweringError(
                f"`lower` compiles ODE models; this is {model._kind}: "
                + (
                    "discretise it with `symml.discretize(model, grid)` first."
                    if model.states
                    else "fit it with `symml.fit`, which builds its residual."
                )
            )
        self._model = model
        self.scheme = scheme
        self._time, self._states, self._trainable, compiler = state_compiler(
            model, scheme, rules
        )
        subs = dict(zip(model.state_vector, self._states, strict=True))
        self._expressions = [e.xreplace(subs) for e in model.rhs]
        self._rhs = compile_exprs(self._expressions, compiler)
        self._requests = compiler.requests
        self._inputs = {
            u.name: compile_exprs([i.xreplace(subs) for i in u.inputs], compiler)
            for u in model.unknowns
        }
        fixed = model.fixed_parameters
        self._initial = {
            name: float(sp.sympify(v).xreplace(fixed))
            for name, v in model.initial_values.items()
        }

    @property
    def model(self) -> ODEModel:
        return self._model

    @property
    def state_names(self) -> tuple[str, ...]:
        return self._model.state_names

    def state_shape(self, name: str) -> tuple[int, ...]:
        self._name(name)
        return ()

    def _env(self, t, u, params: Params | None) -> Env:
        if params is None and self.needs_params:
            raise LoweringError(
                "The model has unknown terms or trainable parameters, so its "
                "right-hand side needs `params` (from `symml.lower` or "
                "`symml.init_params(model, key=...)`)."
            )
        self.check_params(params)
        values = {self._time: t}
        values.update({s: u[i] for i, s in enumerate(self._states)})
        if params is not None:
            values.update({p: params.values[str(p)] for p in self._trainable})
        networks = params.networks if params is not None else {}
        return Env(values, networks, self._requests)

    def __call__(
        self, t: Scalar, u: Float[Array, " n"], params: Params | None = None
    ) -> Float[Array, " n"]:
        u = self.check_state(u)
        if u.ndim != 1:
            raise LoweringError(
                f"`u` has shape {u.shape}; the right-hand side takes one state of "
                f"shape ({self.n},) (use `jax.vmap` for a batch)."
            )
        env = self._env(t, u, params)
        return jnp.stack([_scalar(r(env), u.dtype) for r in self._rhs])

    def jacobian_sparsity(self) -> ssp.csr_matrix:
        """The `(n, n)` boolean pattern of `d f / d u`, exact from the symbolic
        structure: entry `(i, j)` is set when the right-hand side of state `i`
        involves state `j` (network terms depend on their declared inputs)."""
        n = len(self._states)
        rows, cols = [], []
        for i, expr in enumerate(self._expressions):
            free = expr.free_symbols
            for j, s in enumerate(self._states):
                if s in free:
                    rows.append(i)
                    cols.append(j)
        data = [True] * len(rows)
        return ssp.csr_matrix((data, (rows, cols)), shape=(n, n), dtype=bool)

    def unknown_values(
        self, t: Scalar, u: Float[Array, " n"], params: Params
    ) -> dict[str, tuple[Float[Array, "1 k"], Float[Array, "1 m"]]]:
        u = self.check_state(u)
        env = self._env(t, u, params)
        out = {}
        for name, inputs in self._inputs.items():
            x = jnp.stack([_scalar(i(env), u.dtype) for i in inputs])
            out[name] = (x[None], params.networks[name](x)[None])
        return out

    def _initial_value(self, name: str, value: Any, dtype) -> Array:
        number = None
        if not isinstance(value, str):  # sympy would parse a string
            try:
                number = float(sp.sympify(value).xreplace(self._model.fixed_parameters))
            except (TypeError, ValueError, sp.SympifyError):
                number = None
        if number is None:
            try:
                number = jnp.asarray(value, dtype)
            except (TypeError, ValueError):
                number = None
            if number is None or number.shape != ():
                raise LoweringError(
                    f"The initial value of `{name}` must be a number; got {value!r}."
                ) from None
        return jnp.asarray(number, dtype)

    def _default_initial_values(self) -> dict[str, Any]:
        return dict(self._initial)

    def __repr__(self) -> str:
        return f"CompiledRHS(states={list(self.state_names)})"


def lower(
    model: Model,
    *,
    key: PRNGKeyArray | None = None,
    derivatives=None,
    dtype=None,
    rules=None,
) -> tuple[CompiledRHS, Params]:
    """Compile an ODE model to a pure JAX right-hand side.

    **Arguments:**

    - `model`: an [`ODEModel`][symml.ODEModel] (from [`Model`][symml.Model]).
    - `key`: PRNG key for the networks' initial weights (needed when the model
      has unknown terms).
    - `derivatives`: the scheme for derivatives of networks with respect to
      their inputs: a name (`"forward"`, the default; `"reverse"`, `"taylor"`,
      `"fd"`), a scheme object, or a dict from derivatives (`U[0].diff(x)`) to
      schemes with an optional `"default"` entry.
    - `dtype`: the parameter dtype (default: JAX's default float).
    - `rules`: extra lowering rules `{sympy class: rule}` for this call only.

    **Returns:**

    `(f, params)`: `f(t, u, params) -> du/dt` (a [`CompiledRHS`][symml.CompiledRHS])
    and the initial [`Params`][symml.Params].
    """
    if not isinstance(model, Model):
        raise LoweringError(
            f"`lower` needs a symml `Model`; got {type(model).__name__}."
        )
    if key is None:
        if model.unknowns:
            raise LoweringError(
                "The model has unknown terms, so `lower` needs `key=` (e.g. "
                "`jax.random.PRNGKey(0)`) to initialise their networks."
            )
    else:
        check_key(key, "lower")
    dtype = check_dtype(dtype, "lower")
    f = CompiledRHS(model, derivatives, rules)
    return f, f.init_params(key=key, dtype=dtype)
