"""`discover`: sparse regression on each unknown of a fit, back to a `Model`."""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import sympy as sp

from .. import _display
from .._errors import DiscoverError, ModelError
from ..dsl import SDE, Data, Model, Trainable, UnknownOutput, trainable
from ._differentiation import AbstractDerivative
from ._library import AbstractLibrary, DerivativeLibrary, PolynomialLibrary
from ._problems import check_derivative, domain_of, prepare
from ._regression import (
    _expression,
    _regress,
    check_library,
    check_max_error,
    select_terms,
)
from ._rows import build_rows
from ._search import single_threaded
from ._selection import AbstractSelector, ParetoFront, check_selector
from ._truncation import truncation_check
from ._weak import WeakForm

# {output function (U_0): (placeholder symbols, ((term, coefficient), ...))}:
# terms written in placeholders so that they apply to any arguments. For a
# discovery from data without a model, the keys are the states and the terms
# are written in the states themselves (no placeholders).
_Table = dict[object, tuple[tuple[sp.Dummy, ...], tuple[tuple[sp.Expr, float], ...]]]


class FitResultLike(Protocol):
    """What `discover` needs from a fit result."""

    @property
    def model(self) -> Model: ...

    def unknown_samples(self) -> dict[str, tuple[np.ndarray, np.ndarray]]: ...

    def parameter_values(self) -> dict[sp.Symbol, float]: ...


def _replace_unknowns(expr: sp.Basic, table: Mapping[type, sp.Expr]) -> sp.Basic:
    """`expr` with each unknown output in `table` replaced by its expression
    (given in the placeholders of `_Table`); derivatives of replaced outputs
    are evaluated."""
    original = expr.atoms(sp.Derivative)

    def value(e: sp.Expr) -> sp.Expr:
        placeholders, body = table[e.func]
        return body.xreplace(dict(zip(placeholders, e.args, strict=True)))

    out = expr.replace(
        lambda e: isinstance(e, UnknownOutput) and e.func in table, value
    )
    return out.replace(
        lambda e: isinstance(e, sp.Derivative) and e not in original,
        lambda e: e.doit(),
    )


def _rebuild(model: Model, table: Mapping, parameters: Mapping) -> Model:
    def eq(e: sp.Eq) -> sp.Eq:
        return sp.Eq(
            _replace_unknowns(e.lhs, table),
            _replace_unknowns(e.rhs, table),
            evaluate=False,
        )

    if isinstance(model, SDE):  # drift and diffusion, not equations
        return model.map_expressions(
            lambda e: _replace_unknowns(e, table), parameters=parameters
        )
    try:
        return Model(
            [eq(e) for e in model.equations],
            conditions=[eq(c) for c in model.conditions],
            parameters=parameters,
            domain=model.domain,
            boundary=model.boundary,
        )
    except ModelError as e:
        raise DiscoverError(
            f"The model with the recovered expressions substituted is invalid: {e} "
            "Check the library, or choose a sparser model (a larger `gain` of "
            "`symml.Elbow`)."
        ) from None


@dataclass(frozen=True)
class _Skeleton:
    """How to build the model of a discovery from data without a model: one
    equation `d(state)/dt = body` per state, on the data's domain."""

    t: sp.Symbol
    domain: dict
    boundary: object

    def build(self, bodies: Mapping, parameters: Mapping) -> Model:
        try:
            return Model(
                [sp.Eq(s.diff(self.t), body) for s, body in bodies.items()],
                parameters=parameters,
                domain=self.domain or None,
                boundary=self.boundary,
            )
        except ModelError as e:
            raise DiscoverError(
                f"The recovered equations do not make a valid model: {e}"
            ) from None


def _assemble(fitted: Model | None, skeleton, table: Mapping, parameters) -> Model:
    """The model with each table entry's expression in place."""
    if fitted is not None:
        return _rebuild(fitted, table, parameters)
    return skeleton.build({s: body for s, (_, body) in table.items()}, parameters)


