"""Stochastic declarations: SDEs with unknown terms, and semilinear parabolic
PDEs in many dimensions (solved by the deep BSDE method).

Plain sympy, like the rest of the DSL: nothing here imports jax.
"""

import math
from collections.abc import Callable, Mapping, Sequence

import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import ModelError
from ._model import (
    Model,
    _check_declared,
    _check_distinct,
    _check_parameters,
    _one_unknown_per_name,
)
from ._symbols import StateFunction
from ._unknown import UnknownOutput

_NOISE = ("diagonal", "general", "scalar")
_CALCULUS = ("ito", "stratonovich")


def _scalar_expr(value, what: str) -> sp.Expr:
    try:
        expr = sp.sympify(value)
    except (sp.SympifyError, TypeError):
        raise ModelError(
            f"{what} is {value!r}; expected a sympy expression or a number."
        ) from None
    if not isinstance(expr, sp.Expr) or isinstance(expr, sp.MatrixExpr):
        raise ModelError(
            f"{what} is `{expr}` of type {type(expr).__name__}; expected a scalar "
            "sympy expression."
        )
    return expr


class _Declared(Model):
    """A model kind declared by its own arguments rather than by equations:
    built attribute by attribute in `_declare`, then frozen like every
    `Model`."""

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self._declare(*args, **kwargs)
        object.__setattr__(self, "_frozen", True)
        return self

    def _declare(self, *args, **kwargs) -> None:
        raise NotImplementedError

    def __setattr__(self, name, value):
        # Settable while `_declare` runs, immutable afterwards.
        if self.__dict__.get("_frozen"):
            raise ModelError(
                f"The `{type(self).__name__}` is immutable: `{name}` cannot be set. "
                f"Build a new one with `symml.{type(self).__name__}(...)`."
            )
        object.__setattr__(self, name, value)


