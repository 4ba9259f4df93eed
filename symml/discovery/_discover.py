"""`discover`: sparse regression on each unknown of a fit, back to a `Model`."""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import sympy as sp

from .._errors import DiscoverError, ModelError
from ..dsl import Model, Trainable, UnknownOutput, trainable
from ._library import AbstractLibrary, PolynomialLibrary
from ._regression import _expression, _regress

# {output function (U_0): (placeholder symbols, ((term, coefficient), ...))}:
# terms written in placeholders so that they apply to any arguments.
_Table = dict[type, tuple[tuple[sp.Dummy, ...], tuple[tuple[sp.Expr, float], ...]]]


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


def _rebuild(model: Model, table: Mapping[type, sp.Expr], parameters: Mapping) -> Model:
    def eq(e: sp.Eq) -> sp.Eq:
        return sp.Eq(
            _replace_unknowns(e.lhs, table),
            _replace_unknowns(e.rhs, table),
            evaluate=False,
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
            "Check the library, or discover with a larger `threshold`."
        ) from None


@dataclass(frozen=True)
class Discovery:
    """What [`discover`][symml.discover] recovered.

    **Attributes:**

    - `expressions`: `{output: expression}` for each unknown output as it
      appears in the model (`U_0(x(t), y(t))`), the expression written in the
      unknown's input expressions (`-0.9*x(t)*y(t)`); `0` if no term was kept.
    - `terms`: `{output: {term: coefficient}}`, the selected terms.
    - `model`: the recovered `Model`: each unknown output replaced by its
      expression, trainable parameters fixed at their learned values.
    - `fitted_model`: the model the fit trained.
    - `parameter_values`: the learned values of its trainable parameters.
    """

    expressions: dict[sp.Expr, sp.Expr]
    terms: dict[sp.Expr, dict[sp.Expr, float]]
    model: Model
    fitted_model: Model = field(repr=False)
    parameter_values: dict[sp.Symbol, float] = field(repr=False)
    _table: _Table = field(repr=False)

    def coefficient_terms(self) -> dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]:
        """The coefficient symbols of
        [`trainable_model`][symml.Discovery.trainable_model].

        **Returns:**

        `{symbol: (output, term)}`, e.g. `{c_U_0_0: (U_0(x(t), y(t)), x(t)*y(t))}`:
        symbol `c_<output>_<k>` multiplies the `k`-th selected term of the output.
        """
        m = self.fitted_model
        taken = {str(p) for p in m.parameters} | {u.name for u in m.unknowns}
        taken |= {f.func.__name__ for f in (*m.states, *m.fields)}
        out = {}
        for u in self.fitted_model.unknowns:
            for function, output in zip(u.functions, u.outputs, strict=True):
                for k, term in enumerate(self.terms[output]):
                    name = f"c_{function.__name__}_{k}"
                    while name in taken:
                        name += "_"
                    taken.add(name)
                    out[sp.Symbol(name)] = (output, term)
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
        parameters = _parameters(
            self.fitted_model, self.parameter_values, keep_trainable=refit_parameters
        )
        table = {}
        for function, (placeholders, pairs) in self._table.items():
            body = sp.Integer(0)
            for term, value in pairs:
                c = next(symbols)
                parameters[c] = trainable(value)
                body += c * term
            table[function] = (placeholders, body)
        return _rebuild(self.fitted_model, table, parameters)


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


def discover(
    result: FitResultLike,
    *,
    library: AbstractLibrary | None = None,
    threshold: float = 0.1,
    alpha: float = 0.0,
    ensemble: bool = False,
    n_models: int = 50,
    seed: int = 0,
    method: str = "subset",
) -> Discovery:
    """Recover each unknown term of a fit as a sparse sum of library terms.

    For every output of every unknown of `result.model`, the network's outputs
    at the states the fit visited are regressed on the library's terms of the
    unknown's inputs, with
    [`sparse_regression`][symml.sparse_regression] (see there for
    what `threshold` means and how ensembling works).

    **Arguments:**

    - `result`: a fit result; it must provide `model`, `unknown_samples()`
      (`{name: (inputs, outputs)}`) and `parameter_values()`.
    - `library`: the candidate terms; by default `PolynomialLibrary(degree=3)`.
    - `threshold`: terms contributing less than this fraction of the output's
      root mean square are dropped.
    - `alpha`: the ridge penalty of the thresholded regressions.
    - `ensemble`: whether to select terms by bagging (`n_models` bootstrap
      resamples, deterministic for `seed`).
    - `method`: `"subset"` (best-subset selection: the fewest terms that
      explain the outputs to within `threshold`; robust when the fit visited
      only a curve of states, as a single trajectory does), `"ssr"` (stepwise
      backward elimination) or `"stlsq"` (sequential thresholding).

    **Returns:**

    A [`Discovery`][symml.Discovery] with the recovered expressions,
    their terms and the recovered model.
    """
    library = PolynomialLibrary(degree=3) if library is None else library
    model = result.model
    if not model.unknowns:
        raise DiscoverError(
            f"The fitted model has no unknown terms, so there is nothing to "
            f"discover: {model!r}. Declare the missing physics with "
            "`symml.Unknown` and fit it first."
        )
    values = _learned_values(result, model)
    samples = result.unknown_samples()
    expressions, terms, table = {}, {}, {}
    for u in model.unknowns:
        X, Y = _samples(samples, u)
        placeholders = tuple(sp.Dummy(f"z{i}") for i in range(len(u.inputs)))
        try:
            fit = _regress(
                X,
                Y,
                placeholders,
                library=library,
                threshold=threshold,
                alpha=alpha,
                ensemble=ensemble,
                n_models=n_models,
                seed=seed,
                method=method,
            )
        except DiscoverError as e:
            raise DiscoverError(f"Discovering the unknown `{u.name}`: {e}") from None
        to_inputs = dict(zip(placeholders, u.inputs, strict=True))
        for function, output, row in zip(
            u.functions, u.outputs, fit.coefficients, strict=True
        ):
            pairs = tuple(
                (term, float(c)) for term, c in zip(fit.terms, row, strict=True) if c
            )
            table[function] = (placeholders, pairs)
            terms[output] = {t.xreplace(to_inputs): c for t, c in pairs}
            expressions[output] = _expression(fit.terms, row).xreplace(to_inputs)
    numeric = {
        f: (ph, _expression([t for t, _ in pairs], np.array([c for _, c in pairs])))
        for f, (ph, pairs) in table.items()
    }
    recovered = _rebuild(
        model, numeric, _parameters(model, values, keep_trainable=False)
    )
    return Discovery(
        expressions=expressions,
        terms=terms,
        model=recovered,
        fitted_model=model,
        parameter_values=values,
        _table=table,
    )
