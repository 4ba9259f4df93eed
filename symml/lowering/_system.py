"""`AbstractSystem`: the one shape every lowered system has.

An ODE right-hand side, a PDE discretised by the method of lines, and the
systems later stages add, all hold their state as one flat vector `u` of size
`n`, made of named states laid out one after the other (state-major; a state
on a grid is flattened in C order). Training, discovery, sparsity, steady
states and uncertainty use this interface only, never a concrete class.
"""

import abc
import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.sparse as ssp
import sympy as sp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Scalar

from .._errors import LoweringError, SymmlError
from ..dsl import Model
from ._params import Params, init_params


def _state_key(key) -> str:
    """A state given as the state itself (`x`), a sympy symbol or a name."""
    if isinstance(key, str):
        return key
    func = getattr(key, "func", None)
    if isinstance(key, sp.Symbol):
        return key.name
    if func is not None and hasattr(func, "__name__"):
        return func.__name__
    return str(key)


class AbstractSystem(abc.ABC):
    """A lowered system: a pure function of `(t, u, params)` on a flat state.

    Subclasses declare `model`, `state_names` and `state_shape`; the layout of
    the flat vector, `flatten`/`unflatten`, and the checks of `u` follow from
    these and are final.

    **Attributes:**

    - `model`: the [`Model`][symml.Model] the system was lowered from.
    - `state_names`: the states, in the order of the flat vector.
    - `n`: the size of the flat vector.
    """

    @property
    @abc.abstractmethod
    def model(self) -> Model:
        """The model the system was lowered from."""

    @property
    @abc.abstractmethod
    def state_names(self) -> tuple[str, ...]:
        """The states, in the order of the flat vector."""

    @abc.abstractmethod
    def state_shape(self, name: str) -> tuple[int, ...]:
        """The shape of one state's values: `()` for a scalar state, the grid
        shape for a state on a grid."""

    @abc.abstractmethod
    def __call__(
        self, t: Scalar, u: Float[Array, " n"], params: Params | None = None
    ) -> Float[Array, " n"]:
        """The system's function at time `t` and flat state `u`: `du/dt` for an
        ODE or a discretised PDE. Pure: safe under `jit`, `vmap` and `grad`."""

    @abc.abstractmethod
    def unknown_values(
        self, t: Scalar, u: Float[Array, " n"], params: Params
    ) -> dict[str, tuple[Float[Array, "P k"], Float[Array, "P m"]]]:
        """`{unknown name: (inputs (P, k), outputs (P, m))}` at one state: what
        each network sees and returns at the `P` points where the system
        evaluates it (one for an ODE, every grid point for a discretised PDE).
        This is the data discovery regresses on."""

    @abc.abstractmethod
    def jacobian_sparsity(self) -> ssp.csr_matrix:
        """The `(n, n)` boolean pattern of `d f / d u`, valid for every state,
        time and parameter value."""

    @abc.abstractmethod
    def _initial_value(self, name: str, value: Any, dtype) -> Array:
        """One state's initial value (a number, a sympy expression, an array)
        as an array of its shape."""

    @abc.abstractmethod
    def _default_initial_values(self) -> dict[str, Any]:
        """The initial values the model itself gives (its initial conditions)."""

    # The solver `symml.solve` uses when none is given, and the error class of
    # mistakes in using this system.
    _default_solver: str = "Tsit5"
    _error: type[SymmlError] = LoweringError
    # A stochastic system's function is only its drift: `symml.solve` would
    # integrate the noise away, so it refuses and points to `symml.simulate`.
    stochastic: bool = False

    # -- derived, final ----------------------------------------------------------

    @property
    def needs_params(self) -> bool:
        """Whether the system has networks or trainable parameters, so that
        calling it needs `params`."""
        return bool(self.model.unknowns or self.model.trainable_parameters)

    @property
    def n(self) -> int:
        return sum(self._size(name) for name in self.state_names)

    def _size(self, name: str) -> int:
        return math.prod(self.state_shape(name))

    def _name(self, key) -> str:
        name = _state_key(key)
        if name not in self.state_names:
            raise self._error(
                f"`{key}` is not a state of the system; its states are "
                f"{', '.join(map(repr, self.state_names))}."
            )
        return name

    def state_slice(self, name) -> slice:
        """The slice of the flat vector holding state `name` (a state or its
        name)."""
        name = self._name(name)
        start = 0
        for other in self.state_names:
            if other == name:
                return slice(start, start + self._size(name))
            start += self._size(other)
        raise AssertionError  # unreachable: `_name` checked the name

    def state_indices(self, name) -> np.ndarray:
        """The flat indices of state `name`."""
        return np.arange(self.n)[self.state_slice(name)]

    def check_state(self, u, what: str = "u") -> Array:
        """`u` as an array whose last axis has the system's size, or a
        [`LoweringError`][symml.LoweringError] saying what was expected."""
        try:
            u = jnp.asarray(u)
        except (TypeError, ValueError):
            raise self._error(
                f"`{what}` must be an array of numbers, the flat state "
                f"({self._layout_text()}); got {u!r}."
            ) from None
        if u.ndim == 0 or u.shape[-1] != self.n:
            raise self._error(
                f"`{what}` has shape {u.shape}; expected a last axis of size {self.n}"
                f" (the flat state: {self._layout_text()})."
            )
        if jnp.issubdtype(u.dtype, jnp.complexfloating):
            raise self._error(
                f"`{what}` is complex; symml's systems are real-valued. Split real "
                "and imaginary parts into two states."
            )
        if not jnp.issubdtype(u.dtype, jnp.floating):
            u = u.astype(jnp.zeros(()).dtype)
        return u

    def check_params(self, params) -> None:
        """Raise the system's error unless `params` holds a network for every
        unknown term and field and a value for every trainable parameter of
        the model (a check of names, so it costs nothing under `jit`)."""
        if params is None:
            return
        model = self.model
        if not isinstance(params, Params):
            raise self._error(
                f"`params` must be the `symml.Params` of the model (from "
                f"`symml.lower`, `symml.init_params` or a fit result); got "
                f"{type(params).__name__}."
            )
        networks = [u.name for u in model.unknowns]
        networks += [f.func.__name__ for f in model.fields]
        missing = [n for n in networks if n not in params.networks]
        missing += [
            str(p) for p in model.trainable_parameters if str(p) not in params.values
        ]
        if missing:
            raise self._error(
                f"`params` has no {', '.join(f'`{m}`' for m in missing)}: it belongs "
                "to another model. Pass the `Params` made for this one (from "
                "`symml.lower`, `symml.init_params(model, key=...)` or a fit of it)."
            )

    def _layout_text(self) -> str:
        parts = []
        for name in self.state_names:
            shape = self.state_shape(name)
            parts.append(f"{name}{list(shape) if shape else ''}")
        return ", ".join(parts)

    def unflatten(self, u: Float[ArrayLike, "... n"]) -> dict[str, Array]:
        """`{state name: array of shape (..., *state shape)}` from a flat vector
        (or a batch of them, e.g. `solution.ys`)."""
        u = self.check_state(u)
        batch = u.shape[:-1]
        return {
            n: u[..., self.state_slice(n)].reshape(*batch, *self.state_shape(n))
            for n in self.state_names
        }

    def flatten(self, values: Mapping) -> Float[Array, " n"]:
        """The flat vector of `{state: value}` (keys are states or their names,
        values broadcast to each state's shape)."""
        values = {self._name(k): v for k, v in values.items()}
        missing = [n for n in self.state_names if n not in values]
        if missing:
            raise self._error(
                f"`flatten` needs a value for every state; missing "
                f"{', '.join(f'`{n}`' for n in missing)}."
            )
        parts = []
        for name in self.state_names:
            v = jnp.asarray(values[name])
            try:
                v = jnp.broadcast_to(v, self.state_shape(name))
            except ValueError:
                raise self._error(
                    f"The value of `{name}` has shape {v.shape}; expected "
                    f"{self.state_shape(name)}."
                ) from None
            parts.append(v.ravel())
        return jnp.concatenate(parts)

    def initial_state(self, values: Mapping | None = None, *, dtype=None) -> Array:
        """The flat initial state.

        **Arguments:**

        - `values`: `{state: value}` (keys are states or their names), where a
          value is a number, a sympy expression (of the spatial variables and
          fixed parameters, for a state on a grid) or an array of the state's
          shape. States not given take the model's initial conditions.
        - `dtype`: the array dtype (default: JAX's default float).

        **Returns:**

        The flat vector, shape `(n,)`.
        """
        dtype = jnp.zeros(()).dtype if dtype is None else dtype
        given = {self._name(k): v for k, v in (values or {}).items()}
        merged = {**self._default_initial_values(), **given}
        missing = [n for n in self.state_names if n not in merged]
        if missing:
            raise self._error(
                f"No initial value for {', '.join(f'`{n}`' for n in missing)}: pass "
                "it in `values=`, or give the model initial conditions "
                "(`Eq(x.subs(t, t0), value)`)."
            )
        out = {n: self._initial_value(n, merged[n], dtype) for n in self.state_names}
        state = self.flatten(out).astype(dtype)
        if not bool(jnp.all(jnp.isfinite(state))):
            bad = [n for n, v in out.items() if not bool(jnp.all(jnp.isfinite(v)))]
            raise self._error(
                f"The initial value of {', '.join(f'`{n}`' for n in bad)} is not "
                "finite (NaN or inf); give finite initial values."
            )
        return state

    def init_params(
        self,
        *,
        key: PRNGKeyArray | None = None,
        dtype=None,
        final_scale: float = 1.0,
    ) -> Params:
        """Initial [`Params`][symml.Params] of the system's model (see
        [`init_params`][symml.init_params])."""
        return init_params(
            self.model,
            key=jr.PRNGKey(0) if key is None else key,
            dtype=dtype,
            final_scale=final_scale,
        )