@dataclass(frozen=True)
class Discovery:
    """What [`discover`][symml.discover] recovered.

    **Attributes:**

    - `expressions`: `{key: expression}`. From a fit, or from data with a
      `model=`, the keys are the unknown outputs as they appear in the model
      (`U_0(x(t), y(t))`) and each expression is written in the unknown's input
      expressions (`-0.9*x(t)*y(t)`). From data alone, the keys are the time
      derivatives of the states (`Derivative(x(t), t)`). `0` if no term was
      kept.
    - `terms`: `{key: {term: coefficient}}`, the selected terms.
    - `fronts`: `{key: ParetoFront}`, the best model of each number of terms
      with its errors, and which was chosen; see
      [`ParetoFront`][symml.ParetoFront].
    - `model`: the recovered `Model`: each unknown replaced by its expression,
      trainable parameters fixed at their learned values.
    - `fitted_model`: the model the fit trained, or the `model=` given with
      data (`None` for data alone).
    - `parameter_values`: the learned values of its trainable parameters.
    - `details`: how the discovery ran, for reports: from data, the derivative
      estimator or weak form, the test-function widths chosen, and (for finite
      differences) the estimated relative truncation error of the derivatives,
      below which errors count as noise.
    """

    expressions: dict[sp.Expr, sp.Expr]
    terms: dict[sp.Expr, dict[sp.Expr, float]]
    fronts: dict[sp.Expr, ParetoFront] = field(repr=False)
    model: Model
    fitted_model: Model | None = field(repr=False)
    parameter_values: dict[sp.Symbol, float] = field(repr=False)
    details: dict = field(default_factory=dict, repr=False)
    _table: _Table = field(repr=False, default_factory=dict)
    _skeleton: _Skeleton | None = field(default=None, repr=False)

    def _keys(self) -> list[tuple[object, sp.Expr, str]]:
        """`(table key, expressions key, name)` in table order."""
        out = []
        for k in self._table:
            if isinstance(k, type):  # an unknown output's function
                applied = next(o for o in self.terms if getattr(o, "func", None) is k)
                out.append((k, applied, k.__name__))
            else:  # a state
                out.append((k, k.diff(self._skeleton.t), k.func.__name__))
        return out

    def coefficient_terms(self) -> dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]:
        """The coefficient symbols of
        [`trainable_model`][symml.Discovery.trainable_model].

        **Returns:**

        `{symbol: (key, term)}`, e.g. `{c_U_0_0: (U_0(x(t), y(t)), x(t)*y(t))}`:
        symbol `c_<name>_<k>` multiplies the `k`-th selected term of the unknown
        output (or, from data alone, of the state) `<name>`.
        """
        m = self.fitted_model if self.fitted_model is not None else self.model
        taken = {str(p) for p in m.parameters} | {u.name for u in m.unknowns}
        taken |= {f.func.__name__ for f in (*m.states, *m.fields)}
        out = {}
        for _, key, name in self._keys():
            for k, term in enumerate(self.terms[key]):
                symbol = f"c_{name}_{k}"
                while symbol in taken:
                    symbol += "_"
                taken.add(symbol)
                out[sp.Symbol(symbol)] = (key, term)
        return out

    def inclusion_frequencies(self) -> dict[sp.Expr, dict[sp.Expr, float]]:
        """How often each candidate term was chosen over bootstrap resamples
        of the rows (ensemble SINDy's inclusion frequencies), for a discovery
        whose criterion resamples: `selector=BestSubset(Stability(...))`.

        **Returns:**

        `{key: {term: frequency}}` with the keys of
        [`terms`][symml.Discovery] and every candidate term of the library
        (frequencies in [0, 1]; a term never chosen has 0).
        """
        out = {
            key: dict(front.inclusion_frequencies)
            for key, front in self.fronts.items()
            if front.inclusion_frequencies is not None
        }
        if not out:
            criteria = {front.criterion for front in self.fronts.values()}
            raise DiscoverError(
                "This discovery has no inclusion frequencies: its criterion "
                f"({', '.join(sorted(criteria))}) does not resample the rows. "
                "Discover with `selector=symml.BestSubset(symml.Stability("
                "n_resamples=100))` to count how often each term is chosen."
            )
        return out

    def trainable_model(self, *, refit_parameters: bool = False) -> Model:
        """The recovered model with each recovered coefficient a new trainable
        parameter, starting from its recovered value, so a fit can refine the
        coefficients of the discovered terms.

        **Arguments:**

        - `refit_parameters`: whether the model's own trainable parameters stay
          trainable (starting from their learned values). By default they are
          fixed at their learned values, and only the coefficients are refitted.

        **Returns:**

        A `Model`; see
        [`coefficient_terms`][symml.Discovery.coefficient_terms] for
        what each new parameter multiplies.
        """
        symbols = iter(self.coefficient_terms())
        parameters = (
            {}
            if self.fitted_model is None
            else _parameters(
                self.fitted_model,
                self.parameter_values,
                keep_trainable=refit_parameters,
            )
        )
        table = {}
        for key, (placeholders, pairs) in self._table.items():
            body = sp.Integer(0)
            for term, value in pairs:
                c = next(symbols)
                parameters[c] = trainable(value)
                body += c * term
            table[key] = (placeholders, body)
        return _assemble(self.fitted_model, self._skeleton, table, parameters)

    def _selection_rows(self) -> list[tuple[sp.Expr, int, float, str]]:
        """`(key, terms kept, relative error, criterion)` per discovered term."""
        rows = []
        for key, front in self.fronts.items():
            error = front.error[front.chosen] if front.chosen is not None else math.nan
            rows.append((key, len(self.terms[key]), error, front.criterion))
        return rows

    def __repr__(self) -> str:
        found = "; ".join(
            _display.text(sp.Eq(k, v, evaluate=False))
            for k, v in self.expressions.items()
        )
        return f"Discovery({found})"

    def __str__(self) -> str:
        lines = ["Discovery"]
        lines += [
            "  " + _display.text(sp.Eq(k, v, evaluate=False))
            for k, v in self.expressions.items()
        ]
        rows = [
            [
                _display.text(key),
                _display.text(term),
                _display.text(sp.Float(c)),
            ]
            for key in self.terms
            for term, c in self.terms[key].items()
        ]
        if rows:
            lines.append("coefficients:")
            lines += [
                "  " + line
                for line in _display.text_table(
                    ["term of", "term", "coefficient"], rows
                )
            ]
        lines.append("model selection:")
        for key, n, error, criterion in self._selection_rows():
            lines.append(
                f"  {_display.text(key)}: {n} term{'s' if n != 1 else ''}, "
                f"relative error {_display.number(error)} ({criterion})"
            )
        lines.append("recovered model:")
        lines += _display.model_text(self.model, indent="  ")
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        return _display.math_block(
            [
                _display.equation_line(sp.Eq(k, v, evaluate=False))
                for k, v in self.expressions.items()
            ]
        )

    def _repr_html_(self) -> str:
        # Jupyter shows the HTML (typesetting its math) in preference to the
        # LaTeX: the equations, then the coefficients and how they were chosen.
        math = _display.inline_math
        coefficients = _display.html_table(
            ["term of", "term", "coefficient"],
            [
                [
                    math(_display.latex(key)),
                    math(_display.latex(term)),
                    _display.text(sp.Float(c)),
                ]
                for key in self.terms
                for term, c in self.terms[key].items()
            ],
            caption="Coefficients",
        )
        selection = _display.html_table(
            ["term of", "terms kept", "relative error", "criterion"],
            [
                [
                    math(_display.latex(key)),
                    str(n),
                    _display.number(error),
                    _display.escape(criterion),
                ]
                for key, n, error, criterion in self._selection_rows()
            ],
            caption="Model selection",
        )
        return (
            f"<div>{_display.escape(self._repr_latex_())}"
            f"{coefficients}{selection}</div>"
        )


