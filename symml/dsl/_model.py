"""`Model`: equations, conditions, domain and parameter values, validated."""

import math
from collections.abc import Mapping

import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import ModelError
from ._symbols import FieldFunction, StateFunction, Trainable
from ._unknown import UnknownOutput

_BOUNDARIES = ("periodic", "dirichlet", "neumann")


def _as_equation(eq, i: int) -> sp.Eq:
    # Evaluate unevaluated derivatives and integrals now, while states are still
    # functions: `Derivative(x**2, t)` is an ODE in `x` only once expanded, and
    # lowering would otherwise see it with `x` replaced by a plain value.
    if isinstance(eq, sp.Equality):
        return sp.Eq(eq.lhs.doit(deep=True), eq.rhs.doit(deep=True), evaluate=False)
    if isinstance(eq, sp.Basic) and not isinstance(eq, sp.logic.boolalg.Boolean):
        return sp.Eq(eq.doit(deep=True), 0, evaluate=False)
    raise ModelError(
        f"Equation {i} is {eq!r} of type {type(eq).__name__}; expected a sympy "
        "`Eq(lhs, rhs)` or an expression meaning `expr = 0`."
    )


def _describe(eq: sp.Eq) -> str:
    return f"{eq.lhs} = {eq.rhs}"


def _functions(expr) -> set[AppliedUndef]:
    return set(expr.atoms(AppliedUndef))


def _state_name(state: sp.Expr, order: int, variable: sp.Symbol) -> str:
    return state.func.__name__ + ("_" + str(variable) * order if order else "")