class SDE(_Declared):
    r"""A system of stochastic differential equations

    $$dX_t = \mu(t, X_t)\,dt + \sigma(t, X_t)\,dW_t$$

    whose drift $\mu$ and diffusion $\sigma$ are sympy expressions of the states,
    the time, parameters and [`Unknown`][symml.Unknown] network terms, as in an
    ODE [`Model`][symml.Model].

    **Arguments:**

    - `drift`: one expression per state, in the order of `states`, or a
      mapping `{state: expression}`.
    - `diffusion`: for *diagonal* noise (each state driven by its own Brownian
      motion), one expression per state; for *general* noise, a sympy
      `Matrix` with one row per state and one column per Brownian motion; for
      *scalar* noise (one Brownian motion shared by all states), one
      expression per state with `noise="scalar"`. A single expression is
      accepted for a one-state SDE.
    - `states`: the states (from [`states`][symml.states]); optional when
      `drift` is a mapping.
    - `parameters`: `{symbol: value}` or `{symbol: trainable(initial)}`, as in
      [`Model`][symml.Model].
    - `noise`: `"diagonal"`, `"general"` or `"scalar"`; by default inferred
      from the shape of `diffusion` (a list: diagonal, a matrix: general). When
      given, the shape of `diffusion` must match it.
    - `calculus`: `"ito"` (the default) or `"stratonovich"`: how the
      stochastic integral is read. Simulating with a solver of the other
      calculus converts the drift symbolically, so every solver converges to
      the SDE as declared.

    **Attributes:** `states`, `state_names`, `independent` (the time), `drift`
    (a tuple of expressions), `diffusion` (an `n × m` sympy matrix, diagonal
    noise stored as its diagonal matrix), `noise`, `n_noise` (`m`), `calculus`,
    `unknowns`, `parameters`, `trainable_parameters`, `fixed_parameters`, and
    `equations`: the drift as ODEs `Eq(x'(t), μ)`, the deterministic part of
    the system, which is what [`discover`][symml.discover] rebuilds.

    Validates on construction: a mistake raises [`ModelError`][symml.ModelError]
    naming the offending term.
    """

    _kind = "an SDE model"

    def _declare(
        self,
        drift,
        diffusion,
        *,
        states=None,
        parameters: Mapping | None = None,
        noise: str | None = None,
        calculus: str = "ito",
    ):
        self.states, drift = self._check_drift(drift, states)
        n = len(self.states)
        (t,) = self.variables = self._check_states()
        self.independent = t
        self.state_vector = self.states
        self.state_names = tuple(s.func.__name__ for s in self.states)
        self.orders = {s: 1 for s in self.states}
        self.drift = tuple(
            _scalar_expr(e, f"The drift of `{s}`")
            for s, e in zip(self.state_names, drift, strict=True)
        )
        self.noise, self.diffusion = self._check_diffusion(diffusion, noise, n)
        self.n_noise = self.diffusion.shape[1]
        if calculus not in _CALCULUS:
            raise ModelError(
                f"`calculus` is {calculus!r}; expected 'ito' or 'stratonovich'."
            )
        self.calculus = calculus
        self.parameters = _check_parameters(parameters, allow_trainable=True)
        # What the rest of symml reads from a model with states.
        self.fields = ()
        self.conditions = ()
        self.domain = {}
        self.boundary = None
        self.equations = tuple(
            sp.Eq(s.diff(t), mu, evaluate=False)
            for s, mu in zip(self.states, self.drift, strict=True)
        )
        self.rhs = self.drift
        self._check_terms()

    # -- validation -------------------------------------------------------------

    @staticmethod
    def _check_drift(drift, states):
        if isinstance(drift, Mapping):
            keys = list(drift)
            if states is None:
                states = keys
            elif set(keys) != set(states):
                raise ModelError(
                    f"The drift is given for {list(map(str, keys))} but `states` is "
                    f"{list(map(str, states))}; give one drift per state."
                )
            states = tuple(states)
            drift = [drift[s] for s in states]
        else:
            if isinstance(drift, sp.Basic):
                drift = [drift]
            drift = list(drift)
            if states is None:
                raise ModelError(
                    "An `SDE` with the drift given as a list needs `states=[...]` "
                    "in the same order (or give the drift as `{state: expression}`)."
                )
            if isinstance(states, sp.Basic):
                states = [states]
            states = tuple(states)
            if len(drift) != len(states):
                raise ModelError(
                    f"The drift has {len(drift)} entries for {len(states)} states "
                    f"({', '.join(map(str, states))}); give one drift per state."
                )
        if not states:
            raise ModelError("An `SDE` needs at least one state.")
        for s in states:
            if not isinstance(s, StateFunction):
                raise ModelError(
                    f"`{s}` is not a declared state; declare states with "
                    "`symml.states('x y', t)`."
                )
        if len(set(states)) != len(states):
            raise ModelError(f"`states` lists a state twice: {states}.")
        return states, drift

    def _check_states(self):
        variables = {s.args for s in self.states}
        if len(variables) > 1:
            raise ModelError(
                "All states of an `SDE` must depend on the same time variable; got "
                f"{sorted(map(str, variables))}."
            )
        variables = next(iter(variables))
        if len(variables) != 1:
            raise ModelError(
                f"The states of an `SDE` depend on one variable (time); "
                f"`{self.states[0]}` depends on {len(variables)}. For a PDE in many "
                "dimensions, see `symml.ParabolicPDE`."
            )
        return variables

    @staticmethod
    def _check_diffusion(diffusion, noise, n):
        if noise is not None and noise not in _NOISE:
            raise ModelError(
                f"`noise` is {noise!r}; expected 'diagonal', 'general' or 'scalar'."
            )
        if isinstance(diffusion, sp.MatrixExpr) and not isinstance(
            diffusion, sp.MatrixBase
        ):
            raise ModelError(
                f"The diffusion `{diffusion}` is a symbolic matrix expression; an "
                "`SDE` takes an explicit `sympy.Matrix` (one row per state, one "
                "column per Brownian motion) or a list of expressions."
            )
        nested = (
            isinstance(diffusion, Sequence)
            and not isinstance(diffusion, str)
            and any(isinstance(r, Sequence | sp.MatrixBase) for r in diffusion)
        )
        if isinstance(diffusion, sp.MatrixBase) or nested:
            try:
                matrix = sp.ImmutableMatrix(diffusion)
            except (ValueError, TypeError):
                raise ModelError(
                    f"The diffusion {diffusion!r} is not a matrix: its rows have "
                    "different lengths. Give one row per state and one column per "
                    "Brownian motion."
                ) from None
            shape = matrix.shape
            if noise in ("diagonal", "scalar"):
                raise ModelError(
                    f"`noise={noise!r}` takes the diffusion as a list of {n} "
                    f"expressions (one per state), but a {shape[0]}×{shape[1]} "
                    "matrix was given; pass a list, or `noise='general'` for a "
                    "matrix."
                )
            if shape[0] != n:
                raise ModelError(
                    f"The diffusion is a {shape[0]}×{shape[1]} matrix but the SDE has "
                    f"{n} state(s); expected {n} rows (one per state) and one column "
                    "per Brownian motion."
                )
            return "general", matrix
        entries = (
            [diffusion]
            if isinstance(diffusion, sp.Basic | int | float)
            else (list(diffusion))
        )
        if noise == "general":
            raise ModelError(
                f"`noise='general'` takes the diffusion as a matrix with {n} rows "
                "(one per state) and one column per Brownian motion; got a list of "
                f"{len(entries)} expression(s). Pass a `sympy.Matrix`, or "
                "`noise='diagonal'` for one Brownian motion per state."
            )
        if len(entries) != n:
            kind = noise or "diagonal"
            raise ModelError(
                f"With {kind} noise the diffusion needs one expression per state "
                f"({n}); got {len(entries)}. For general noise give a "
                f"`sympy.Matrix` with {n} rows and one column per Brownian motion."
            )
        entries = [
            _scalar_expr(e, f"Entry {i} of the diffusion")
            for i, e in enumerate(entries)
        ]
        if noise == "scalar":
            return "scalar", sp.ImmutableMatrix(n, 1, entries)
        return "diagonal", sp.ImmutableMatrix(sp.diag(*entries))

    def _check_terms(self):
        t = self.independent
        exprs = [*self.drift, *self.diffusion]
        found: dict = {}
        for e in exprs:
            for f in e.atoms(AppliedUndef):
                if isinstance(f, StateFunction):
                    if f not in self.states:
                        raise ModelError(
                            f"`{f}` appears in the SDE but is not one of its states "
                            f"({', '.join(self.state_names)}); add it to `states=` "
                            "with a drift and a diffusion."
                        )
                elif isinstance(f, UnknownOutput):
                    found.setdefault(f.unknown.name, {})[id(f.unknown)] = f.unknown
                else:
                    raise ModelError(
                        f"The function `{f}` is not declared. Declare states with "
                        "`symml.states` and unknown terms with `symml.Unknown`."
                    )
            for d in e.atoms(sp.Derivative):
                if isinstance(d.expr, StateFunction):
                    raise ModelError(
                        f"The SDE contains `{d}`, a derivative of a state; the drift "
                        "and the diffusion are functions of the states, not of "
                        "their derivatives."
                    )
        self.unknowns = _one_unknown_per_name(found)
        names = [*self.state_names, *(u.name for u in self.unknowns)]
        names += [str(p) for p in self.parameters]
        _check_distinct(names, "state, unknown or parameter")
        if t in self.parameters:
            raise ModelError(
                f"`{t}` is the time variable of the SDE and also given in "
                "`parameters=`; remove it from `parameters=` or rename it."
            )
        allowed = {t, *self.parameters}
        for what, e in [
            *(
                (f"the drift of `{s}`", e)
                for s, e in zip(self.state_names, self.drift, strict=True)
            ),
            *(
                (f"the diffusion entry {ij}", self.diffusion[ij])
                for ij in _indices(self.diffusion)
            ),
        ]:
            _check_declared(e, allowed, f"{what} (`{e}`)")
        for u in self.unknowns:
            for inp in u.inputs:
                bad = [
                    f for f in inp.atoms(AppliedUndef) if f not in self.states
                ] + list(inp.atoms(sp.Derivative))
                extra = inp.free_symbols - allowed
                if bad or extra:
                    raise ModelError(
                        f"The input `{inp}` of unknown `{u.name}` must be an "
                        "expression of the states, the time and parameters; it "
                        f"contains {', '.join(map(str, bad or sorted(extra, key=str)))}"
                        "."
                    )

    # -- derived forms ----------------------------------------------------------

    @property
    def additive(self) -> bool:
        """Whether the noise is additive: the diffusion depends on no state
        (nor on an unknown, whose value may depend on the states)."""
        return not any(
            e.atoms(AppliedUndef) or e.atoms(sp.Derivative) for e in self.diffusion
        )

    def drift_for(self, calculus: str) -> tuple[sp.Expr, ...]:
        r"""The drift that gives the same process read in `calculus`.

        From Itô to Stratonovich, $\mu^S_i = \mu_i - \tfrac12 \sum_{j,k}
        \sigma_{kj}\,\partial_k \sigma_{ij}$ (and the opposite sign back);
        derivatives of unknowns stay symbolic and are lowered like any other
        derivative of a network.
        """
        if calculus not in _CALCULUS:
            raise ModelError(
                f"`calculus` is {calculus!r}; expected 'ito' or 'stratonovich'."
            )
        if calculus == self.calculus or self.additive:
            return self.drift
        sign = -1 if calculus == "stratonovich" else 1
        sigma = self.diffusion
        out = []
        for i, mu in enumerate(self.drift):
            correction = sum(
                (
                    sigma[k, j] * sp.diff(sigma[i, j], s)
                    for j in range(self.n_noise)
                    for k, s in enumerate(self.states)
                ),
                sp.Integer(0),
            )
            out.append(mu + sign * correction / 2)
        return tuple(out)

    def commutative(self) -> bool:
        """Whether the noise is provably commutative
        ($L^{j_1}\\sigma_{\\cdot j_2} = L^{j_2}\\sigma_{\\cdot j_1}$ with
        $L^j = \\sum_k \\sigma_{kj}\\partial_k$), as Milstein's method needs.
        Diagonal noise whose entry `i` depends on state `i` only is; unknown
        terms in the diffusion make it unprovable, hence `False`."""
        sigma, m = self.diffusion, self.n_noise
        for j1 in range(m):
            for j2 in range(j1 + 1, m):
                for i in range(len(self.states)):
                    diff = sum(
                        (
                            sigma[k, j1] * sp.diff(sigma[i, j2], s)
                            - sigma[k, j2] * sp.diff(sigma[i, j1], s)
                            for k, s in enumerate(self.states)
                        ),
                        sp.Integer(0),
                    )
                    if sp.simplify(diff.doit()) != 0:
                        return False
        return True

    def replace(self, expressions: Mapping, *, parameters: Mapping | None = None):
        """A new `SDE` with terms replaced, e.g. each unknown output by the
        expression [`discover`][symml.discover] recovered
        (`sde.replace(found.expressions)`).

        **Arguments:**

        - `expressions`: `{expression: replacement}`, e.g. `{U[0]: -0.9*x*y}`.
        - `parameters`: the parameters of the new SDE (default: the same, with
          parameters that no longer appear dropped).
        """
        mapping = {sp.sympify(k): sp.sympify(v) for k, v in expressions.items()}
        return self.map_expressions(
            lambda e: e.xreplace(mapping), parameters=parameters
        )

    def map_expressions(
        self, transform: Callable[[sp.Expr], sp.Expr], *, parameters=None
    ) -> "SDE":
        """A new `SDE` with `transform` applied to every drift and diffusion
        entry (how [`Discovery.model`][symml.Discovery] puts recovered
        expressions in place of the unknown terms); `parameters` as in
        [`replace`][symml.SDE.replace]."""
        drift = [transform(e) for e in self.drift]
        sigma = self.diffusion.applyfunc(transform)
        if self.noise == "diagonal":
            diffusion = [sigma[i, i] for i in range(sigma.shape[0])]
        elif self.noise == "scalar":
            diffusion = list(sigma[:, 0])
        else:
            diffusion = sigma
        if parameters is None:
            used = set().union(*(e.free_symbols for e in [*drift, *sigma]))
            parameters = {p: v for p, v in self.parameters.items() if p in used}
        return SDE(
            drift,
            diffusion,
            states=self.states,
            parameters=parameters,
            noise=self.noise,
            calculus=self.calculus,
        )

    def __repr__(self) -> str:
        terms = "; ".join(
            f"d{s} = ({mu}) dt + ..."
            for s, mu in zip(self.state_names, self.drift, strict=True)
        )
        return f"SDE({self.noise} noise, {self.calculus}: {terms})"