def _parameters(
    model: Model, values: Mapping[sp.Symbol, float], *, keep_trainable: bool
) -> dict[sp.Symbol, float | Trainable]:
    out: dict[sp.Symbol, float | Trainable] = {}
    for p, v in model.parameters.items():
        if isinstance(v, Trainable):
            out[p] = trainable(values[p]) if keep_trainable else values[p]
        else:
            out[p] = v
    return out


def _learned_values(result: Any, model: Model) -> dict[sp.Symbol, float]:
    values = dict(result.parameter_values())
    out = {}
    for p in model.trainable_parameters:
        if p not in values:
            raise DiscoverError(
                f"The fit result gives no learned value for the trainable parameter "
                f"`{p}`; `result.parameter_values()` must map every trainable "
                "parameter of the model to its value."
            )
        v = float(values[p])
        if not math.isfinite(v):
            raise DiscoverError(
                f"The learned value of `{p}` is {v}; the fit did not converge. "
                "Refit before discovering."
            )
        out[p] = v
    return out


def _samples(samples: Mapping[str, Any], unknown: Any) -> tuple[np.ndarray, np.ndarray]:
    name = unknown.name
    if name not in samples:
        raise DiscoverError(
            f"The fit result has no samples for the unknown `{name}`; "
            "`result.unknown_samples()` must give (inputs, outputs) for every "
            "unknown of the model."
        )
    X, Y = (np.asarray(a, dtype=float) for a in samples[name])
    if Y.ndim == 1:
        Y = Y[:, None]
    n_in, n_out = len(unknown.inputs), unknown.n_outputs
    if X.ndim != 2 or X.shape[1] != n_in or Y.shape != (X.shape[0], n_out):
        raise DiscoverError(
            f"The samples of the unknown `{name}` have shapes {X.shape} (inputs) and "
            f"{Y.shape} (outputs); expected (n, {n_in}) and (n, {n_out})."
        )
    for what, array in (("inputs", X), ("outputs", Y)):
        if not np.all(np.isfinite(array)):
            bad = int(np.sum(~np.all(np.isfinite(array), axis=1)))
            raise DiscoverError(
                f"The sampled {what} of the unknown `{name}` are not finite (NaN or "
                f"inf) in {bad} of {array.shape[0]} samples; the fit diverged or "
                "the data contain gaps. Refit, or drop those samples."
            )
    return X, Y


