"""Sparse regression of targets on sympy candidate terms, with pysindy's STLSQ."""

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pysindy as ps
import sympy as sp

from .._errors import DiscoverError
from ._library import AbstractLibrary


@dataclass(frozen=True)
class _Fit:
    """The candidate terms and the coefficients (targets × terms) found."""

    terms: tuple[sp.Expr, ...]
    coefficients: np.ndarray


def _check_number(value: object, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise DiscoverError(
            f"`{name}` must be a finite non-negative number; got {value!r}. "
            f"Pass e.g. `{name}=0.1`."
        )
    return number


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


def _stlsq_coefficients(
    theta: np.ndarray, targets: np.ndarray, threshold: float, alpha: float
) -> np.ndarray:
    """STLSQ's coefficients (targets × terms) on normalised data."""
    optimizer = ps.STLSQ(
        threshold=threshold, alpha=alpha, normalize_columns=False, unbias=False
    )
    with warnings.catch_warnings():
        # "Sparsity parameter is too big": an empty support is a valid answer.
        warnings.simplefilter("ignore")
        optimizer.fit(theta, targets)
    return np.atleast_2d(optimizer.coef_)


def _ssr_support(
    theta: np.ndarray, targets: np.ndarray, threshold: float, alpha: float
) -> np.ndarray:
    """The sparsest support on pysindy's stepwise (backward elimination) path
    whose residual RMS is at most `threshold` (targets are unit-RMS)."""
    n_samples, n_terms = theta.shape
    support = np.zeros((targets.shape[1], n_terms), dtype=bool)
    for i in range(targets.shape[1]):
        y = targets[:, i : i + 1]
        optimizer = ps.SSR(
            alpha=alpha, max_iter=n_terms, kappa=None, normalize_columns=False
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer.fit(theta, y)
        # The path runs from all terms to one; the empty model ends it. Its
        # first entry is rebuilt here: pysindy stores it by reference and
        # overwrites it in place as the elimination proceeds.
        path = [np.ones(n_terms, dtype=bool)]
        path += [np.atleast_2d(c)[0] != 0 for c in optimizer.history_[1:]]
        path.append(np.zeros(n_terms, dtype=bool))
        best = path[0]
        for keep in path:
            refit = _least_squares(theta, y, keep[None])[0]
            residual = np.sqrt(np.mean((y[:, 0] - theta @ refit) ** 2))
            if residual <= threshold and keep.sum() <= best.sum():
                best = keep
        support[i] = best
    return support


def _residual(theta: np.ndarray, y: np.ndarray, keep: np.ndarray) -> float:
    if not keep.any():
        return float(np.sqrt(np.mean(y**2)))
    solution, *_ = np.linalg.lstsq(theta[:, keep], y, rcond=None)
    return float(np.sqrt(np.mean((y - theta[:, keep] @ solution) ** 2)))


# Exhaustive search stops at the first support size with more subsets than this.
_SUBSET_BUDGET = 20_000


def _subset_support(
    theta: np.ndarray, targets: np.ndarray, threshold: float, alpha: float
) -> np.ndarray:
    """The smallest support whose least-squares residual RMS is at most
    `threshold` (targets are unit-RMS), found by exhaustive search over
    supports of 0, 1, 2, ... terms; past `_SUBSET_BUDGET` subsets of one size,
    the stepwise path takes over."""
    n_terms = theta.shape[1]
    support = np.zeros((targets.shape[1], n_terms), dtype=bool)
    for i in range(targets.shape[1]):
        y = targets[:, i]
        for k in range(n_terms + 1):
            if math.comb(n_terms, k) > _SUBSET_BUDGET:
                support[i] = _ssr_support(
                    theta, targets[:, i : i + 1], threshold, alpha
                )[0]
                break
            best, best_residual = None, math.inf
            for subset in itertools.combinations(range(n_terms), k):
                keep = np.zeros(n_terms, dtype=bool)
                keep[list(subset)] = True
                residual = _residual(theta, y, keep)
                if residual < best_residual:
                    best, best_residual = keep, residual
            if best_residual <= threshold:
                support[i] = best
                break
        else:
            support[i] = True
    return support


def _least_squares(
    theta: np.ndarray, targets: np.ndarray, support: np.ndarray
) -> np.ndarray:
    coefficients = np.zeros((targets.shape[1], theta.shape[1]))
    for i, keep in enumerate(support):
        if keep.any():
            solution, *_ = np.linalg.lstsq(theta[:, keep], targets[:, i], rcond=None)
            coefficients[i, keep] = solution
    return coefficients


def _stlsq_support(theta, targets, threshold, alpha) -> np.ndarray:
    return _stlsq_coefficients(theta, targets, threshold, alpha) != 0


_SELECTORS = {
    "subset": _subset_support,
    "ssr": _ssr_support,
    "stlsq": _stlsq_support,
}


def _regress(
    inputs: np.ndarray,
    targets: np.ndarray,
    input_symbols: Sequence[sp.Symbol],
    *,
    library: AbstractLibrary,
    threshold: float,
    alpha: float,
    ensemble: bool,
    n_models: int,
    seed: int,
    method: str = "subset",
) -> _Fit:
    if not isinstance(library, AbstractLibrary):
        raise DiscoverError(
            f"`library` must be a symml library (`PolynomialLibrary`, "
            f"`FourierLibrary`, `CustomLibrary` or a combination with `+`/`*`); got "
            f"{library!r} of type {type(library).__name__}."
        )
    threshold = _check_number(threshold, "threshold")
    alpha = _check_number(alpha, "alpha")
    if ensemble and (
        isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 1
    ):
        raise DiscoverError(f"`n_models` must be a positive integer; got {n_models!r}.")
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
    # Thresholds act on coefficients of unit-RMS features for unit-RMS targets:
    # a term is dropped when its typical contribution is below `threshold`
    # times the target's typical size, whatever the units of either.
    column_scale = _rms(theta)
    target_scale = _rms(targets)
    theta_n = theta / column_scale
    targets_n = targets / target_scale
    select = _SELECTORS.get(method)
    if select is None:
        raise DiscoverError(
            f"`method={method!r}` is not known; use one of {', '.join(_SELECTORS)}."
        )
    if ensemble:
        rng = np.random.default_rng(seed)
        bagged = []
        for _ in range(n_models):
            rows = rng.integers(0, n_samples, size=n_samples)
            bagged.append(select(theta_n[rows], targets_n[rows], threshold, alpha))
        support = np.mean(np.stack(bagged), axis=0) >= 0.5
    else:
        support = select(theta_n, targets_n, threshold, alpha)
    # STLSQ's coefficients are shrunk by `alpha` and fitted on normalised data;
    # the selected terms are refitted by plain least squares in original units.
    return _Fit(terms, _least_squares(theta, targets, support))


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
    threshold: float = 0.1,
    alpha: float = 0.0,
    ensemble: bool = False,
    n_models: int = 50,
    seed: int = 0,
    method: str = "subset",
) -> list[sp.Expr]:
    """Sparse regression of each target column on a library of sympy terms.

    The feature matrix is the library's terms evaluated (with
    `sympy.lambdify`) at `inputs`. Columns and targets are scaled to unit root
    mean square, then pysindy's sequentially thresholded least squares
    (`ps.STLSQ`) selects the terms; so a term is dropped when
    |coefficient| × RMS(term) < `threshold` × RMS(target), i.e. when it
    contributes less than a fraction `threshold` of the target's size. The
    selected terms are then refitted by ordinary least squares on the original
    data, so the coefficients are unbiased by the ridge penalty or the scaling.

    With `method="subset"` (the default), the selected terms are the
    smallest set whose least-squares residual RMS is at most `threshold` ×
    RMS(target), found by exhaustive search over sets of 1, 2, 3, ... terms
    (best-subset selection, the L0-constrained problem solved exactly) while a
    size has at most 20,000 sets, and by the stepwise path below beyond that.
    It is the robust choice when the samples lie near a curve or surface (a
    single trajectory), where the full least-squares problem is
    ill-conditioned and greedy paths can drop the right term early.

    With `method="ssr"`, terms are instead selected on pysindy's stepwise
    sparse regression path (`ps.SSR`: backward elimination of the smallest
    coefficient, refitting after each): the sparsest model on that path whose
    residual RMS is at most `threshold` × RMS(target).

    With `ensemble=True`, the selection runs on `n_models` bootstrap resamples of the
    rows (drawn from `numpy.random.default_rng(seed)`, so deterministic for a
    seed) and a term is kept when it is
    selected in at least half of the resamples, as in
    pysindy's "bragging". This is done here rather than with
    `ps.EnsembleOptimizer`, which draws from numpy's global random state.

    **Arguments:**

    - `inputs`: the input values, shape `(n_samples, n_inputs)`.
    - `targets`: the values to explain, shape `(n_samples, n_targets)`.
    - `input_symbols`: one sympy symbol per input column.
    - `library`: the candidate terms, e.g. `PolynomialLibrary(degree=3)`.
    - `threshold`: the relative size below which terms are dropped.
    - `alpha`: the ridge penalty of STLSQ (on the normalised problem).
    - `ensemble`: whether to select terms by bagging.
    - `method`: `"subset"` (best subset), `"ssr"` (stepwise) or `"stlsq"`
      (sequential thresholding).
    - `n_models`: the number of bootstrap resamples when `ensemble=True`.
    - `seed`: the seed of the bootstrap resamples.

    **Returns:**

    One sympy expression per target column: a sum of float coefficient × term,
    in `input_symbols` (`0` when no term is selected).
    """
    fit = _regress(
        inputs,
        targets,
        input_symbols,
        library=library,
        threshold=threshold,
        alpha=alpha,
        ensemble=ensemble,
        n_models=n_models,
        seed=seed,
        method=method,
    )
    return [_expression(fit.terms, row) for row in fit.coefficients]