def _indices(matrix: sp.MatrixBase):
    return [(i, j) for i in range(matrix.shape[0]) for j in range(matrix.shape[1])]


class ParabolicPDE(_Declared):
    r"""A semilinear parabolic PDE with a terminal condition, in `d` dimensions:

    $$u_t + \tfrac12 \operatorname{Tr}(\sigma\sigma^\top \nabla^2 u)
      + \mu \cdot \nabla u + f(t, x, u, \nabla u) = 0, \qquad u(T, x) = g(x),$$

    to be solved for $u(0, x_0)$ by the deep BSDE method
    (`symml.fit(pde, method=symml.DeepBSDE(...))`).

    The declaration does not depend on `d`: `x` and $\nabla u$ are sympy
    `MatrixSymbol`s of shape `(d, 1)`, and every term is written in vector
    notation (`sympy.DotProduct(x, x)`, `A * x`, `sympy.Identity(d)`), which
    sympy keeps unexpanded, so `d = 1000` costs the same as `d = 2`.

    **Arguments:**

    - `u`: the sympy `Symbol` standing for the solution's value in `f`.
    - `variables`: `(t, x)`: the time `Symbol` and the space `MatrixSymbol`
      of shape `(d, 1)`.
    - `terminal`: $g(x)$, a scalar expression of `x` (and parameters).
    - `horizon`: the final time $T > 0$.
    - `x0`: the point where $u(0, \cdot)$ is wanted: a number (every
      coordinate) or `d` numbers.
    - `drift`: $\mu(t, x)$: `0` or a `(d, 1)` matrix expression.
    - `diffusion`: $\sigma(t, x)$: a scalar expression `s` (meaning $s I$) or a
      `(d, m)` matrix expression.
    - `nonlinearity`: $f(t, x, u, \nabla u)$, a scalar expression.
    - `gradient`: the `(d, 1)` `MatrixSymbol` standing for $\nabla u$ in
      `nonlinearity` (needed only if `nonlinearity` uses it).
    - `parameters`: `{symbol: value}` of the known constants.

    **Example** (the Hamilton–Jacobi–Bellman equation of Han, Jentzen & E):

    ```python
    t, u, lam = sp.symbols("t u lambda")
    x, Du = sp.MatrixSymbol("x", 100, 1), sp.MatrixSymbol("Du", 100, 1)
    pde = sm.ParabolicPDE(
        u, (t, x), terminal=sp.log((1 + sp.DotProduct(x, x)) / 2), horizon=1,
        x0=0, diffusion=sp.sqrt(2), nonlinearity=-lam * sp.DotProduct(Du, Du),
        gradient=Du, parameters={lam: 1.0},
    )
    ```
    """

    _kind = "a parabolic PDE"

    def _declare(
        self,
        u: sp.Symbol,
        variables,
        *,
        terminal,
        horizon: float,
        x0,
        drift=0,
        diffusion=1,
        nonlinearity=0,
        gradient: sp.MatrixSymbol | None = None,
        parameters: Mapping | None = None,
    ):
        if not isinstance(u, sp.Symbol):
            raise ModelError(
                f"`u` is {u!r}; expected the sympy `Symbol` that stands for the "
                "solution's value, e.g. `u = sympy.Symbol('u')`."
            )
        try:
            t, x = variables
        except (TypeError, ValueError):
            raise ModelError(
                f"`variables` is {variables!r}; expected `(t, x)` with `t` a Symbol "
                "and `x` a `sympy.MatrixSymbol('x', d, 1)`."
            ) from None
        if not isinstance(t, sp.Symbol):
            raise ModelError(f"The time variable `{t}` must be a sympy Symbol.")
        if not isinstance(x, sp.MatrixSymbol) or x.shape[1] != 1:
            raise ModelError(
                f"The space variable `{x}` must be a column vector "
                "`sympy.MatrixSymbol('x', d, 1)`; got "
                f"{type(x).__name__} of shape {getattr(x, 'shape', None)}."
            )
        d = x.shape[0]
        if not (isinstance(d, int | sp.Integer) and int(d) >= 1):
            raise ModelError(
                f"The dimension of `{x}` is {d}; declare it with a positive integer, "
                "e.g. `sympy.MatrixSymbol('x', 100, 1)`."
            )
        self.u, self.t, self.x, self.dim = u, t, x, int(d)
        if gradient is not None and (
            not isinstance(gradient, sp.MatrixSymbol) or gradient.shape != x.shape
        ):
            raise ModelError(
                f"`gradient` is `{gradient}` of shape "
                f"{getattr(gradient, 'shape', None)}; expected a "
                f"`sympy.MatrixSymbol` of shape ({self.dim}, 1) standing for the "
                "gradient of u."
            )
        self.gradient = gradient
        self.parameters = _check_parameters(parameters, allow_trainable=False)
        clash = {u, t} & set(self.parameters)
        if clash:
            raise ModelError(
                f"`{clash.pop()}` is a variable of the PDE and also given in "
                "`parameters=`; remove it from `parameters=`."
            )
        try:
            self.horizon = float(horizon)
        except (TypeError, ValueError):
            raise ModelError(
                f"`horizon` is {horizon!r}; expected a number T > 0."
            ) from None
        if not (math.isfinite(self.horizon) and self.horizon > 0):
            raise ModelError(f"`horizon` is {self.horizon}; expected a finite T > 0.")
        self.x0 = self._check_x0(x0)
        self.terminal = self._check_scalar(
            terminal, "The terminal condition g(x)", allowed={x}
        )
        self.nonlinearity = self._check_scalar(
            nonlinearity,
            "The nonlinearity f(t, x, u, ∇u)",
            allowed={t, x, u} | ({gradient} if gradient is not None else set()),
        )
        self.drift = self._check_drift(drift)
        self.diffusion = self._check_diffusion(diffusion)
        self.n_noise = self.dim if self.scalar_diffusion else self.diffusion.shape[1]
        # What every `Model` has. The solution is what the method learns, so
        # there are no unknown terms; the terminal condition is `terminal`.
        self.variables = (t, x)
        self.unknowns = ()
        self.conditions = ()
        self.domain = {t: (0.0, self.horizon)}
        self.equations = (self.equation,)

    # -- validation -------------------------------------------------------------

    def _check_x0(self, x0) -> tuple[float, ...]:
        try:
            if isinstance(x0, int | float | sp.Number):
                values = (float(x0),) * self.dim
            else:
                values = tuple(float(v) for v in x0)
        except (TypeError, ValueError):
            raise ModelError(
                f"`x0` is {x0!r}; expected a number or {self.dim} numbers."
            ) from None
        if len(values) != self.dim:
            raise ModelError(
                f"`x0` has {len(values)} entries; the PDE is in {self.dim} "
                "dimensions. Give one number per dimension, or a single number."
            )
        if not all(math.isfinite(v) for v in values):
            raise ModelError("`x0` has non-finite entries; give finite numbers.")
        return values

    def _symbols_of(self, expr) -> set:
        return set(expr.free_symbols) | set(expr.atoms(sp.MatrixSymbol))

    def _check_allowed(self, expr, what: str, allowed: set) -> None:
        allowed = allowed | set(self.parameters)
        extra = {
            s
            for s in self._symbols_of(expr) - allowed
            # `x[i, 0]` reports `x` and the index among its free symbols.
            if not isinstance(s, sp.Dummy)
        }
        if self.t in extra:
            may = ", ".join(f"`{a}`" for a in sorted(allowed, key=str))
            raise ModelError(
                f"{what} is `{expr}`, which depends on the time `{self.t}`; it may "
                f"depend only on {may}. A terminal condition is a function of x "
                "at t = T: substitute t = T."
            )
        if extra:
            names = ", ".join(f"`{s}`" for s in sorted(extra, key=str))
            raise ModelError(
                f"{what} contains {names}, which it may not: it is an expression "
                f"of {', '.join(f'`{a}`' for a in sorted(allowed, key=str))} and "
                "parameters. Give constants a value in `parameters=`"
                + (
                    ", and `gradient=` for the MatrixSymbol standing for ∇u."
                    if any(isinstance(s, sp.MatrixSymbol) for s in extra)
                    else "."
                )
            )
        for f in expr.atoms(AppliedUndef):
            raise ModelError(
                f"{what} contains the function `{f}`; the deep BSDE method learns "
                "u itself, so write the PDE's terms with `u` and its gradient "
                "symbol only."
            )

    def _check_scalar(self, value, what: str, allowed: set) -> sp.Expr:
        expr = sp.sympify(value)
        if isinstance(expr, sp.MatrixExpr | sp.MatrixBase):
            raise ModelError(
                f"{what} is `{expr}`, a matrix of shape {expr.shape}; expected a "
                "scalar. Write inner products as `sympy.DotProduct(a, b)`."
            )
        if not isinstance(expr, sp.Expr):
            raise ModelError(
                f"{what} is {value!r}; expected a scalar sympy expression."
            )
        self._check_allowed(expr, what, allowed)
        return expr

    def _check_drift(self, drift):
        expr = sp.sympify(drift)
        if expr == 0:
            return sp.ZeroMatrix(self.dim, 1)
        if not isinstance(expr, sp.MatrixExpr | sp.MatrixBase):
            raise ModelError(
                f"The drift μ is `{expr}`, a scalar; expected a ({self.dim}, 1) column "
                "vector expression (e.g. `a * x`), or 0."
            )
        if tuple(expr.shape) != (self.dim, 1):
            raise ModelError(
                f"The drift μ has shape {tuple(expr.shape)}; expected ({self.dim}, 1),"
                " one entry per dimension."
            )
        self._check_allowed(expr, "The drift μ(t, x)", {self.t, self.x})
        return expr

    def _check_diffusion(self, diffusion):
        expr = sp.sympify(diffusion)
        if not isinstance(expr, sp.MatrixExpr | sp.MatrixBase):
            if not isinstance(expr, sp.Expr):
                raise ModelError(
                    f"The diffusion σ is {diffusion!r}; expected a scalar (σ = s·I) "
                    f"or a ({self.dim}, m) matrix expression."
                )
            if expr == 0:
                raise ModelError(
                    "The diffusion σ is 0; the deep BSDE method needs noise. Give "
                    "a nonzero scalar (σ = s·I) or a matrix."
                )
            self._check_allowed(expr, "The diffusion σ(t, x)", {self.t, self.x})
            return expr
        shape = tuple(expr.shape)
        if shape[0] != self.dim or shape[1] == 1 and self.dim > 1:
            raise ModelError(
                f"The diffusion σ has shape {shape}; expected a ({self.dim}, m) matrix "
                f"(one row per dimension, one column per Brownian motion, m ≥ 2 when "
                f"d ≥ 2), or a scalar s meaning s·I. For a diagonal σ with entries "
                "v, write `sympy.DiagMatrix(v)`."
            )
        self._check_allowed(expr, "The diffusion σ(t, x)", {self.t, self.x})
        return expr

    @property
    def scalar_diffusion(self) -> bool:
        """Whether σ is a scalar times the identity."""
        return not isinstance(self.diffusion, sp.MatrixExpr | sp.MatrixBase)

    @property
    def equation(self) -> sp.Eq:
        """The PDE as one sympy equation in vector notation (for printing)."""
        d = self.dim
        hess = sp.MatrixSymbol(f"H_{self.u}", d, d)
        grad = self.gradient or sp.MatrixSymbol(f"D_{self.u}", d, d)
        sigma = (
            self.diffusion * sp.Identity(d) if self.scalar_diffusion else self.diffusion
        )
        second = sp.Trace(sigma * sigma.T * hess) / 2
        first = (
            sp.DotProduct(self.drift, grad) if self.drift != sp.ZeroMatrix(d, 1) else 0
        )
        lhs = sp.Derivative(self.u, self.t, evaluate=False) + second + first
        return sp.Eq(lhs + self.nonlinearity, 0, evaluate=False)

    def __repr__(self) -> str:
        return (
            f"ParabolicPDE(d={self.dim}, T={self.horizon:g}, g={self.terminal}, "
            f"f={self.nonlinearity})"
        )
