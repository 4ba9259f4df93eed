"""Discovery from data: the regression rows, from derivatives estimated at
the samples (strong form) or moved onto test functions (weak form)."""

import math
from collections.abc import Sequence

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from .._errors import DiscoverError
from ..dsl import Data, UnknownOutput
from ._problems import Problem
from ._weak import WeakForm, apply, test_matrices


class _Evaluator:
    """Values of expressions of the states (and their spatial derivatives) on
    one trajectory, shape `(T, *grid)`."""

    def __init__(self, values, t, spatial, coords, periodic, estimator):
        self.values = values  # {state: array}
        self.t = t
        self.spatial = spatial
        self.coords = coords
        self.periodic = periodic
        self.estimator = estimator
        self.shape = next(iter(values.values())).shape
        self.cache: dict = {}
        # The largest relative truncation error of the derivatives estimated
        # so far (when the estimator can tell).
        self.floor = 0.0

    def _derivative(self, d: sp.Derivative) -> np.ndarray:
        if d in self.cache:
            return self.cache[d]
        out = self.value(d.expr)
        for var, count in d.variable_count:
            if var == self.t:
                raise DiscoverError(
                    f"The term `{d}` contains a time derivative; library terms and "
                    "known terms may contain spatial derivatives only."
                )
            if var not in self.spatial:
                raise DiscoverError(
                    f"The term `{d}` differentiates by `{var}`, which is not a "
                    "spatial variable of the data "
                    f"({', '.join(map(str, self.spatial))})."
                )
            axis = 1 + self.spatial.index(var)
            options = {
                "axis": axis,
                "order": int(count),
                "periodic": self.periodic[axis - 1],
            }
            error = self.estimator.truncation_error(
                out, self.coords[axis - 1], **options
            )
            out = self.estimator(out, self.coords[axis - 1], **options)
            self.floor = max(self.floor, relative_size(error, out))
        self.cache[d] = out
        return out

    def value(self, expr: sp.Expr) -> np.ndarray:
        expr = sp.sympify(expr)
        if expr in self.values:
            return self.values[expr]
        if expr not in self.cache:
            self.cache[expr] = self._value(expr)
        return self.cache[expr]

    def _value(self, expr: sp.Expr) -> np.ndarray:
        if isinstance(expr, sp.Derivative):
            return self._derivative(expr)
        atoms = {d: self._derivative(d) for d in expr.atoms(sp.Derivative)}
        replacement = {d: sp.Dummy(f"d{i}") for i, d in enumerate(atoms)}
        body = expr.xreplace(replacement)
        fields = [f for f in body.atoms(AppliedUndef)]
        for f in fields:
            if f not in self.values:
                raise DiscoverError(
                    f"The term `{expr}` uses `{f}`, which the data do not observe."
                )
        symbols = [sp.Dummy(f"s{i}") for i in range(len(fields))]
        body = body.xreplace(dict(zip(fields, symbols, strict=True)))
        extra = body.free_symbols - set(symbols) - set(replacement.values())
        if extra:
            raise DiscoverError(
                f"The term `{expr}` contains the symbol(s) "
                f"{sorted(map(str, extra))}, which have no values; give parameters "
                "values in the model."
            )
        args = [*symbols, *replacement.values()]
        arrays = [*(self.values[f] for f in fields), *(atoms[d] for d in replacement)]
        f = sp.lambdify(args, body, modules="numpy")
        with np.errstate(all="ignore"):
            out = np.broadcast_to(np.asarray(f(*arrays), dtype=float), self.shape)
        return out


def relative_size(error, values) -> float:
    """RMS(error) / RMS(values), 0 when there is no error estimate."""
    if error is None:
        return 0.0
    scale = float(np.sqrt(np.mean(values**2)))
    return float(np.sqrt(np.mean(error**2))) / scale if scale > 0 else 0.0


