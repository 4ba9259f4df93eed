"""`discretize`: a PDE model with states → a method-of-lines ODE system."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, final

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as ssp
import sympy as sp
from jaxtyping import Array, Float, Scalar
from sympy.core.function import AppliedUndef

from .._errors import DiscretizeError, LoweringError
from ..dsl import Model, PDEModel, StateFunction, UnknownOutput
from ..lowering import AbstractSystem, Compiler, Env, Params, compile_exprs
from ._stencil import (
    KINDS,
    ORDERS,
    Closure,
    apply,
    closure,
    half_width,
    operator_pattern,
    pad,
)

_CACHE_KEY = "symml.discretize"


@dataclass(frozen=True)
class _Axis:
    var: sp.Symbol
    kind: str
    lo: float
    hi: float
    n: int
    h: float
    coords: np.ndarray


def _make_axis(var: sp.Symbol, kind: str, lo: float, hi: float, n: int) -> _Axis:
    if kind == "periodic":
        h = (hi - lo) / n
        coords = lo + h * np.arange(n)
    elif kind == "dirichlet":
        h = (hi - lo) / (n + 1)
        coords = lo + h * np.arange(1, n + 1)
    else:
        h = (hi - lo) / (n - 1)
        coords = lo + h * np.arange(n)
    return _Axis(var, kind, lo, hi, n, h, coords)


def _counts(d: sp.Derivative) -> dict[sp.Symbol, int]:
    out: dict[sp.Symbol, int] = {}
    for v, c in d.variable_count:
        out[v] = out.get(v, 0) + int(c)
    return out


def _state_leaves(expr: sp.Basic):
    """The states and derivatives of states `expr` depends on (a derivative's
    own state is not a separate dependency: an odd stencil skips its centre)."""
    is_state_derivative = isinstance(expr, sp.Derivative) and isinstance(
        expr.expr, StateFunction
    )
    if is_state_derivative or isinstance(expr, StateFunction):
        yield expr
    else:
        for a in expr.args:
            yield from _state_leaves(a)


def _as_symbol_map(mapping, what: str, allowed: tuple[sp.Symbol, ...]) -> dict:
    if not isinstance(mapping, Mapping):
        raise DiscretizeError(
            f"`{what}` must be a dict `{{variable: value}}`; got "
            f"{type(mapping).__name__}."
        )
    by_name = {str(v): v for v in allowed}
    out = {}
    for key, value in mapping.items():
        var = by_name.get(str(key)) if isinstance(key, str | sp.Symbol) else None
        if var is None or (isinstance(key, sp.Symbol) and key != var):
            raise DiscretizeError(
                f"`{what}` names `{key}`, which is not a spatial variable of the "
                f"model; the spatial variables are "
                f"{', '.join(f'`{v}`' for v in allowed)}."
            )
        out[var] = value
    return out


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
        _check_model(model)
        if order not in ORDERS:
            raise DiscretizeError(
                f"`order={order!r}` is not supported; use one of "
                f"{', '.join(map(str, ORDERS))} (the accuracy order of the central "
                "stencils)."
            )
        spatial = tuple(model.spatial)
        boundary = _check_boundary(model, spatial)
        sizes = _as_symbol_map(grid, "grid", spatial)
        missing = [v for v in spatial if v not in sizes]
        if missing:
            raise DiscretizeError(
                f"`grid` has no size for the spatial variable(s) "
                f"{', '.join(f'`{v}`' for v in missing)}; give one, e.g. "
                f"`grid={{{missing[0]}: 64}}`."
            )
        for v, size in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int | np.integer):
                raise DiscretizeError(
                    f"`grid[{v}]` must be an integer number of grid points; got "
                    f"{size!r}."
                )
            least = 2 if boundary[v] == "neumann" else 1
            if size < least:
                raise DiscretizeError(
                    f"`grid[{v}] = {size}` is too small; use at least {least} "
                    "points (more for the stencils)."
                )
        self._model = model
        self.order = order
        self._time = model.independent
        self._spatial = spatial
        self._state_keys = {n: sp.Dummy(n) for n in model.state_names}
        self._trainable = list(model.trainable_parameters)

        exprs = [e.doit(deep=True) for e in model.rhs]
        widths = self._scan(exprs)
        axes = []
        for v in spatial:
            lo, hi = model.domain[v]
            axes.append(_make_axis(v, boundary[v], lo, hi, int(sizes[v])))
        self._axes = tuple(axes)
        self._closures = self._make_closures(widths)
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
        self._boundary_values = self._compile_conditions()
        try:
            self._rhs = compile_exprs(exprs, self._compiler)
            self._inputs = {
                u.name: compile_exprs(u.inputs, self._compiler) for u in model.unknowns
            }
        except LoweringError as e:
            raise DiscretizeError(f"The right-hand side cannot be lowered: {e}") from e
        self._pattern = None

    # -- validation and set-up ------------------------------------------------

    def _scan(self, exprs) -> dict[tuple[str, sp.Symbol], int]:
        """Check every derivative and state application in the right-hand side
        and return the highest derivative order per (state, axis)."""
        t, spatial = self._time, set(self._spatial)
        variables = tuple(self.model.variables)
        highest: dict[tuple[str, sp.Symbol], int] = {}
        for i, expr in enumerate(exprs):
            target = f"`{self.state_names[i]}_{t}`"
            for node in sp.preorder_traversal(expr):
                if isinstance(node, sp.Derivative):
                    f = node.expr
                    if isinstance(f, UnknownOutput) or not isinstance(f, StateFunction):
                        raise DiscretizeError(
                            f"The equation for {target} contains `{node}`, a "
                            "derivative of an unknown network term; the method of "
                            "lines evaluates network terms pointwise on the grid "
                            "and cannot differentiate them. Move the derivative "
                            "onto states (e.g. give the network the state's "
                            "derivative as an input)."
                        )
                    counts = _counts(node)
                    if t in counts:
                        raise DiscretizeError(
                            f"The equation for {target} contains the time "
                            f"derivative `{node}` on its right-hand side; the "
                            "method of lines needs each state's time derivative "
                            "given by spatial terms only. Rewrite the model "
                            "without mixed time-space derivatives."
                        )
                    for v, c in counts.items():
                        if v not in spatial:
                            raise DiscretizeError(
                                f"`{node}` differentiates with respect to `{v}`, "
                                "which is not a spatial variable of the model."
                            )
                        key = (f.func.__name__, v)
                        highest[key] = max(highest.get(key, 0), c)
                elif isinstance(node, StateFunction) and node.args != variables:
                    raise DiscretizeError(
                        f"The equation for {target} evaluates the state `{node}` "
                        "at a point; the method of lines needs states as functions "
                        f"of {variables} on the right-hand side (boundary values "
                        "belong in `conditions=`)."
                    )
                elif isinstance(node, AppliedUndef) and not isinstance(
                    node, StateFunction | UnknownOutput
                ):
                    raise DiscretizeError(
                        f"The equation for {target} contains `{node}`, which the "
                        "method of lines cannot discretise."
                    )
        return highest

    def _make_closures(self, highest) -> dict[tuple[str, int], Closure]:
        out = {}
        for name in self.state_names:
            for a, axis in enumerate(self._axes):
                m = highest.get((name, axis.var), 0)
                width = half_width(m, self.order)
                nodes = self.order + max(m, 1) - 1
                if axis.kind == "periodic":
                    need, what = 2 * width + 1, "a periodic axis"
                else:
                    need, what = nodes, f"a {axis.kind} boundary"
                if m and axis.n < need:
                    raise DiscretizeError(
                        f"`grid[{axis.var}] = {axis.n}` is too small for the "
                        f"order-{self.order} stencil of the {m}. derivative of "
                        f"`{name}` along `{axis.var}` on {what}; use at least "
                        f"{need} points (or a lower `order=`)."
                    )
                out[name, a] = closure(axis.kind, width, nodes, axis.h)
        return out

    def _compile_conditions(self):
        """`{(state, axis, side): evaluator}` of the given boundary values
        (Dirichlet) or fluxes du/dx (Neumann); missing ones are zero."""
        t = self._time
        allowed = {t, *self.model.parameters}
        variables = tuple(self.model.variables)
        positions = {v: variables.index(v) for v in self._spatial}
        out = {}
        for cond in self.model.conditions:
            found = _boundary_target(cond.lhs, variables, positions)
            value = cond.rhs
            if found is None:
                found = _boundary_target(cond.rhs, variables, positions)
                value = cond.lhs
            if found is None:
                continue  # an initial condition
            name, var, point, flux = found
            a = self._spatial.index(var)
            axis = self._axes[a]
            desc = f"`{cond.lhs} = {cond.rhs}`"
            if point == axis.lo:
                side = 0
            elif point == axis.hi:
                side = 1
            else:
                raise DiscretizeError(
                    f"The condition {desc} is at `{var} = {point}`, which is not an "
                    f"end of the domain ({axis.lo}, {axis.hi}) of `{var}`; boundary "
                    "conditions must sit on the domain's ends."
                )
            expected = "neumann" if flux else "dirichlet"
            if axis.kind != expected:
                raise DiscretizeError(
                    f"The condition {desc} is a {expected} condition, but the "
                    f"boundary of `{var}` is {axis.kind!r}; set "
                    f"`boundary={{{var}: {expected!r}}}` or remove the condition."
                )
            bad = value.free_symbols - allowed
            if bad or value.atoms(AppliedUndef) or value.atoms(sp.Derivative):
                raise DiscretizeError(
                    f"The boundary value in {desc} must be a constant or an "
                    f"expression of time `{t}` and parameters; it contains "
                    f"{', '.join(sorted(map(str, bad))) or 'a function'}."
                )
            if (name, a, side) in out:
                raise DiscretizeError(
                    f"The boundary value of `{name}` at `{var} = {point}` is given "
                    "twice in `conditions=`; give it once."
                )
            out[name, a, side] = self._compiler(value)
        return out

    # -- lowering rules ---------------------------------------------------------

    def _state_rule(self, expr, compile):
        key = self._state_keys[expr.func.__name__]
        return lambda env: env.values[key]

    def _derivative_rule(self, expr, compile):
        name = expr.expr.func.__name__
        counts = _counts(expr)
        orders = tuple(counts.get(v, 0) for v in self._spatial)

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
        value = jnp.asarray(value, dtype)
        try:
            return jnp.broadcast_to(value, self.shape)
        except ValueError:
            raise DiscretizeError(
                f"The initial value of `{name}` has shape {value.shape}; expected "
                f"the grid shape {self.shape}."
            ) from None

    def _default_initial_values(self) -> dict[str, sp.Expr]:
        """`{state: expression}` from conditions `Eq(u.subs(t, t0), expr)`."""
        t = self._time
        out = {}
        for cond in self._model.conditions:
            f = cond.lhs
            if isinstance(f, StateFunction):
                args = dict(zip(self._model.variables, f.args, strict=True))
                if args[t].is_number and all(args[v] == v for v in self._spatial):
                    out[f.func.__name__] = cond.rhs
        return out

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
        values: dict[Any, Any] = {self._time: t}
        values.update(self._coordinates(u_flat.dtype))
        states = self.unflatten(u_flat)
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
            jnp.broadcast_to(jnp.asarray(r(env), u_flat.dtype), self.shape).ravel()
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
            self._pattern = self._build_pattern()
        return self._pattern.copy()

    def _build_pattern(self) -> ssp.csr_matrix:
        ops: dict[tuple, ssp.csr_matrix] = {}
        k = len(self.state_names)
        blocks = [[None] * k for _ in range(k)]
        for i, expr in enumerate(self.model.rhs):
            for leaf in set(_state_leaves(expr.doit(deep=True))):
                if isinstance(leaf, sp.Derivative):
                    name, counts = leaf.expr.func.__name__, _counts(leaf)
                else:
                    name, counts = leaf.func.__name__, {}
                orders = tuple(counts.get(v, 0) for v in self._spatial)
                key = (name, orders)
                if key not in ops:
                    op = ssp.identity(1, format="csr")
                    for a, axis in enumerate(self._axes):
                        c = self._closures[name, a]
                        op1 = operator_pattern(orders[a], self.order, c, axis.n)
                        op = ssp.kron(op, op1, format="csr")
                    ops[key] = op != 0
                j = self.state_names.index(name)
                prev = blocks[i][j]
                blocks[i][j] = ops[key] if prev is None else (prev + ops[key]) != 0
        for i in range(k):
            for j in range(k):
                if blocks[i][j] is None:
                    blocks[i][j] = ssp.csr_matrix((self.size, self.size), dtype=bool)
        out = ssp.bmat(blocks, format="csr").astype(bool)
        out.sort_indices()
        return out

    def __repr__(self) -> str:
        axes = ", ".join(f"{a.var}: {a.n} ({a.kind})" for a in self._axes)
        return (
            f"DiscretizedModel(states={list(self.state_names)}, grid={{{axes}}}, "
            f"order={self.order}, n={self.n})"
        )


def _boundary_target(lhs, variables, positions):
    """`(state, variable, point, is_flux)` if `lhs` is a boundary value
    `u(t, lo, y)` or flux `Subs(Derivative(u, x), x, lo)`, else `None`."""
    if isinstance(lhs, StateFunction):
        differ = [(v, a) for v, a in zip(variables, lhs.args, strict=True) if a != v]
        if len(differ) == 1 and differ[0][0] in positions and differ[0][1].is_number:
            v, point = differ[0]
            return lhs.func.__name__, v, float(point), False
        return None
    if isinstance(lhs, sp.Subs):
        inner, subs_vars, points = lhs.args
        if (
            isinstance(inner, sp.Derivative)
            and isinstance(inner.expr, StateFunction)
            and len(subs_vars) == 1
            and subs_vars[0] in positions
            and points[0].is_number
            and _counts(inner) == {subs_vars[0]: 1}
        ):
            return inner.expr.func.__name__, subs_vars[0], float(points[0]), True
    return None


def _check_model(model) -> None:
    if not isinstance(model, Model):
        raise DiscretizeError(
            f"`discretize` needs a symml `Model`; got {type(model).__name__}."
        )
    if not isinstance(model, PDEModel):
        raise DiscretizeError(
            f"`discretize` needs a PDE model with states (declared with "
            f"`symml.states(names, t, x, ...)` and `domain=`); this is "
            f"{model._kind}. "
            + (
                "Lower an ODE model with `symml.lower`."
                if model.states
                else "Fields are fitted by physics-informed networks, not "
                "discretised: declare states instead."
            )
        )


def _check_boundary(model: Model, spatial) -> dict[sp.Symbol, str]:
    boundary = model.boundary or {}
    extra = [v for v in boundary if v not in spatial]
    if extra:
        raise DiscretizeError(
            f"`boundary=` names `{extra[0]}`, which is not a spatial variable of "
            f"the model ({', '.join(f'`{v}`' for v in spatial)})."
        )
    missing = [v for v in spatial if v not in boundary]
    if missing:
        raise DiscretizeError(
            f"The model gives no boundary kind for "
            f"{', '.join(f'`{v}`' for v in missing)}; pass `boundary=` to `Model` "
            f"({', '.join(map(repr, KINDS))}, or a dict per spatial variable)."
        )
    return dict(boundary)


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
