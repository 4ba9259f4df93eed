"""Models: equations, conditions, domain and parameter values, validated.

`Model(...)` builds the kind of model its equations describe: an
[`ODEModel`][symml.ODEModel] (states of one variable), a
[`PDEModel`][symml.PDEModel] (states of time and space, discretised by the
method of lines) or a [`FieldModel`][symml.FieldModel] (fields represented by
networks and trained on their residuals). A model is immutable once built.
"""

import math
from collections.abc import Mapping

import sympy as sp
from sympy.core.function import AppliedUndef

from .. import _display
from .._errors import ModelError
from ._reduce import describe, first_order_form, highest_orders, reduced_rhs
from ._symbols import FieldFunction, StateFunction, Trainable
from ._unknown import UnknownOutput

_BOUNDARIES = ("periodic", "dirichlet", "neumann")


def _needs_doit(expr: sp.Basic) -> bool:
    """Whether `expr` holds an unevaluated derivative, integral or substitution
    that must be evaluated while states are still functions."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Integral, sp.Subs)):
            return True
        if isinstance(node, sp.Derivative) and not (
            isinstance(node.expr, AppliedUndef)
            and all(v in node.expr.args for v in node.variables)
        ):
            return True
    return False


def _evaluated(expr: sp.Basic) -> sp.Basic:
    # `Derivative(x**2, t)` is an ODE in `x` only once expanded, and lowering
    # would otherwise see it with `x` replaced by a plain value.
    return expr.doit(deep=True) if _needs_doit(expr) else expr


def _as_equation(eq, i: int, what: str = "Equation") -> sp.Eq:
    if isinstance(eq, sp.Equality):
        return sp.Eq(_evaluated(eq.lhs), _evaluated(eq.rhs), evaluate=False)
    if isinstance(eq, sp.Basic) and not isinstance(eq, sp.logic.boolalg.Boolean):
        return sp.Eq(_evaluated(eq), 0, evaluate=False)
    raise ModelError(
        f"{what} {i} is {eq!r} of type {type(eq).__name__}; expected a sympy "
        "`Eq(lhs, rhs)` or an expression meaning `expr = 0`."
    )


def _functions(expr) -> set[AppliedUndef]:
    return set(expr.atoms(AppliedUndef))


def _check_parameters(
    parameters, *, allow_trainable: bool = True
) -> dict[sp.Symbol, float | Trainable]:
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise ModelError(
            f"`parameters` must be a dict `{{symbol: value}}`; got "
            f"{type(parameters).__name__}."
        )
    out = {}
    for key, value in parameters.items():
        sym = sp.Symbol(key) if isinstance(key, str) else key
        if not isinstance(sym, sp.Symbol):
            raise ModelError(
                f"Parameter keys must be sympy Symbols (or names); got {key!r}."
            )
        if sym in out:
            raise ModelError(f"Parameter `{sym}` is given twice.")
        if isinstance(value, Trainable):
            if not allow_trainable:
                raise ModelError(
                    f"Parameter `{sym}` is trainable, but this declaration takes "
                    "known values only; give it a number."
                )
        else:
            try:
                if isinstance(value, bool):
                    raise TypeError
                value = float(value)
            except (TypeError, ValueError):
                raise ModelError(
                    f"Parameter `{sym}` has value {value!r}; expected a real number"
                    + (
                        ", or `symml.trainable(initial)` to learn it."
                        if allow_trainable
                        else "."
                    )
                ) from None
            if not math.isfinite(value):
                raise ModelError(
                    f"Parameter `{sym}` has the non-finite value {value}; give a "
                    "finite number."
                )
        out[sym] = value
    return out


def _one_unknown_per_name(found: dict[str, dict]) -> tuple:
    """The unknowns found in the equations (`{name: {id: Unknown}}`), one per
    name."""
    for name, objs in found.items():
        if len(objs) > 1:
            raise ModelError(
                f"Two different `Unknown`s are named {name!r}; give each unknown "
                "term its own name."
            )
    return tuple(next(iter(o.values())) for o in found.values())


def _check_distinct(names: list[str], kinds: str) -> None:
    seen, dup = set(), set()
    for n in names:
        (dup if n in seen else seen).add(n)
    if dup:
        raise ModelError(
            f"The name(s) {sorted(dup)} are used for more than one {kinds}; give "
            "each its own name."
        )


def _check_declared(expr, allowed: set, where: str, hint: str = "") -> None:
    """Every symbol of `expr` is in `allowed`; `where` names `expr` in the
    error and `hint` ends its advice."""
    extra = expr.free_symbols - allowed
    if extra:
        names = ", ".join(f"`{s}`" for s in sorted(extra, key=str))
        raise ModelError(
            f"The symbol(s) {names} in {where} are not declared: give each a value "
            f"(or `symml.trainable(initial)`) in `parameters=`{hint}."
        )


def _check_domain(domain) -> dict[sp.Symbol, tuple[float, float]]:
    if not isinstance(domain, Mapping):
        raise ModelError(
            f"`domain` must be a dict `{{variable: (lower, upper)}}`; got "
            f"{type(domain).__name__}."
        )
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
                f"The domain of `{var}` must be a pair (lower, upper) of numbers; "
                f"got {bounds!r}."
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ModelError(
                f"The domain of `{var}` is ({lo}, {hi}); it must be finite with "
                "lower < upper."
            )
        out[var] = (lo, hi)
    return out


class _Parsed:
    """What every kind of model shares, validated: the input to `_build`."""

    def __init__(self, equations, conditions, parameters, domain):
        if isinstance(equations, sp.Basic):
            equations = [equations]
        try:
            equations = list(equations)
        except TypeError:
            raise ModelError(
                f"`equations` must be a sympy `Eq` or a list of them; got "
                f"{type(equations).__name__}."
            ) from None
        self.equations = tuple(_as_equation(e, i) for i, e in enumerate(equations))
        if not self.equations:
            raise ModelError("A `Model` needs at least one equation.")
        if isinstance(conditions, sp.Basic):
            conditions = [conditions]
        if conditions is not None and not isinstance(conditions, list | tuple):
            raise ModelError(
                f"`conditions` must be a list of sympy `Eq`s, e.g. "
                f"`[Eq(x.subs(t, 0), 1)]`; got {type(conditions).__name__}."
            )
        self.conditions = tuple(
            _as_equation(c, i, "Condition") for i, c in enumerate(conditions or ())
        )
        self.parameters = _check_parameters(parameters)
        self.domain = _check_domain({} if domain is None else domain)
        self._classify()
        self._check_symbols()

    def _classify(self):
        states, fields, unknowns = {}, {}, {}
        for expr in (*self.equations, *self.conditions):
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
        self.unknowns = _one_unknown_per_name(unknowns)
        order = self._order()
        self.states = self._canonical(states, "state", order)
        self.fields = self._canonical(fields, "field", order)
        names = [f.func.__name__ for f in (*self.states, *self.fields)]
        names += [u.name for u in self.unknowns]
        names += [str(p) for p in self.parameters]
        _check_distinct(names, "state, field, unknown or parameter")
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
        names = {str(v) for v in self.variables}
        clash = [p for p in self.parameters if str(p) in names]
        if clash:
            raise ModelError(
                f"`{clash[0]}` is an independent variable of the model and also given"
                " in `parameters=`; remove it from `parameters=` or rename the "
                "parameter."
            )
        for var in self.domain:
            if var not in self.variables:
                raise ModelError(
                    f"`domain=` names `{var}`, which is not an independent variable "
                    f"of the model ({', '.join(map(str, self.variables))})."
                )
        for eq in self.equations:
            for integral in eq.atoms(sp.Integral):
                if any(isinstance(f, StateFunction) for f in _functions(integral)):
                    raise ModelError(
                        f"The equation `{describe(eq)}` contains the integral "
                        f"`{integral}` of a state; integro-differential equations are"
                        " not supported. Introduce a new state for the integral (its "
                        "derivative is the integrand)."
                    )

    def _order(self) -> dict[str, int]:
        # The state differentiated in the first equation first, and so on (so
        # `[Eq(x', ...), Eq(y', ...)]` gives (x, y) whatever sympy's ordering of
        # terms), then anything else by first appearance.
        order: dict[str, int] = {}
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
        return order

    @staticmethod
    def _canonical(found: dict, what: str, order: dict) -> tuple:
        """One applied function per name: the one on the declared variables."""
        out = []
        for name, fs in found.items():
            full = [f for f in fs if all(isinstance(a, sp.Symbol) for a in f.args)]
            if not full:
                raise ModelError(
                    f"The {what} `{name}` appears only evaluated at points ({fs[0]}); "
                    "it must also appear as a function of its variables."
                )
            out.append(full[0])
        return tuple(sorted(out, key=lambda f: order[f.func.__name__]))

    def _check_symbols(self):
        allowed = set(self.variables) | set(self.parameters)
        for eq in (*self.equations, *self.conditions):
            _check_declared(
                eq,
                allowed,
                f"`{describe(eq)}`",
                ", or make it an independent variable of a state",
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
                for f in _functions(inp):
                    if not isinstance(f, StateFunction | FieldFunction | UnknownOutput):
                        raise ModelError(
                            f"The input `{inp}` of unknown `{u.name}` contains the "
                            f"function `{f}`, which is not declared. Declare states "
                            "with `symml.states` and fields with `symml.Field`."
                        )


class Model:
    """A system of equations with some terms possibly unknown.

    `Model(...)` returns the kind of model its equations describe, each a
    subclass of `Model`:

    - [`ODEModel`][symml.ODEModel]: states of one independent variable
      (`x(t)`), integrated by an ODE solver;
    - [`PDEModel`][symml.PDEModel]: states of time and space (`u(t, x)`) with
      `domain=` for every spatial variable, discretised by the method of lines;
    - [`FieldModel`][symml.FieldModel]: fields (declared with
      [`Field`][symml.Field]), represented by networks and trained on the
      residuals of their equations (a physics-informed network).

    **Arguments:**

    - `equations`: sympy `Eq`s (or expressions meaning `= 0`). For states, the
      equations must be linear in each state's highest derivative; symml solves
      for them and reduces higher order ODEs to first order. For fields they are
      residuals of a PDE.
    - `conditions`: initial and boundary conditions (`Eq(u.subs(t, 0), ...)`).
      For an ODE model, initial values `Eq(x.subs(t, t0), value)` of some or all
      states: the default initial state of simulations.
    - `parameters`: `{symbol: value}` for known values, or
      `{symbol: trainable(initial)}` for values to learn. Every symbol in the
      equations that is not an independent variable needs an entry.
    - `domain`: `{variable: (lower, upper)}`: the spatial domain of a PDE, the
      domain of a field model, or the time span of an ODE model.
    - `boundary`: for PDE models, `"periodic"`, `"dirichlet"` or `"neumann"`
      (or a dict per spatial variable).

    The model validates on construction: a mistake raises
    [`ModelError`][symml.ModelError] naming the offending term. It is immutable
    afterwards.

    **Attributes** (every kind): `equations`, `conditions`, `parameters`,
    `domain`, `unknowns` (the [`Unknown`][symml.Unknown]s, in order of
    appearance), `variables` (the independent variables).
    """

    equations: tuple[sp.Eq, ...]
    conditions: tuple[sp.Eq, ...]
    parameters: dict
    domain: dict
    unknowns: tuple
    variables: tuple[sp.Symbol, ...]
    # Only evolution models have states, only field models have fields, only
    # PDE models have boundary kinds.
    states: tuple = ()
    fields: tuple = ()
    boundary: dict | None = None
    # What this kind is called in messages.
    _kind: str = "model"

    def __new__(
        cls,
        equations,
        *,
        conditions=(),
        parameters: Mapping | None = None,
        domain: Mapping | None = None,
        boundary=None,
    ):
        parsed = _Parsed(equations, conditions, parameters, domain)
        if parsed.fields:
            kind = FieldModel
        elif len(parsed.variables) == 1:
            kind = ODEModel
        else:
            kind = PDEModel
        if cls is not Model and cls is not kind:
            raise ModelError(
                f"These equations describe {kind._kind} (`{kind.__name__}`), not "
                f"{cls._kind}; build it with `symml.Model(...)`."
            )
        self = object.__new__(kind)
        for name in ("equations", "conditions", "parameters", "domain", "unknowns"):
            object.__setattr__(self, name, getattr(parsed, name))
        object.__setattr__(self, "variables", parsed.variables)
        self._build(parsed, boundary)
        object.__setattr__(self, "_frozen", True)
        return self

    def _build(self, parsed: _Parsed, boundary) -> None:
        raise NotImplementedError

    def _set(self, **values) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise ModelError(
            f"A `Model` is immutable: `{name}` cannot be set. Build a new model "
            "with `symml.Model(...)`."
        )

    def __delattr__(self, name):
        self.__setattr__(name, None)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce_ex__(self, protocol):
        raise ModelError(
            "A `Model` cannot be pickled: its states and unknowns are sympy classes "
            "made at declaration time, which a pickle cannot rebuild. Save it (or "
            "the fit result or discovery holding it) with `symml.save(path, obj)` "
            "and read it back with `symml.load(path)`."
        )

    def jacobian_sparsity(self):
        """The pattern of the Jacobian of the model's right-hand side with
        respect to its state (see [`ODEModel`][symml.ODEModel]); other kinds
        explain what to do instead."""
        if self.fields:
            raise ModelError(
                f"{type(self).__name__} has fields, not states: there is no "
                "right-hand side of a state vector whose Jacobian could be sparse. "
                "Sparsity applies to ODE models and discretised PDEs."
            )
        raise ModelError(
            f"The Jacobian pattern of {self._kind} depends on how it is lowered; "
            "lower it first (`symml.discretize(model, grid).jacobian_sparsity()` for "
            "a PDE)."
        )

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
        eqs = "; ".join(describe(e) for e in self.equations)
        return f"{type(self).__name__}({eqs})"

    def __str__(self) -> str:
        return "\n".join([type(self).__name__, *_display.model_text(self)])

    def _repr_latex_(self) -> str:
        # Jupyter renders this; `symml.to_latex(model)` gives the equations alone.
        return _display.math_block(_display.model_lines(self))


class _EvolutionModel(Model):
    """States evolving in one independent variable (time), as ODEs or PDEs.

    **Attributes:** `states`, `independent` (the time variable), `state_vector`
    (the entries of the first-order state), `state_names`, `orders` (each
    state's order in time), `rhs` (the right-hand side of each entry).
    """

    states: tuple
    independent: sp.Symbol
    state_vector: tuple
    state_names: tuple[str, ...]
    orders: dict
    rhs: tuple

    def _check_unknown_inputs(self, allow_spatial: bool) -> None:
        allowed = set(self.state_vector)
        for u in self.unknowns:
            for inp in u.inputs:
                for f in _functions(inp) | set(inp.atoms(sp.Derivative)):
                    if f in allowed:
                        continue
                    if isinstance(f, sp.Derivative) and allow_spatial:
                        continue
                    raise ModelError(
                        f"The input `{inp}` of unknown `{u.name}` contains `{f}`, "
                        "which is not expressible in the states of the model; inputs "
                        "must be expressions of the states (and their derivatives "
                        "below the highest order), the independent variables and "
                        "parameters."
                    )


class ODEModel(_EvolutionModel):
    """A model of ordinary differential equations in its states (built by
    [`Model`][symml.Model]; see there for the arguments).

    **Attributes** (besides `Model`'s): `states`, `independent`, `state_vector`,
    `state_names` (`x`, `x_t` for the first-order form of a second-order
    state), `orders`, `rhs`; `initial_time` and `initial_values` (`{state
    name: expression}`) from the initial conditions, `time_span` from the
    domain (`None` when not given).
    """

    _kind = "an ODE model"
    initial_time: float | None
    initial_values: dict
    time_span: tuple[float, float] | None

    def _build(self, parsed: _Parsed, boundary) -> None:
        if boundary is not None:
            raise ModelError(
                "`boundary=` applies to PDE models (states of time and space); this "
                "is an ODE model. Remove `boundary=`."
            )
        (t,) = parsed.variables
        vector, names, orders = first_order_form(parsed.equations, parsed.states, t)
        self._set(
            states=parsed.states,
            independent=t,
            state_vector=vector,
            state_names=names,
            orders=orders,
        )
        # Before solving, so that an input containing a highest derivative is
        # reported as such, not as an equation nonlinear in that derivative.
        self._check_unknown_inputs(allow_spatial=False)
        rhs = reduced_rhs(parsed.equations, parsed.states, orders, t)
        self._set(rhs=rhs)
        self._check_rhs()
        t0, values = self._initial_conditions()
        span = self.domain.get(t)
        if span is not None and t0 is not None and not span[0] <= t0 <= span[1]:
            raise ModelError(
                f"The initial conditions are at `{t} = {t0}`, outside the domain "
                f"{span} of `{t}`; give initial values inside it."
            )
        self._set(initial_time=t0, initial_values=values, time_span=span)

    def jacobian_sparsity(self):
        """The `(n, n)` boolean pattern (a `scipy.sparse.csr_matrix`) of the
        Jacobian of the first-order right-hand side with respect to the state
        vector, in the order of `state_names`, known symbolically: entry
        `(i, j)` is set when the right-hand side of entry `i` involves entry
        `j`; an unknown term depends on its declared inputs. It is the pattern
        of `symml.lower(model)[0]`, without lowering."""
        import scipy.sparse as ssp  # the DSL needs scipy only when asked this

        entries = [sp.Dummy(n) for n in self.state_names]
        # `xreplace` matches `x'(t)` (an entry of a second-order state) whole,
        # before the `x(t)` inside it.
        subs = dict(zip(self.state_vector, entries, strict=True))
        rows, cols = [], []
        for i, expr in enumerate(self.rhs):
            free = expr.xreplace(subs).free_symbols
            for j, entry in enumerate(entries):
                if entry in free:
                    rows.append(i)
                    cols.append(j)
        n = len(entries)
        return ssp.csr_matrix(
            ([True] * len(rows), (rows, cols)), shape=(n, n), dtype=bool
        )

    def _check_rhs(self) -> None:
        t = self.independent
        allowed = set(self.state_vector)
        for expr, target in zip(self.rhs, self.state_vector, strict=True):
            for d in expr.atoms(sp.Derivative):
                if d.expr in self.states and d not in allowed:
                    raise ModelError(
                        f"The equation for `{target.diff(t)}` involves `{d}`, which is"
                        " not a state of the first-order system; derivatives of a "
                        "state may appear only below its highest order."
                    )
                if isinstance(d.expr, StateFunction) and any(
                    v != t for v, _ in d.variable_count
                ):
                    raise ModelError(
                        f"`{d}` differentiates a state with respect to a variable "
                        f"other than `{t}`."
                    )

    def _initial_conditions(self) -> tuple[float | None, dict]:
        """`(t0, {state name: value})` from conditions `Eq(x.subs(t, t0), v)`
        (and `Eq(x.diff(t).subs(t, t0), v)` for a derivative state)."""
        t = self.independent
        entries = {
            self.state_vector[i]: name for i, name in enumerate(self.state_names)
        }
        t0, values = None, {}
        for cond in self.conditions:
            entry, at = _evaluated_entry(cond.lhs, t)
            value = cond.rhs
            if entry not in entries:
                entry, at = _evaluated_entry(cond.rhs, t)
                value = cond.lhs
            if entry not in entries:
                raise ModelError(
                    f"The condition `{describe(cond)}` is not an initial value; an "
                    f"ODE model takes conditions `Eq(x.subs({t}, t0), value)` (or "
                    f"`Eq(x.diff({t}).subs({t}, t0), value)`) for its states "
                    f"{', '.join(self.state_names)}. For a boundary value problem, "
                    "declare the solution as a `symml.Field`."
                )
            if value.free_symbols - set(self.fixed_parameters) or _functions(value):
                raise ModelError(
                    f"The initial value in `{describe(cond)}` must be a number or an "
                    "expression of fixed parameters."
                )
            at = float(at)
            if t0 is not None and at != t0:
                raise ModelError(
                    f"The initial conditions are given at different times ({t0} and "
                    f"{at}); give every initial value at the same time."
                )
            name = entries[entry]
            if name in values:
                raise ModelError(f"The initial value of `{name}` is given twice.")
            t0, values[name] = at, value
        return t0, values


def _evaluated_entry(expr, t):
    """`(entry, t0)` if `expr` is a state `x(t0)` or derivative `x'(t0)` at a
    number `t0`, else `(None, None)`."""
    if isinstance(expr, StateFunction) and len(expr.args) == 1:
        (at,) = expr.args
        if at.is_number:
            return expr.func(t), at
    if isinstance(expr, sp.Subs):
        inner, variables, points = expr.args
        if (
            variables == (t,)
            and points[0].is_number
            and isinstance(inner, sp.Derivative)
            and isinstance(inner.expr, StateFunction)
        ):
            return inner, points[0]
    return None, None


class PDEModel(_EvolutionModel):
    """A PDE model of states of time and space, discretised by the method of
    lines with [`discretize`][symml.discretize] (built by
    [`Model`][symml.Model]; see there for the arguments).

    **Attributes** (besides `Model`'s): `states`, `independent`, `spatial`
    (the spatial variables), `state_vector` (the states), `state_names`,
    `orders`, `rhs`, `boundary` (`{spatial variable: kind}` or `None`).
    """

    _kind = "a PDE model"
    spatial: tuple[sp.Symbol, ...]
    boundary: dict | None

    def _build(self, parsed: _Parsed, boundary) -> None:
        time = [v for v in parsed.variables if v not in parsed.domain]
        if len(time) != 1:
            raise ModelError(
                "A PDE model with states needs `domain=` for every spatial variable "
                "and exactly one variable without a domain (time); the states "
                f"depend on {parsed.variables} and the domain covers "
                f"{tuple(parsed.domain)}."
            )
        (t,) = time
        orders = highest_orders(parsed.equations, parsed.states, t)
        for s, n in orders.items():
            if n != 1:
                raise ModelError(
                    f"The state `{s}` appears with time derivative order {n}; "
                    "method-of-lines PDEs need exactly first order in time."
                )
        self._set(
            states=parsed.states,
            independent=t,
            spatial=tuple(v for v in parsed.variables if v != t),
            state_vector=parsed.states,
            state_names=tuple(s.func.__name__ for s in parsed.states),
            orders=orders,
        )
        self._set(boundary=self._check_boundary(boundary))
        self._check_unknown_inputs(allow_spatial=True)
        self._set(rhs=reduced_rhs(parsed.equations, parsed.states, orders, t))

    def _check_boundary(self, boundary):
        if boundary is None:
            return None
        items = (
            boundary.items()
            if isinstance(boundary, Mapping)
            else ((v, boundary) for v in self.spatial)
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


class FieldModel(Model):
    """A model of fields represented by networks, trained on the residuals of
    its equations and conditions (a physics-informed network; built by
    [`Model`][symml.Model], see there for the arguments).

    **Attributes** (besides `Model`'s): `fields`.
    """

    _kind = "a field model"
    fields: tuple

    def _build(self, parsed: _Parsed, boundary) -> None:
        if boundary is not None:
            raise ModelError(
                "`boundary=` applies to PDE models with states; a field model "
                "takes its boundary conditions as `conditions=`, e.g. "
                "`Eq(u.subs(x, 0), 0)` or a periodic pair."
            )
        self._set(fields=parsed.fields)
        self._check_condition_points()

    def _check_condition_points(self) -> None:
        for cond in self.conditions:
            for f in _functions(cond) | set(cond.atoms(sp.Subs)):
                for var, at in _evaluation_points(f, self.variables):
                    span = self.domain.get(var)
                    if span is None or not at.is_number:
                        continue
                    value = float(at)
                    if not span[0] <= value <= span[1]:
                        raise ModelError(
                            f"The condition `{describe(cond)}` is imposed at "
                            f"`{var} = {value}`, outside the domain {span} of "
                            f"`{var}`; conditions must sit inside the domain."
                        )


def _evaluation_points(f, variables):
    """`(variable, point)` pairs at which `f` (a field at a point, or a `Subs`)
    is evaluated."""
    if isinstance(f, FieldFunction):
        return [(v, a) for v, a in zip(variables, f.args, strict=False) if a != v]
    if isinstance(f, sp.Subs):
        return list(zip(f.variables, f.point, strict=True))
    return []