def _results(problems_or_outputs, fit, table, expressions, terms, fronts):
    """Fill the tables from one regression's fit (rows of `fit.coefficients`
    in the order of `problems_or_outputs`)."""
    for (key, table_key, placeholders, to_user), row, front in zip(
        problems_or_outputs, fit.coefficients, fit.fronts, strict=True
    ):
        pairs = tuple(
            (term, float(c)) for term, c in zip(fit.terms, row, strict=True) if c
        )
        table[table_key] = (placeholders, pairs)
        terms[key] = {t.xreplace(to_user): c for t, c in pairs}
        expressions[key] = _expression(fit.terms, row).xreplace(to_user)
        fronts[key] = front


def _numeric(table: Mapping) -> dict:
    return {
        k: (ph, _expression([t for t, _ in pairs], np.array([c for _, c in pairs])))
        for k, (ph, pairs) in table.items()
    }


def _check_discretization(discretization, model):
    needed = ("order", "spacing", "shape", "model")
    if not all(hasattr(discretization, a) for a in needed):
        raise DiscoverError(
            f"`discretization` must be the `DiscretizedModel` the fit used (from "
            f"`symml.discretize`); got {discretization!r} of type "
            f"{type(discretization).__name__}."
        )
    if discretization.model is not model:
        raise DiscoverError(
            "`discretization` discretises another model than the one the fit "
            "result holds; pass the `DiscretizedModel` that was fitted."
        )
    boundary = model.boundary or {}
    return {
        "order": int(discretization.order),
        "spacing": dict(discretization.spacing),
        "shape": tuple(discretization.shape),
        "periodic": {v: boundary.get(v) == "periodic" for v in discretization.spacing},
    }


