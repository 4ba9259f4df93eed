"""Sparse regression of targets on sympy candidate terms."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .._checks import real_number
from .._errors import DiscoverError
from ._library import AbstractLibrary
from ._search import single_threaded
from ._selection import (
    AbstractSelector,
    ParetoFront,
    check_selection,
    check_selector,
)


@dataclass(frozen=True)
class _Fit:
    """The candidate terms and the coefficients (targets × terms) found."""

    terms: tuple[sp.Expr, ...]
    coefficients: np.ndarray
    fronts: tuple[ParetoFront, ...] = ()


def _feature_matrix(
    terms: Sequence[sp.Expr], inputs: np.ndarray, symbols: Sequence[sp.Symbol]
) -> np.ndarray:
    columns = []
    for term in terms:
        extra = term.free_symbols - set(symbols)
        if extra:
            raise DiscoverError(
                f"The library term `{term}` uses the symbol(s) "
                f"{sorted(map(str, extra))}, which are not inputs; library terms "
                "must be expressions of the inputs only."
            )
        f = sp.lambdify(symbols, term, modules="numpy")
        with np.errstate(all="ignore"):
            value = f(*inputs.T)
        try:
            column = np.broadcast_to(np.asarray(value, dtype=float), inputs.shape[:1])
        except (TypeError, ValueError):
            raise DiscoverError(
                f"The library term `{term}` does not evaluate to a real number at "
                "the samples; use terms that are real-valued on the data."
            ) from None
        if not np.all(np.isfinite(column)):
            raise DiscoverError(
                f"The library term `{term}` is not finite at some samples (e.g. a "
                "logarithm of a non-positive value or a division by zero); remove "
                "it from the library or restrict the data."
            )
        columns.append(column)
    return np.stack(columns, axis=1)


def _rms(a: np.ndarray) -> np.ndarray:
    scale = np.sqrt(np.mean(a**2, axis=0))
    return np.where(scale > 0, scale, 1.0)


def _least_squares(
    theta: np.ndarray, targets: np.ndarray, support: np.ndarray
) -> np.ndarray:
    coefficients = np.zeros((targets.shape[1], theta.shape[1]))
    for i, keep in enumerate(support):
        if keep.any():
            solution, *_ = np.linalg.lstsq(theta[:, keep], targets[:, i], rcond=None)
            coefficients[i, keep] = solution
    return coefficients


def check_max_error(value) -> float:
    number = real_number(value)
    if not 0 < number < math.inf:
        raise DiscoverError(
            f"`max_error` must be a positive number (a relative error, e.g. 0.1 for "
            f"10 %); got {value!r}."
        )
    return number


def select_terms(
    theta: np.ndarray,
    targets: np.ndarray,
    terms: Sequence[sp.Expr],
    *,
    selector: AbstractSelector,
    names: Sequence[str],
    max_error: float,
    to_user: dict | None = None,
    floor: float = 0.0,
) -> _Fit:
    """Select terms for each target column, refit them, and build the fronts;
    relative errors below `floor` (the estimated error of derivative
    estimates) count as noise.

    Columns and targets are scaled to unit RMS for the search and the criterion,
    so that sizes are relative and units do not matter; the selected terms are
    then refitted by ordinary least squares in the original units, so their
    coefficients carry no shrinkage.
    """
    if not np.all(np.isfinite(theta)):
        bad = [
            str(t)
            for t, ok in zip(terms, np.all(np.isfinite(theta), 0), strict=True)
            if not ok
        ]
        raise DiscoverError(
            f"The library term(s) {', '.join(bad)} are not finite at some samples "
            "(e.g. a logarithm of a non-positive value or a division by zero); "
            "remove them from the library or restrict the data."
        )
    column_scale = _rms(theta)
    theta_n = theta / column_scale
    to_user = to_user or {}
    supports, fronts = [], []
    for i, name in enumerate(names):
        y = targets[:, i]
        y_n = y / _rms(y[:, None])[0]
        selection = selector.select(theta_n, y_n, floor=floor)
        check_selection(
            selection, name, [t.xreplace(to_user) for t in terms], max_error
        )
        supports.append(selection.support)
        fronts.append(_front(selection, theta, y, terms, selector, to_user))
    coefficients = _least_squares(theta, targets, np.array(supports))
    return _Fit(tuple(terms), coefficients, tuple(fronts))


def _front(selection, theta, y, terms, selector, to_user) -> ParetoFront:
    sizes, errors, held, scores, expressions = [], [], [], [], []
    chosen = None
    for k, support in enumerate(selection.path):
        if support is None:
            continue
        if np.array_equal(support, selection.support):
            chosen = len(sizes)
        sizes.append(k)
        errors.append(float(selection.errors[k]))
        held.append(
            math.nan if selection.held_out is None else float(selection.held_out[k])
        )
        scores.append(
            float(selection.scores[k]) if k < len(selection.scores) else math.nan
        )
        c = _least_squares(theta, y[:, None], support[None])[0]
        expressions.append(_expression(terms, c).xreplace(to_user))
    return ParetoFront(
        n_terms=tuple(sizes),
        error=tuple(errors),
        held_out_error=None if selection.held_out is None else tuple(held),
        score=tuple(scores),
        expressions=tuple(expressions),
        chosen=chosen,
        criterion=repr(selector),
        inclusion_frequencies=None
        if selection.frequencies is None
        else tuple(
            (t.xreplace(to_user), float(f))
            for t, f in zip(terms, selection.frequencies, strict=True)
        ),
    )


def _regress(
    inputs: np.ndarray,
    targets: np.ndarray,
    input_symbols: Sequence[sp.Symbol],
    *,
    library: AbstractLibrary,
    selector: AbstractSelector,
    names: Sequence[str],
    max_error: float,
    to_user: dict | None = None,
) -> _Fit:
    check_library(library)
    inputs = np.asarray(inputs, dtype=float)
    targets = np.asarray(targets, dtype=float)
    if targets.ndim == 1:
        targets = targets[:, None]
    symbols = list(input_symbols)
    if inputs.ndim != 2 or inputs.shape[1] != len(symbols):
        raise DiscoverError(
            f"`inputs` must have shape (n_samples, {len(symbols)}), one column per "
            f"input symbol; got shape {inputs.shape}."
        )
    if targets.ndim != 2 or targets.shape[0] != inputs.shape[0]:
        raise DiscoverError(
            f"`targets` must have shape (n_samples, n_targets) with the same "
            f"{inputs.shape[0]} samples as `inputs`; got shape {targets.shape}."
        )
    for name, array in (("inputs", inputs), ("targets", targets)):
        if not np.all(np.isfinite(array)):
            bad = int(np.sum(~np.all(np.isfinite(array), axis=1)))
            raise DiscoverError(
                f"The regression `{name}` contain non-finite values (NaN or inf) in "
                f"{bad} of {array.shape[0]} samples; remove those samples, or check "
                "the fit that produced them."
            )
    terms = tuple(library.terms(symbols))
    if not terms:
        raise DiscoverError(f"The library {library!r} produced no candidate terms.")
    n_samples = inputs.shape[0]
    if n_samples < len(terms):
        raise DiscoverError(
            f"Sparse regression needs at least as many samples as library terms; "
            f"got {n_samples} samples for {len(terms)} terms. Provide more samples "
            "or use a smaller library (e.g. a lower polynomial degree)."
        )
    theta = _feature_matrix(terms, inputs, symbols)
    return select_terms(
        theta,
        targets,
        terms,
        selector=selector,
        names=names,
        max_error=max_error,
        to_user=to_user,
    )


def check_library(library) -> AbstractLibrary:
    if not isinstance(library, AbstractLibrary):
        raise DiscoverError(
            f"`library` must be a symml library (`PolynomialLibrary`, "
            f"`FourierLibrary`, `CustomLibrary`, `PDELibrary`, `DerivativeLibrary` "
            f"or a combination with `+`/`*`); got {library!r} of type "
            f"{type(library).__name__}."
        )
    return library


def _expression(terms: Sequence[sp.Expr], coefficients: np.ndarray) -> sp.Expr:
    return sp.Add(
        *(sp.Float(float(c)) * t for c, t in zip(coefficients, terms, strict=True) if c)
    )


def sparse_regression(
    inputs: np.ndarray,
    targets: np.ndarray,
    input_symbols: Sequence[sp.Symbol],
    *,
    library: AbstractLibrary,
    selector: AbstractSelector | None = None,
    max_error: float = 0.1,
) -> list[sp.Expr]:
    """Sparse regression of each target column on a library of sympy terms.

    The feature matrix is the library's terms evaluated (with
    `sympy.lambdify`) at `inputs`. Columns and targets are scaled to unit root
    mean square; `selector` builds the front of best models of each number of
    terms and its criterion chooses one (by default
    [`BestSubset`][symml.BestSubset] with the [`Elbow`][symml.Elbow]
    criterion). The selected terms are then refitted by ordinary least squares
    on the original data, so the coefficients are unbiased by any penalty or
    scaling.

    **Arguments:**

    - `inputs`: the input values, shape `(n_samples, n_inputs)`.
    - `targets`: the values to explain, shape `(n_samples, n_targets)`.
    - `input_symbols`: one sympy symbol per input column.
    - `library`: the candidate terms, e.g. `PolynomialLibrary(degree=3)`.
    - `selector`: how terms are selected: `BestSubset()` (the default),
      `Stepwise()` or `STLSQ(threshold=...)`, each with its own criterion.
    - `max_error`: the relative error above which the chosen model is
      reported with a [`DiscoveryWarning`][symml.DiscoveryWarning].

    **Returns:**

    One sympy expression per target column: a sum of float coefficient × term,
    in `input_symbols` (`0` when no term is selected).
    """
    targets = np.asarray(targets, dtype=float)
    n_targets = targets.shape[1] if targets.ndim == 2 else 1
    with single_threaded():
        fit = _regress(
            inputs,
            targets,
            input_symbols,
            library=library,
            selector=check_selector(selector),
            names=[f"target {i}" for i in range(n_targets)],
            max_error=check_max_error(max_error),
        )
    return [_expression(fit.terms, row) for row in fit.coefficients]