def _split_derivative(piece: sp.Expr, t, spatial):
    """`(coefficient, g, orders)` when `piece = coefficient · ∂^orders g` with
    `g` free of derivatives (also `h(u)·∂ₓu = ∂ₓH(u)`), else `None`."""
    coefficient, rest = piece.as_coeff_Mul()
    if not rest.atoms(sp.Derivative):
        return coefficient, rest, {}
    if isinstance(rest, sp.Derivative) and not rest.expr.atoms(sp.Derivative):
        orders = {}
        for var, count in rest.variable_count:
            if var not in spatial:
                return None
            orders[var] = orders.get(var, 0) + int(count)
        return coefficient, rest.expr, orders
    # h(u) · ∂ₓu = ∂ₓ H(u), H' = h.
    factors = sp.Mul.make_args(rest)
    derivatives = [f for f in factors if isinstance(f, sp.Derivative)]
    if len(derivatives) == 1:
        (d,) = derivatives
        if (
            isinstance(d.expr, AppliedUndef)
            and len(d.variable_count) == 1
            and d.variable_count[0][1] == 1
            and d.variable_count[0][0] in spatial
        ):
            u = d.expr
            h = sp.Mul(*(f for f in factors if f is not d))
            if h.atoms(sp.Derivative) or h.atoms(AppliedUndef) - {u}:
                return None
            s = sp.Dummy("s")
            antiderivative = sp.integrate(h.xreplace({u: s}), s)
            if antiderivative.has(sp.Integral):
                return None
            return (
                coefficient,
                antiderivative.xreplace({s: u}),
                {d.variable_count[0][0]: 1},
            )
    return None


class _Weak:
    """Weak-form integrals on one trajectory."""

    def __init__(self, evaluator: _Evaluator, matrices, variables):
        self.evaluator = evaluator
        self.matrices = matrices  # per axis: [M0, M1, ...]
        self.variables = variables  # per axis: t, then spatial

    def _integrate(self, array, orders: dict) -> np.ndarray:
        chosen = []
        sign = 1.0
        for axis, var in enumerate(self.variables):
            m = orders.get(var, 0)
            if m >= len(self.matrices[axis]):
                raise DiscoverError(
                    f"The weak form needs test functions with {m} derivatives in "
                    f"`{var}`; this is a bug in how the test functions were sized."
                )
            chosen.append(self.matrices[axis][m])
            sign *= (-1.0) ** m
        return sign * apply(array, chosen)

    def expression(self, expr: sp.Expr) -> np.ndarray:
        """∫ φ · expr, by parts where `expr` is a derivative of a function."""
        out = 0.0
        for piece in sp.Add.make_args(
            sp.expand(expr) if expr.atoms(sp.Derivative) else expr
        ):
            split = _split_derivative(piece, self.variables[0], self.variables[1:])
            if split is None:
                out = out + self._integrate(self.evaluator.value(piece), {})
            else:
                coefficient, g, orders = split
                out = out + float(coefficient) * self._integrate(
                    self.evaluator.value(g), orders
                )
        return np.asarray(out, dtype=float)

    def time_derivative(self, state) -> np.ndarray:
        return self._integrate(self.evaluator.values[state], {self.variables[0]: 1})


def _max_orders(problems: Sequence[Problem], spatial) -> dict:
    orders = {v: 0 for v in spatial}
    for p in problems:
        exprs = [
            p.known,
            *(p.multiplier * term.xreplace(p.to_user) for term in p.terms),
        ]
        for e in exprs:
            for d in sp.sympify(e).atoms(sp.Derivative):
                for var, count in d.variable_count:
                    if var in orders:
                        orders[var] = max(orders[var], int(count))
    return orders


def _evaluators(datasets, problems, t, spatial, coords, periodic, estimator):
    all_states = _states_in(problems)
    out = []
    for d in datasets:
        values = {}
        for s in all_states:
            name = s.func.__name__
            if name not in d.values:
                raise DiscoverError(
                    f"The data do not observe `{name}`; discovery from data needs "
                    f"every state observed. The data observe {', '.join(d.names)}."
                )
            v = d.values[name]
            expected = (d.t.size, *(c.size for c in coords))
            if v.shape != expected:
                raise DiscoverError(
                    f"The observations of `{name}` have shape {v.shape}; expected "
                    f"{expected} (times, then one axis per spatial variable of "
                    "`grid`)."
                )
            values[s] = v
        out.append(_Evaluator(values, t, spatial, coords, periodic, estimator))
    return out