def inclusion_frequencies(discoveries) -> dict[sp.Expr, dict[sp.Expr, float]]:
    """How often each term was chosen over several discoveries of the same
    unknowns (or states): one per member of an ensemble, e.g. a bootstrap
    ensemble (`fit_ensemble(..., bootstrap=True)`), whose members refit their
    own resample of the data, so that a term chosen by few members is one
    the data do not support.

    ```python
    found = [sm.discover(member) for member in ensemble.succeeded]
    sm.inclusion_frequencies(found)  # {U_0(x, y): {x*y: 1.0, x: 0.1}, ...}
    ```

    (A single discovery counts over resamples of its rows instead: see
    [`Discovery.inclusion_frequencies`][symml.Discovery.inclusion_frequencies].)

    **Arguments:**

    - `discoveries`: [`Discovery`][symml.Discovery] results of the same
      unknowns or states.

    **Returns:**

    `{key: {term: frequency}}` with the keys of
    [`terms`][symml.Discovery]; each term chosen by at least one discovery,
    with the fraction of the discoveries that chose it (in (0, 1]), most
    frequent first.
    """
    found = list(discoveries) if not isinstance(discoveries, Discovery) else None
    if not found:
        raise DiscoverError(
            "`inclusion_frequencies` takes a list of `symml.Discovery` results "
            f"(e.g. one per ensemble member); got {discoveries!r}."
        )
    for d in found:
        if not isinstance(d, Discovery):
            raise DiscoverError(
                "`inclusion_frequencies` takes `symml.Discovery` results, e.g. "
                "`[symml.discover(r) for r in ensemble.succeeded]`; got "
                f"{type(d).__name__}."
            )
    keys = list(found[0].terms)
    for d in found[1:]:
        if set(d.terms) != set(keys):
            raise DiscoverError(
                "`inclusion_frequencies` counts discoveries of the same unknowns "
                f"or states; got {sorted(map(str, keys))} and "
                f"{sorted(map(str, d.terms))}."
            )
    out = {}
    for key in keys:
        counts: dict[sp.Expr, int] = {}
        for d in found:
            for term in d.terms[key]:
                counts[term] = counts.get(term, 0) + 1
        ranked = sorted(
            counts.items(), key=lambda kv: (-kv[1], sp.default_sort_key(kv[0]))
        )
        out[key] = {term: count / len(found) for term, count in ranked}
    return out


def _discover_fit(result, library, selector, max_error, discretization) -> Discovery:
    model = result.model
    if not model.unknowns:
        raise DiscoverError(
            f"The fitted model has no unknown terms, so there is nothing to "
            f"discover: {model!r}. Declare the missing physics with "
            "`symml.Unknown` and fit it first."
        )
    values = _learned_values(result, model)
    grid = (
        None if discretization is None else _check_discretization(discretization, model)
    )
    samples = result.unknown_samples()
    expressions, terms, fronts, table = {}, {}, {}, {}
    truncation = {}
    for u in model.unknowns:
        X, Y = _samples(samples, u)
        placeholders = tuple(sp.Dummy(f"z{i}") for i in range(len(u.inputs)))
        to_inputs = dict(zip(placeholders, u.inputs, strict=True))
        try:
            fit = _regress(
                X,
                Y,
                placeholders,
                library=library,
                selector=selector,
                names=[str(o) for o in u.outputs],
                max_error=max_error,
                to_user=to_inputs,
            )
        except DiscoverError as e:
            raise DiscoverError(f"Discovering the unknown `{u.name}`: {e}") from None
        _results(
            [
                (o, f, placeholders, to_inputs)
                for o, f in zip(u.outputs, u.functions, strict=True)
            ],
            fit,
            table,
            expressions,
            terms,
            fronts,
        )
        if grid is not None:
            for j, output in enumerate(u.outputs):
                tau = truncation_check(
                    str(output), u.inputs, X, Y[:, j], terms[output], **grid
                )
                if tau is not None:
                    truncation[str(output)] = tau
    recovered = _rebuild(
        model, _numeric(table), _parameters(model, values, keep_trainable=False)
    )
    return Discovery(
        expressions=expressions,
        terms=terms,
        fronts=fronts,
        model=recovered,
        fitted_model=model,
        parameter_values=values,
        details={"truncation_error": truncation} if truncation else {},
        _table=table,
    )