class Model:
    """A system of equations with some terms possibly unknown.

    **Arguments:**

    - `equations`: sympy `Eq`s (or expressions meaning `= 0`). For states
      (declared with [`states`][symml.states]), the equations must be linear in
      each state's highest derivative; symml solves for them and reduces higher
      order ODEs to first order. For fields (declared with
      [`Field`][symml.Field]) they are residuals of a PDE.
    - `conditions`: initial and boundary conditions (`Eq(u.subs(t, 0), ...)`),
      used by physics-informed fits.
    - `parameters`: `{symbol: value}` for known values, or
      `{symbol: trainable(initial)}` for values to learn. Every symbol in the
      equations that is not an independent variable needs an entry.
    - `domain`: `{variable: (lower, upper)}` for the independent variables of a
      PDE.
    - `boundary`: for method-of-lines PDEs, `"periodic"`, `"dirichlet"` or
      `"neumann"` (or a dict per spatial variable).

    The model validates on construction: a mistake raises
    [`ModelError`][symml.ModelError] naming the offending term.
    """

    def __init__(
        self,
        equations,
        *,
        conditions=(),
        parameters: Mapping | None = None,
        domain: Mapping | None = None,
        boundary=None,
    ):
        if isinstance(equations, sp.Basic):
            equations = [equations]
        self.equations = tuple(_as_equation(e, i) for i, e in enumerate(equations))
        if not self.equations:
            raise ModelError("A `Model` needs at least one equation.")
        self.conditions = tuple(
            _as_equation(c, i) for i, c in enumerate(conditions or ())
        )
        self.parameters = self._check_parameters(parameters or {})
        self.domain = self._check_domain(domain or {})
        self._classify_functions()
        self._check_symbols()
        self.boundary = self._check_boundary(boundary)
        if self.fields:
            self.kind = "pinn"
            self.rhs = ()
            self.state_vector = ()
        elif len(self.variables) == 1:
            self.kind = "ode"
            self._solve_first_order()
        else:
            self.kind = "pde"
            self._solve_evolution()

    # -- validation -----------------------------------------------------------

    @staticmethod
    def _check_parameters(parameters: Mapping) -> dict[sp.Symbol, float | Trainable]:
        out = {}
        for key, value in parameters.items():
            sym = sp.Symbol(key) if isinstance(key, str) else key
            if not isinstance(sym, sp.Symbol):
                raise ModelError(
                    f"Parameter keys must be sympy Symbols (or names); got {key!r}."
                )
            if sym in out:
                raise ModelError(f"Parameter `{sym}` is given twice.")
            if not isinstance(value, Trainable):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise ModelError(
                        f"Parameter `{sym}` has value {value!r}; expected a real "
                        "number, or `symml.trainable(initial)` to learn it."
                    ) from None
                if not math.isfinite(value):
                    raise ModelError(
                        f"Parameter `{sym}` has the non-finite value {value}; give "
                        "a finite number."
                    )
            out[sym] = value
        return out

    @staticmethod
    def _check_domain(domain: Mapping) -> dict[sp.Symbol, tuple[float, float]]:
        out = {}
        for var, bounds in domain.items():
            if not isinstance(var, sp.Symbol):
                raise ModelError(
                    f"Domain keys must be independent variables (Symbols); got {var!r}."
                )
            try:
                lo, hi = (float(b) for b in bounds)
            except (TypeError, ValueError):
                raise ModelError(
                    f"The domain of `{var}` must be a pair (lower, upper) of numbers;"
                    f" got {bounds!r}."
                ) from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ModelError(
                    f"The domain of `{var}` is ({lo}, {hi}); it must be finite with "
                    "lower < upper."
                )
            out[var] = (lo, hi)
        return out

    def _classify_functions(self):
        exprs = [*self.equations, *self.conditions]
        states, fields, unknowns = {}, {}, {}
        for expr in exprs:
            for f in _functions(expr):
                if isinstance(f, StateFunction):
                    states.setdefault(f.func.__name__, []).append(f)
                elif isinstance(f, FieldFunction):
                    fields.setdefault(f.func.__name__, []).append(f)
                elif isinstance(f, UnknownOutput):
                    unknowns.setdefault(f.unknown.name, {})[id(f.unknown)] = f.unknown
                else:
                    raise ModelError(
                        f"The function `{f}` is not declared. Declare states with "
                        "`symml.states`, fields with `symml.Field` and unknown "
                        "terms with `symml.Unknown`; a known function of time can be "
                        "written as a sympy expression of the independent variable."
                    )
        for name, objs in unknowns.items():
            if len(objs) > 1:
                raise ModelError(
                    f"Two different `Unknown`s are named {name!r}; give each "
                    "unknown term its own name."
                )
        # States keep their first-seen order in the equations.
        self.unknowns = tuple(next(iter(o.values())) for o in unknowns.values())
        self.states = tuple(self._canonical(states, "state"))
        self.fields = tuple(self._canonical(fields, "field"))
        names = [f.func.__name__ for f in (*self.states, *self.fields)]
        names += [u.name for u in self.unknowns]
        names += [str(p) for p in self.parameters]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ModelError(
                f"The name(s) {sorted(dup)} are used for more than one state, field, "
                "unknown or parameter; give each its own name."
            )
        if self.states and self.fields:
            raise ModelError(
                "A model mixes states and fields; use states for method-of-lines or "
                "ODE models and fields for physics-informed networks, not both."
            )
        if not self.states and not self.fields:
            raise ModelError(
                "The equations contain no declared state or field; declare them with "
                "`symml.states(...)` or `symml.Field(...)`."
            )
        variables = {f.args for f in (*self.states, *self.fields)}
        if len(variables) > 1:
            raise ModelError(
                "All states and fields must depend on the same independent variables;"
                f" got {sorted(map(str, variables))}."
            )
        self.variables = next(iter(variables))
        clash = [p for p in self.parameters if str(p) in map(str, self.variables)]
        if clash:
            raise ModelError(
                f"`{clash[0]}` is an independent variable of the model and also "
                "given in `parameters=`; remove it from `parameters=` or rename "
                "the parameter."
            )
        for eq in self.equations:
            for integral in eq.atoms(sp.Integral):
                if any(isinstance(f, StateFunction) for f in _functions(integral)):
                    raise ModelError(
                        f"The equation `{_describe(eq)}` contains the integral "
                        f"`{integral}` of a state; integro-differential equations "
                        "are not supported. Introduce a new state for the integral "
                        "(its derivative is the integrand)."
                    )

    def _canonical(self, found: dict, what: str):
        """One applied function per name: the one on the declared variables."""
        out = []
        for name, fs in found.items():
            full = [f for f in fs if all(isinstance(a, sp.Symbol) for a in f.args)]
            if not full:
                raise ModelError(
                    f"The {what} `{name}` appears only evaluated at points ({fs[0]});"
                    " it must also appear as a function of its variables."
                )
            out.append(full[0])
        # Order: the state differentiated in the first equation first, and so
        # on (so `[Eq(x', ...), Eq(y', ...)]` gives (x, y) whatever sympy's
        # ordering of terms), then anything else by first appearance.
        order = {}
        exprs = (*self.equations, *self.conditions)
        for eq in exprs:
            for d in sp.preorder_traversal(eq):
                if isinstance(d, sp.Derivative) and isinstance(d.expr, AppliedUndef):
                    order.setdefault(d.expr.func.__name__, len(order))
                    break
        for eq in exprs:
            for f in sp.preorder_traversal(eq):
                if isinstance(f, AppliedUndef):
                    order.setdefault(f.func.__name__, len(order))
        return sorted(out, key=lambda f: order[f.func.__name__])

    def _check_symbols(self):
        allowed = set(self.variables_all()) | set(self.parameters)
        for eq in (*self.equations, *self.conditions):
            extra = eq.free_symbols - allowed
            if extra:
                names = ", ".join(f"`{s}`" for s in sorted(extra, key=str))
                raise ModelError(
                    f"The symbol(s) {names} in `{_describe(eq)}` are not declared: "
                    "give each a value (or `symml.trainable(initial)`) in "
                    "`parameters=`, or make it an independent variable of a state."
                )
        for u in self.unknowns:
            for inp in u.inputs:
                extra = inp.free_symbols - allowed
                if extra:
                    raise ModelError(
                        f"The input `{inp}` of unknown `{u.name}` uses undeclared "
                        f"symbol(s) {sorted(map(str, extra))}; inputs must be "
                        "expressions of the states, independent variables and "
                        "parameters."
                    )

    def variables_all(self):
        """The independent variables (for a model with states or fields)."""
        fs = self.states or self.fields
        return fs[0].args if fs else ()

    def _check_boundary(self, boundary):
        if boundary is None:
            return None
        spatial = [v for v in self.variables if v in self.domain]
        items = (
            boundary.items()
            if isinstance(boundary, Mapping)
            else ((v, boundary) for v in spatial)
        )
        out = {}
        for var, kind in items:
            if kind not in _BOUNDARIES:
                raise ModelError(
                    f"Boundary {kind!r} for `{var}` is not supported; use one of "
                    f"{', '.join(_BOUNDARIES)}."
                )
            out[var] = kind
        return out

    # -- ODEs -----------------------------------------------------------------

    def _highest(self, variable):
        """{state: highest order of d/d variable} over the equations."""
        orders = {s: 0 for s in self.states}
        for eq in self.equations:
            for d in eq.atoms(sp.Derivative):
                if d.expr in orders:
                    n = sum(c for v, c in d.variable_count if v == variable)
                    orders[d.expr] = max(orders[d.expr], n)
        return orders

    def _solve_for(self, unknowns: list[sp.Expr], what: str) -> list[sp.Expr]:
        if len(self.equations) != len(unknowns):
            raise ModelError(
                f"The model has {len(self.equations)} equation(s) for "
                f"{len(unknowns)} {what} ({', '.join(map(str, unknowns))}); give "
                "exactly one equation per state."
            )
        residuals = [eq.lhs - eq.rhs for eq in self.equations]
        symbols = [sp.Dummy(f"d{i}") for i in range(len(unknowns))]
        subs = dict(zip(unknowns, symbols, strict=True))
        replaced = [r.xreplace(subs) for r in residuals]
        for r, eq in zip(replaced, self.equations, strict=True):
            for s in symbols:
                if s in r.free_symbols and not sp.diff(r, s, 2).is_zero:
                    raise ModelError(
                        f"The equation `{_describe(eq)}` is not linear in "
                        f"`{unknowns[symbols.index(s)]}`; symml solves equations "
                        "that are linear in each state's highest derivative. "
                        "Write it solved for that derivative."
                    )
        try:
            A, b = sp.linear_eq_to_matrix(replaced, symbols)
        except (sp.polys.polyerrors.PolynomialError, ValueError) as e:
            raise ModelError(
                f"The equations are not linear in {', '.join(map(str, unknowns))}: {e}"
            ) from None
        if A.is_diagonal():
            diag = [A[i, i] for i in range(A.rows)]
            for i, a in enumerate(diag):
                # simplify: a coefficient can be zero without looking zero.
                if sp.simplify(a) == 0:
                    raise ModelError(
                        f"No equation determines `{unknowns[i]}`; each state needs an"
                        " equation for its highest derivative."
                    )
            return [b[i] / diag[i] for i in range(A.rows)]
        if sp.simplify(A.det()) == 0:
            raise ModelError(
                f"The equations do not determine {', '.join(map(str, unknowns))} "
                "uniquely (the system is singular in them); check that each "
                "state has its own equation."
            )
        return list(A.LUsolve(b))

    def _solve_first_order(self):
        (t,) = self.variables
        self.independent = t
        orders = self._highest(t)
        for s, n in orders.items():
            if n == 0:
                raise ModelError(
                    f"The state `{s}` is never differentiated with respect to `{t}`;"
                    " every state needs a differential equation (algebraic states "
                    "are not supported: substitute them out)."
                )
        for eq in self.equations:
            if not any(d.expr in orders for d in eq.atoms(sp.Derivative)):
                raise ModelError(
                    f"The equation `{_describe(eq)}` contains no derivative of a "
                    f"state; it is not an ODE in the states "
                    f"{', '.join(map(str, self.states))}."
                )
        # First-order form: x, x', ..., x^(n-1) for each state.
        vector, names = [], []
        for s in self.states:
            for k in range(orders[s]):
                vector.append(s.diff(t, k) if k else s)
                names.append(_state_name(s, k, t))
        self.state_vector = tuple(vector)
        self.state_names = tuple(names)
        self.orders = orders
        # Before solving, so that an input containing a highest derivative is
        # reported as such, not as an equation nonlinear in that derivative.
        self._check_unknown_inputs()
        highest = [s.diff(t, orders[s]) for s in self.states]
        solved = self._solve_for(highest, "highest derivative(s)")
        rhs = []
        for s, sol in zip(self.states, solved, strict=True):
            for k in range(1, orders[s]):
                rhs.append(s.diff(t, k))
            rhs.append(sol)
        self.rhs = tuple(rhs)
        self._check_rhs()

    def _check_rhs(self):
        t = self.independent
        allowed = set(self.state_vector)
        for expr, target in zip(self.rhs, self.state_vector, strict=True):
            for d in expr.atoms(sp.Derivative):
                if d.expr in self.states and d not in allowed:
                    raise ModelError(
                        f"The equation for `{target.diff(t)}` involves `{d}`, which "
                        "is not a state of the first-order system; derivatives of "
                        "a state may appear only below its highest order."
                    )
                if isinstance(d.expr, StateFunction) and any(
                    v != t for v, _ in d.variable_count
                ):
                    raise ModelError(
                        f"`{d}` differentiates a state with respect to a variable "
                        f"other than `{t}`."
                    )

    # -- method-of-lines PDEs --------------------------------------------------

    def _solve_evolution(self):
        time = [v for v in self.variables if v not in self.domain]
        if len(time) != 1:
            raise ModelError(
                "A PDE model with states needs `domain=` for every spatial variable "
                f"and exactly one variable without a domain (time); the states "
                f"depend on {self.variables} and the domain covers "
                f"{tuple(self.domain)}."
            )
        (t,) = time
        self.independent = t
        self.spatial = tuple(v for v in self.variables if v != t)
        orders = self._highest(t)
        for s, n in orders.items():
            if n != 1:
                raise ModelError(
                    f"The state `{s}` appears with time derivative order {n}; "
                    "method-of-lines PDEs need exactly first order in time."
                )
        self.state_vector = self.states
        self.state_names = tuple(s.func.__name__ for s in self.states)
        self.orders = orders
        self._check_unknown_inputs()
        highest = [s.diff(t) for s in self.states]
        self.rhs = tuple(self._solve_for(highest, "time derivative(s)"))

    # -- unknowns -------------------------------------------------------------

    def _check_unknown_inputs(self):
        if self.kind == "pinn":
            return
        allowed = set(self.state_vector)
        for u in self.unknowns:
            for inp in u.inputs:
                for f in _functions(inp) | set(inp.atoms(sp.Derivative)):
                    if isinstance(f, sp.Derivative) and f in allowed:
                        continue
                    if isinstance(f, StateFunction) and f in allowed:
                        continue
                    if isinstance(f, sp.Derivative) and self.kind == "pde":
                        continue
                    raise ModelError(
                        f"The input `{inp}` of unknown `{u.name}` contains `{f}`, "
                        "which is not expressible in the states of the model; "
                        "inputs must be expressions of the states (and their "
                        "derivatives below the highest order), the independent "
                        "variables and parameters."
                    )

    # -- conveniences -----------------------------------------------------------

    @property
    def trainable_parameters(self) -> dict[sp.Symbol, float]:
        """`{symbol: initial value}` of the parameters to learn."""
        return {
            p: v.initial for p, v in self.parameters.items() if isinstance(v, Trainable)
        }

    @property
    def fixed_parameters(self) -> dict[sp.Symbol, float]:
        """`{symbol: value}` of the known parameters."""
        return {
            p: v for p, v in self.parameters.items() if not isinstance(v, Trainable)
        }

    def __repr__(self) -> str:
        eqs = "; ".join(_describe(e) for e in self.equations)
        return f"Model({self.kind}: {eqs})"