def _feature_rows(problem: Problem, integrals: "_Weak"):
    target = integrals.time_derivative(problem.state) - integrals.expression(
        problem.known
    )
    columns = [
        integrals.expression(problem.multiplier * term.xreplace(problem.to_user))
        for term in problem.terms
    ]
    theta = np.stack([np.broadcast_to(c, target.shape) for c in columns], 1)
    return theta, target


def _weak_rows(evaluators, datasets, problems, variables, coords, widths, weak, orders):
    thetas = [[] for _ in problems]
    targets = [[] for _ in problems]
    for evaluator, d in zip(evaluators, datasets, strict=True):
        matrices = []
        for var, x in zip(variables, [d.t, *coords], strict=True):
            order = orders.get(var, 1)
            matrices.append(
                test_matrices(
                    x, widths[var], weak.spacing, weak.degree_for(order), max(order, 1)
                )
            )
        integrals = _Weak(evaluator, matrices, variables)
        for i, p in enumerate(problems):
            theta, target = _feature_rows(p, integrals)
            thetas[i].append(theta)
            targets[i].append(target)
    return [np.concatenate(a) for a in thetas], [np.concatenate(a) for a in targets]


# A width is chosen among those whose full-library held-out error is within
# this factor of the best one, the narrowest.
_WIDTH_TOLERANCE = 1.5


def _full_library_error(theta: np.ndarray, target: np.ndarray, folds: int = 5) -> float:
    """The held-out relative error of the regression on every term: the noise
    floor that any sparse model will be measured against."""
    n, p = theta.shape
    if n < 3 * p:
        return math.inf
    scale = np.sqrt(np.mean(theta**2, axis=0))
    theta = theta / np.where(scale > 0, scale, 1.0)
    order = np.random.default_rng(0).permutation(n)
    error = 0.0
    for test in np.array_split(order, folds):
        train = np.setdiff1d(order, test)
        c = np.linalg.lstsq(theta[train], target[train], rcond=None)[0]
        error += float(np.sum((target[test] - theta[test] @ c) ** 2))
    total = float(np.sum(target**2))
    return math.sqrt(error / total) if total > 0 else math.inf


def _choose_widths(evaluators, datasets, problems, variables, coords, weak, orders):
    """Test-function widths, each given or chosen from 12 candidates (from a
    few samples to a quarter of the span) by the held-out error of the
    full-library regression, averaged (in log) over the equations: the
    narrowest width within a factor 1.5 of the lowest error, with at least
    three rows per library term. Axes are scanned in turn, twice."""
    spans = [(d.t[0], d.t[-1], np.mean(np.diff(d.t))) for d in datasets]
    axes_x = [
        (min(s[1] - s[0] for s in spans), max(s[2] for s in spans)),
        *((c[-1] - c[0], float(np.mean(np.diff(c)))) for c in coords),
    ]
    widths, candidates = {}, {}
    for var, (span, step) in zip(variables, axes_x, strict=True):
        degree = weak.degree_for(orders.get(var, 1))
        given = weak.width_for(var, var == variables[0])
        if given is not None:
            widths[var] = given
            continue
        low = (degree + 1) * step
        high = span / 4
        if low >= high:
            raise DiscoverError(
                f"The data have too few samples along `{var}` for the weak form's "
                f"test functions (span {span:.4g}, spacing {step:.4g}); use a "
                "pointwise derivative estimator (`derivative='spline'`) or more "
                "samples."
            )
        candidates[var] = np.geomspace(low, high, 12)
        widths[var] = float(np.sqrt(low * high))

    def score(trial) -> float:
        try:
            thetas, targets = _weak_rows(
                evaluators, datasets, problems, variables, coords, trial, weak, orders
            )
        except DiscoverError:
            return math.inf
        errors = [
            _full_library_error(a, b) for a, b in zip(thetas, targets, strict=True)
        ]
        return float(np.mean(np.log(np.maximum(errors, 1e-12))))

    for _ in range(2 if len(candidates) > 1 else 1):
        for var, options in candidates.items():
            scores = [score({**widths, var: float(w)}) for w in options]
            if np.all(~np.isfinite(scores)):
                raise DiscoverError(
                    f"No test-function width along `{var}` gives enough regression "
                    "rows for the library; use a smaller library or more data."
                )
            # The narrowest width within a factor of the best: wider test
            # functions leave fewer, smoother rows, whose held-out error keeps
            # falling while the high-order terms' coefficients drift (a
            # one-standard-error rule for the width).
            scores = np.asarray(scores)
            near = np.flatnonzero(scores <= np.min(scores) + math.log(_WIDTH_TOLERANCE))
            widths[var] = float(options[near[0]])
    return widths