def _discover_data(
    data, library, selector, model, derivative, grid, boundary, max_error
) -> Discovery:
    derivative = check_derivative(derivative)
    datasets, problems, t, spatial, coords, periodic = prepare(
        data, library=library, model=model, grid=grid, boundary=boundary
    )
    thetas, targets, details = build_rows(
        datasets,
        problems,
        t=t,
        spatial=spatial,
        coords=coords,
        periodic=periodic,
        derivative=derivative,
    )
    expressions, terms, fronts, table = {}, {}, {}, {}
    for p, theta, target in zip(problems, thetas, targets, strict=True):
        if theta.shape[0] < theta.shape[1]:
            raise DiscoverError(
                f"Discovering `{p.name}` needs at least as many regression rows as "
                f"library terms; the data give {theta.shape[0]} rows for "
                f"{theta.shape[1]} terms. Provide more data, narrower test functions "
                "(`WeakForm(width=...)`), or a smaller library."
            )
        fit = select_terms(
            theta,
            target[:, None],
            p.terms,
            selector=selector,
            names=[p.name],
            max_error=max_error,
            to_user=p.to_user,
            floor=details.get("truncation_error", {}).get(p.name, 0.0),
        )
        _results(
            [(p.key, p.table_key, p.placeholders, p.to_user)],
            fit,
            table,
            expressions,
            terms,
            fronts,
        )
    if model is not None:
        parameters = dict(model.parameters)
        recovered = _rebuild(model, _numeric(table), parameters)
        skeleton = None
    else:
        skeleton = _Skeleton(
            t=t,
            domain=domain_of(spatial, coords, periodic),
            boundary=boundary,
        )
        recovered = skeleton.build(
            {s: body for s, (_, body) in _numeric(table).items()}, {}
        )
    return Discovery(
        expressions=expressions,
        terms=terms,
        fronts=fronts,
        model=recovered,
        fitted_model=model,
        parameter_values={},
        details={"derivative": repr(derivative), **details},
        _table=table,
        _skeleton=skeleton,
    )


