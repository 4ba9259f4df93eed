"""`discretize`: a PDE model with states → a method-of-lines ODE system."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, final

import jax
import jax.numpy as jnp
import scipy.sparse as ssp
import sympy as sp
from jaxtyping import Array, Float, Scalar

from .._errors import DiscretizeError, LoweringError
from ..dsl import Model, StateFunction
from ..lowering import AbstractSystem, Compiler, Env, Params, compile_exprs
from ._conditions import compile_conditions, initial_conditions
from ._grid import check_boundary, check_model, grid_sizes, make_axis
from ._operators import counts, jacobian_pattern, make_closures, scan_derivatives
from ._stencil import ORDERS, apply, pad

_CACHE_KEY = "symml.discretize"


@final
class DiscretizedModel(AbstractSystem):
    """A PDE model discretised in space: an ODE system on a grid, and an
    [`AbstractSystem`][symml.AbstractSystem] whose states have the grid's
    shape.

    Built by [`discretize`][symml.discretize]; its right-hand side
    is pure and works under `jit`, `vmap` and `grad` in float32 and float64,
    and `diffrax.ODETerm(ode)` works as it is.

    **Attributes:**

    - `model`: the PDE [`Model`][symml.Model].
    - `grid`: `{variable: coordinates of the unknowns along that axis}`.
    - `spacing`: `{variable: grid step}`.
    - `shape`: the grid shape, one entry per spatial variable in the model's
      order.
    - `state_names`: the states, in the order of the flat vector.
    - `size`: the number of grid points, `prod(shape)`.
    - `n`: the ODE size, `len(state_names) * size`.
    - `order`: the accuracy order of the stencils.

    The flat vector is state-major: `concatenate([u.ravel(), v.ravel()])`
    (C order over the grid).
    """

    # Diffusion makes discretised PDEs stiff: an implicit solver by default.
    _default_solver = "Kvaerno5"
    _error = DiscretizeError

    def __init__(self, model: Model, grid: Mapping, *, order: int = 2):
        check_model(model)
        if order not in ORDERS:
            raise DiscretizeError(
                f"`order={order!r}` is not supported; use one of "
                f"{', '.join(map(str, ORDERS))} (the accuracy order of the central "
                "stencils)."
            )
        spatial = tuple(model.spatial)
        boundary = check_boundary(model, spatial)
        sizes = grid_sizes(grid, spatial, boundary)
        self._model = model
        self.order = order
        self._time = model.independent
        self._spatial = spatial
        self._state_keys = {n: sp.Dummy(n) for n in model.state_names}
        self._trainable = list(model.trainable_parameters)

        exprs = [e.doit(deep=True) for e in model.rhs]
        widths = scan_derivatives(exprs, model)
        axes = [make_axis(v, boundary[v], *model.domain[v], sizes[v]) for v in spatial]
        self._axes = tuple(axes)
        self._closures = make_closures(widths, model.state_names, axes, order)
        self.grid = {a.var: a.coords for a in axes}
        self.spacing = {a.var: a.h for a in axes}
        self.shape = tuple(a.n for a in axes)
        self.size = math.prod(self.shape)

        self._compiler = Compiler(
            bound=[self._time, *spatial, *self._trainable],
            constants=model.fixed_parameters,
            rules={
                StateFunction: self._state_rule,
                sp.Derivative: self._derivative_rule,
            },
        )
        self._boundary_values = compile_conditions(model, self._axes, self._compiler)
        try:
            # `exprs` are evaluated already (and checked in that form above):
            # `compile_exprs` would evaluate them a second time, which was
            # ~40 % of building the model.
            self._rhs = [self._compiler(e) for e in exprs]
            self._inputs = {
                u.name: compile_exprs(u.inputs, self._compiler) for u in model.unknowns
            }
        except LoweringError as e:
            raise DiscretizeError(f"The right-hand side cannot be lowered: {e}") from e
        self._pattern = None
        self._grid_sharding = None

    # -- validation and set-up ------------------------------------------------

    # -- lowering rules ---------------------------------------------------------

    def _state_rule(self, expr, compile):
        key = self._state_keys[expr.func.__name__]
        return lambda env: env.values[key]

    def _derivative_rule(self, expr, compile):
        name = expr.expr.func.__name__
        by_variable = counts(expr)
        orders = tuple(by_variable.get(v, 0) for v in self._spatial)

        def evaluate(env: Env):
            cache_key = (_CACHE_KEY, name, orders)
            out = env.cache.get(cache_key)
            if out is None:
                padded = self._padded(env, name)
                out = padded
                for a, axis in enumerate(self._axes):
                    width = self._closures[name, a].width
                    out = apply(out, a, width, axis.n, orders[a], axis.h, self.order)
                env.cache[cache_key] = out
            return out

        return evaluate

    def _padded(self, env: Env, name: str):
        key = (_CACHE_KEY, name)
        out = env.cache.get(key)
        if out is None:
            out = env.values[self._state_keys[name]]
            for a in range(len(self._axes)):
                lo = self._boundary_values.get((name, a, 0))
                hi = self._boundary_values.get((name, a, 1))
                out = pad(
                    out,
                    a,
                    self._closures[name, a],
                    None if lo is None else lo(env),
                    None if hi is None else hi(env),
                )
            env.cache[key] = out
        return out

    # -- the system's layout and initial values -----------------------------------

    @property
    def model(self) -> Model:
        return self._model

    @property
    def state_names(self) -> tuple[str, ...]:
        return self._model.state_names

    def state_shape(self, name: str) -> tuple[int, ...]:
        self._name(name)
        return self.shape

    def _initial_value(self, name: str, value: Any, dtype) -> Array:
        if isinstance(value, sp.Basic | int | float) and not isinstance(value, bool):
            compiler = Compiler(
                bound=self._spatial, constants=self._model.fixed_parameters
            )
            env = Env(self._coordinates(dtype), {}, {})
            try:
                value = compiler(sp.sympify(value))(env)
            except LoweringError as e:
                raise DiscretizeError(
                    f"The initial value of `{name}`, `{value}`, must be an "
                    f"expression of the spatial variables and fixed parameters: {e}"
                ) from None
        try:
            value = jnp.asarray(value, dtype)
        except (TypeError, ValueError):
            raise DiscretizeError(
                f"The initial value of `{name}` must be a number, a sympy expression "
                f"of the spatial variables or an array of the grid shape {self.shape};"
                f" got {value!r}."
            ) from None
        try:
            return jnp.broadcast_to(value, self.shape)
        except ValueError:
            raise DiscretizeError(
                f"The initial value of `{name}` has shape {value.shape}; expected "
                f"the grid shape {self.shape}."
            ) from None

    def _default_initial_values(self) -> dict[str, sp.Expr]:
        return initial_conditions(self._model)

    # -- evaluation ---------------------------------------------------------------

    def _coordinates(self, dtype) -> dict[sp.Symbol, Array]:
        d = len(self._axes)
        out = {}
        for a, axis in enumerate(self._axes):
            shape = [1] * d
            shape[a] = axis.n
            out[axis.var] = jnp.asarray(axis.coords.reshape(shape), dtype)
        return out

    def _env(self, t, u_flat, params: Params | None) -> Env:
        if params is None and self.needs_params:
            raise DiscretizeError(
                "The model has unknown terms or trainable parameters, so its "
                "right-hand side needs `params` (e.g. "
                "`symml.init_params(model, key=jax.random.PRNGKey(0))`)."
            )
        self.check_params(params)
        values: dict[Any, Any] = {self._time: t}
        values.update(self._coordinates(u_flat.dtype))
        states = {n: self._split(v) for n, v in self.unflatten(u_flat).items()}
        values.update({self._state_keys[n]: states[n] for n in self.state_names})
        if params is not None:
            values.update({p: params.values[str(p)] for p in self._trainable})
        networks = params.networks if params is not None else {}
        return Env(values, networks, self._compiler.requests)

    def rhs(
        self, t: Scalar, u_flat: Float[Array, " n"], params: Params | None = None
    ) -> Float[Array, " n"]:
        """The time derivative of the flat state: pure, and safe under `jit`,
        `vmap` and `grad` (with respect to `u_flat`, `t` and `params`).

        **Arguments:**

        - `t`: the time.
        - `u_flat`: the flat state (state-major, C order; see `flatten`).
        - `params`: the [`Params`][symml.Params] (trainable parameters and
          networks); needed only if the model has either.

        **Returns:**

        `du_flat/dt`, of the dtype of `u_flat`.
        """
        u_flat = self.check_state(u_flat, "u_flat")
        if u_flat.ndim != 1:
            raise DiscretizeError(
                f"`u_flat` has shape {u_flat.shape}; the right-hand side takes one "
                f"flat state of shape ({self.n},) (use `jax.vmap` for a batch)."
            )
        env = self._env(t, u_flat, params)
        parts = [
            self._split(
                jnp.broadcast_to(jnp.asarray(r(env), u_flat.dtype), self.shape)
            ).ravel()
            for r in self._rhs
        ]
        return jnp.concatenate(parts)

    __call__ = rhs

    def unknown_values(
        self, t: Scalar, u_flat: Float[Array, " n"], params: Params
    ) -> dict[str, tuple[Float[Array, "P k"], Float[Array, "P m"]]]:
        """`{unknown name: (inputs (P, k), outputs (P, m))}` at all `P` grid
        points (C order): what each network sees and returns, the data for
        sparse regression."""
        u_flat = jnp.asarray(u_flat)
        env = self._env(t, u_flat, params)
        out = {}
        for name, inputs in self._inputs.items():
            x = jnp.stack(
                [
                    jnp.broadcast_to(jnp.asarray(i(env), u_flat.dtype), self.shape)
                    for i in inputs
                ],
                axis=-1,
            ).reshape(self.size, len(inputs))
            out[name] = (x, jax.vmap(params.networks[name])(x))
        return out

    # -- domain decomposition ------------------------------------------------------

    def _split(self, value):
        if self._grid_sharding is None:
            return value
        return jax.lax.with_sharding_constraint(value, self._grid_sharding)

    def decompose(self, mesh) -> DiscretizedModel:
        """This system with its grid split over the devices of `mesh` along
        the first spatial axis (domain decomposition): the right-hand side
        keeps every state's grid array split that way, and XLA partitions the
        stencils, exchanging the points next to each cut between devices. The
        numbers are those of the undivided system to float rounding.

        `fit(..., mesh=...)` does this itself; call it to
        [`solve`][symml.solve] on a mesh.

        **Arguments:**

        - `mesh`: a `jax.sharding.Mesh`; the grid's first axis is split over
          all its devices, so their number must divide it (a `DiscretizeError`
          says so otherwise), or `None` for the undivided system.

        **Returns:** a [`DiscretizedModel`][symml.DiscretizedModel] of the same
        model and grid.
        """
        from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

        if mesh is None:
            if self._grid_sharding is None:
                return self
            out = copy.copy(self)
            out._grid_sharding = None
            return out
        if not isinstance(mesh, Mesh):
            raise DiscretizeError(
                f"`mesh` must be a `jax.sharding.Mesh` (e.g. "
                f"`jax.make_mesh((jax.device_count(),), ('grid',))`); got {mesh!r}."
            )
        devices = int(mesh.devices.size)
        first = self._axes[0]
        if first.n % devices:
            up = -(-first.n // devices) * devices
            raise DiscretizeError(
                f"The grid's first axis `{first.var}` has {first.n} points, which do "
                f"not split evenly over the {devices} devices of `mesh`; discretise "
                f"with a multiple of {devices} points along `{first.var}`, such as "
                f"`{{{first.var}: {up}}}`, or use a mesh of fewer devices."
            )
        if any(t != AxisType.Auto for t in mesh.axis_types):
            mesh = Mesh(
                mesh.devices,
                mesh.axis_names,
                axis_types=(AxisType.Auto,) * mesh.devices.ndim,
            )
        spec = PartitionSpec(tuple(mesh.axis_names), *([None] * (len(self.shape) - 1)))
        out = copy.copy(self)
        out._grid_sharding = NamedSharding(mesh, spec)
        return out

    @property
    def mesh(self):
        """The mesh whose devices split the grid (see `decompose`), or None."""
        return None if self._grid_sharding is None else self._grid_sharding.mesh

    # -- sparsity -------------------------------------------------------------------

    def jacobian_sparsity(self) -> ssp.csr_matrix:
        """The `(n, n)` boolean pattern of `d rhs / d u_flat`, built from the
        stencils: which states and derivatives each state's right-hand side
        uses (network terms depend on their inputs at the same point). It is
        the structure of the computation, so it equals what
        `symml.sparsity.jacobian_sparsity` detects on `rhs`, and holds for every
        state, time and parameter value; a Jacobian entry in it can still be
        zero where weights cancel exactly (a ghost point feeding a stencil) or
        a coefficient of the model vanishes."""
        if self._pattern is None:
            self._pattern = jacobian_pattern(
                self._model, self._axes, self._closures, self.order, self.size
            )
        return self._pattern.copy()

    def __repr__(self) -> str:
        axes = ", ".join(f"{a.var}: {a.n} ({a.kind})" for a in self._axes)
        split = (
            ""
            if self._grid_sharding is None
            else f", split over {self._grid_sharding.mesh.devices.size} device(s)"
        )
        return (
            f"DiscretizedModel(states={list(self.state_names)}, grid={{{axes}}}, "
            f"order={self.order}, n={self.n}{split})"
        )


def discretize(model: Model, grid: Mapping, *, order: int = 2) -> DiscretizedModel:
    """Discretise a PDE model in space by the method of lines.

    **Arguments:**

    - `model`: a [`Model`][symml.Model] whose states depend on time and the
      spatial variables of `domain=`, with `boundary=` for each spatial
      variable.
    - `grid`: `{x: N}` (and `{x: Nx, y: Ny}` in 2D): the number of unknowns
      along each axis of a uniform grid on the model's domain.
      - periodic: `x_i = lo + i h`, `h = (hi - lo) / N`;
      - dirichlet: the `N` interior points, `h = (hi - lo) / (N + 1)`; the
        boundary value comes from a condition `Eq(u.subs(x, lo), value)`
        (a constant or an expression of time and parameters), 0 if none;
      - neumann: the `N` points including both ends, `h = (hi - lo) / (N - 1)`;
        the flux du/dx comes from `Eq(u.diff(x).subs(x, lo), flux)`, 0
        (no flux) if none.
    - `order`: the accuracy order (2, 4 or 6) of the central stencils. Ghost
      points beyond a Dirichlet or Neumann boundary come from the polynomial
      through the boundary condition and the nearest unknowns, of a degree
      that keeps this order.

    **Returns:**

    A [`DiscretizedModel`][symml.DiscretizedModel]: the ODE system
    `du/dt = rhs(t, u, params)` on the grid.
    """
    return DiscretizedModel(model, grid, order=order)