def build_rows(
    datasets: list[Data],
    problems: list[Problem],
    *,
    t: sp.Symbol,
    spatial: list,
    coords: list[np.ndarray],
    periodic: list[bool],
    derivative,
) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """The feature matrix and target of each problem, stacked over datasets,
    and what was chosen on the way (the weak form's widths)."""
    weak = derivative if isinstance(derivative, WeakForm) else None
    estimator = weak.spatial if weak is not None else derivative
    evaluators = _evaluators(
        datasets, problems, t, spatial, coords, periodic, estimator
    )
    if weak is not None:
        variables = [t, *spatial]
        orders = _max_orders(problems, spatial)
        orders[t] = 1
        widths = _choose_widths(
            evaluators, datasets, problems, variables, coords, weak, orders
        )
        thetas, targets = _weak_rows(
            evaluators, datasets, problems, variables, coords, widths, weak, orders
        )
        return thetas, targets, {"widths": {str(v): w for v, w in widths.items()}}
    thetas = [[] for _ in problems]
    targets = [[] for _ in problems]
    floors = [0.0 for _ in problems]
    for evaluator, d in zip(evaluators, datasets, strict=True):
        keep = _interior(evaluator.values, coords, periodic)
        for i, p in enumerate(problems):
            values = evaluator.values[p.state]
            rate = derivative(values, d.t, axis=0, order=1)
            error = derivative.truncation_error(values, d.t, axis=0, order=1)
            floors[i] = max(floors[i], relative_size(error, rate))
            target = rate - evaluator.value(p.known)
            columns = [
                evaluator.value(p.multiplier * term.xreplace(p.to_user))
                for term in p.terms
            ]
            thetas[i].append(np.stack([c[keep].reshape(-1) for c in columns], 1))
            targets[i].append(target[keep].reshape(-1))
    # Spatial derivatives are shared by all equations: their error bounds all.
    shared = max(e.floor for e in evaluators)
    floors = [max(f, shared) for f in floors]
    details = {}
    if any(floors):
        details["truncation_error"] = {
            p.name: f for p, f in zip(problems, floors, strict=True)
        }
    return (
        [np.concatenate(a) for a in thetas],
        [np.concatenate(a) for a in targets],
        details,
    )


def _states_in(problems) -> list:
    out = []
    for p in problems:
        for s in [p.state]:
            if s not in out:
                out.append(s)
    for p in problems:
        exprs = [
            p.known,
            *(p.multiplier * term.xreplace(p.to_user) for term in p.terms),
        ]
        for e in exprs:
            for f in sp.sympify(e).atoms(AppliedUndef):
                if not isinstance(f, UnknownOutput) and f not in out:
                    out.append(f)
    return out


def _interior(values, coords, periodic) -> tuple:
    """The samples used by the strong form: all times, and on non-periodic
    spatial axes all but a margin where one-sided stencils are inaccurate."""
    shape = next(iter(values.values())).shape
    index = [slice(None)]
    for axis, (c, wrap) in enumerate(zip(coords, periodic, strict=True)):
        margin = 0 if wrap else max(2, c.size // 40)
        index.append(slice(margin, shape[axis + 1] - margin))
    return tuple(index)