# One BLAS thread for the whole call (see `single_threaded`).
@single_threaded()
def discover(
    source: "FitResultLike | Data | list[Data]",
    *,
    library: AbstractLibrary | None = None,
    selector: AbstractSelector | None = None,
    model: Model | None = None,
    derivative: "AbstractDerivative | WeakForm | str | None" = None,
    grid: Mapping | None = None,
    boundary: str | Mapping | None = None,
    max_error: float = 0.1,
    discretization=None,
) -> Discovery:
    """Recover equations as sparse sums of library terms: each unknown term of
    a fit, or the equations behind observed data.

    **From a fit** (`discover(result)`): for every output of every unknown of
    `result.model`, the network's outputs at the states the fit visited are
    regressed on the library's terms of the unknown's inputs.

    **From data** (`discover(data)`, SINDy): the time derivative of each
    observed state is regressed on the library's terms of the states. By
    default the equations are tested against smooth functions (the weak form,
    [`WeakForm`][symml.WeakForm]), so no derivative of the noisy data is
    taken; `derivative=` chooses a pointwise estimator instead. For data on a
    spatial grid (`grid={x: xs}`), the library holds spatial derivatives
    (PDE-FIND): by default `DerivativeLibrary(derivative_order=4)`. With
    `model=`, the model's known terms are kept and only its `Unknown` terms are
    discovered (each must enter its equation as `known + c · U`).

    In both cases `selector` builds the Pareto front (the best model of each
    number of terms) and its criterion chooses one: by default best-subset
    selection with the [`Elbow`][symml.Elbow] criterion (each kept term must
    halve the held-out error). The chosen terms are refitted by least squares.
    A [`DiscoveryWarning`][symml.DiscoveryWarning] names any term that no
    sparse model explains to within `max_error`, or whose front has no clear
    elbow.

    **Arguments:**

    - `source`: a fit result (with `model`, `unknown_samples()` and
      `parameter_values()`), or a [`Data`][symml.Data] or list of them (one
      per trajectory).
    - `library`: the candidate terms; by default `PolynomialLibrary(degree=3)`
      (for data on a grid without `model=`,
      `DerivativeLibrary(derivative_order=4)`).
    - `selector`: [`BestSubset`][symml.BestSubset] (default),
      [`Stepwise`][symml.Stepwise] or [`STLSQ`][symml.STLSQ], each with
      its criterion.
    - `model`: data only: a model whose known terms are kept.
    - `derivative`: data only: `WeakForm(...)` (default), or an estimator of
      du/dt by object or name (`"spline"`, `"savitzky_golay"`,
      `"finite_difference"`, `"smoothed_finite_difference"`,
      `"total_variation"`, `"spectral"`).
    - `grid`: data on a grid: `{x: coordinates}`, one 1-D array per spatial
      axis of the observations (which have shape `(T, *grid)`), in order.
    - `boundary`: data on a grid without `model=`: `"periodic"` (or a dict per
      variable) to use periodic stencils and give the recovered model that
      boundary.
    - `max_error`: the relative error above which a chosen model is reported.
    - `discretization`: a fit of a discretised PDE only: the
      [`DiscretizedModel`][symml.DiscretizedModel] the fit used. Discovery then
      measures the stencils' truncation error in each unknown's derivative
      inputs (what the network saw against a spectral or tenth-order
      derivative of the sampled field), carries it through the recovered
      expression, and warns with a
      [`TruncationErrorWarning`][symml.TruncationErrorWarning] when a
      recovered term is no larger than three times that error, or when the
      error exceeds 2 % of the unknown's size (the coefficients are then biased
      by about as much). The estimates are in `Discovery.details`.

    **Returns:**

    A [`Discovery`][symml.Discovery] with the recovered expressions, their
    terms, the Pareto fronts and the recovered model.
    """
    selector = check_selector(selector)
    max_error = check_max_error(max_error)
    is_data = isinstance(source, Data) or (
        isinstance(source, (list, tuple)) and any(isinstance(d, Data) for d in source)
    )
    if is_data:
        if library is None:
            library = (
                DerivativeLibrary(derivative_order=4)
                if grid and model is None
                else PolynomialLibrary(degree=3)
            )
        check_library(library)
        if discretization is not None:
            raise DiscoverError(
                "`discretization=` applies to a fit of a discretised PDE; data are "
                "not discretised by symml. Leave it out."
            )
        return _discover_data(
            source, library, selector, model, derivative, grid, boundary, max_error
        )
    if not all(hasattr(source, a) for a in ("model", "unknown_samples")):
        raise DiscoverError(
            f"`discover` takes a fit result (from `symml.fit`) or observations "
            f"(`symml.Data` or a list of them); got {source!r} of type "
            f"{type(source).__name__}."
        )
    for name, value in (
        ("model", model),
        ("derivative", derivative),
        ("grid", grid),
        ("boundary", boundary),
    ):
        if value is not None:
            raise DiscoverError(
                f"`{name}=` applies to discovery from data; a fit result carries "
                "its own model and samples. Leave it out."
            )
    library = PolynomialLibrary(degree=3) if library is None else library
    check_library(library)
    return _discover_fit(source, library, selector, max_error, discretization)
