"""Selectors build the Pareto front (the best model of each number of terms)
and apply their criterion; the front as users see it; the checks that warn
when no sparse model explains a term."""

import abc
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .._errors import DiscoverError
from ._criteria import (
    _ERROR_FLOOR,
    AbstractCriterion,
    Elbow,
    _check_float,
    _check_int,
    _Choice,
    _errors,
)
from ._search import best_subset_path, reduce, sse, stepwise_path
from ._warnings import DiscoveryWarning, warn


@dataclass(frozen=True)
class _Selection:
    """One target's front and the chosen support (normalised problem)."""

    path: list
    errors: np.ndarray
    held_out: np.ndarray | None
    scores: np.ndarray
    support: np.ndarray
    rival: tuple[int, int] | None
    frequencies: np.ndarray | None = None


def _check_criterion(criterion, owner: str) -> AbstractCriterion:
    if criterion is None:
        return Elbow()
    if not isinstance(criterion, AbstractCriterion):
        raise DiscoverError(
            f"`criterion` of `{owner}` must be a criterion such as `symml.Elbow()`, "
            f"`symml.AIC()`, `symml.BIC()`, `symml.CrossValidation()` or "
            f"`symml.Stability()`; got {criterion!r} of type "
            f"{type(criterion).__name__}."
        )
    return criterion


class AbstractSelector(abc.ABC):
    """A method that builds the Pareto front (the best model of each number of
    terms) and chooses one model from it.

    Subclasses implement `path(theta, y)`: one boolean support per size `0, 1,
    ..., p` (or `None` where a size is out of reach) on a normalised problem
    (unit-RMS columns and target); `choose` applies their `criterion`.
    """

    criterion: AbstractCriterion

    @abc.abstractmethod
    def path(self, theta: np.ndarray, y: np.ndarray) -> list:
        """The best support of each size found; see the class docstring."""

    def choose(
        self, theta: np.ndarray, y: np.ndarray, path: list, floor: float = _ERROR_FLOOR
    ) -> _Choice:
        """Apply the criterion to `path`."""
        return self.criterion.choose(theta, y, path, self.path, floor)

    def select(
        self, theta: np.ndarray, y: np.ndarray, *, floor: float = _ERROR_FLOOR
    ) -> _Selection:
        """The front and the chosen support of one normalised target; relative
        errors below `floor` count as `floor`."""
        path = self.path(theta, y)
        choice = self.choose(theta, y, path, max(floor, _ERROR_FLOOR))
        return _Selection(
            path=path,
            errors=_errors(theta, y, path),
            held_out=choice.held_out,
            scores=np.asarray(choice.scores, dtype=float),
            support=np.asarray(choice.support, dtype=bool),
            rival=choice.rival,
            frequencies=choice.frequencies,
        )


class BestSubset(AbstractSelector):
    """Best-subset selection: for each number of terms `k`, the `k` terms whose
    least-squares fit leaves the smallest residual, found by exhaustive search
    while a size has at most `max_subsets` subsets and by
    [`Stepwise`][symml.Stepwise] search beyond. Then `criterion` chooses
    among these models.

    Exhaustive search is the robust choice when the samples lie near a curve or
    surface (a single trajectory), where the columns are nearly dependent and
    greedy paths can drop the right term early.

    **Arguments:**

    - `criterion`: how the model is chosen from the front; by default
      [`Elbow()`][symml.Elbow].
    - `max_subsets`: the largest number of subsets of one size searched
      exhaustively.
    - `max_terms`: the largest model considered (default: all terms).
    """

    def __init__(
        self,
        criterion: AbstractCriterion | None = None,
        *,
        max_subsets: int = 5000,
        max_terms: int | None = None,
    ):
        self.criterion = _check_criterion(criterion, "BestSubset")
        self.max_subsets = _check_int(
            max_subsets, "max_subsets", minimum=1, owner="BestSubset"
        )
        self.max_terms = (
            None
            if max_terms is None
            else _check_int(max_terms, "max_terms", minimum=1, owner="BestSubset")
        )

    def path(self, theta, y):
        return best_subset_path(theta, y, self.max_subsets, _max_terms(self, theta))

    def __repr__(self):
        return (
            f"BestSubset({self.criterion!r}, max_subsets={self.max_subsets}, "
            f"max_terms={self.max_terms})"
        )


def _max_terms(selector, theta: np.ndarray) -> int:
    """No more terms than samples minus one (an exact interpolation says
    nothing) nor than requested."""
    n, p = theta.shape
    limit = min(p, max(n - 1, 0))
    return limit if selector.max_terms is None else min(limit, selector.max_terms)


class Stepwise(AbstractSelector):
    """Stepwise selection: at each size, the better of forward selection (add
    the term that lowers the residual most) and backward elimination (drop the
    term whose removal raises it least). Costs about `p²` small regressions for
    `p` terms, so it suits large libraries. Then `criterion` chooses among these
    models.

    **Arguments:**

    - `criterion`: how the model is chosen; by default
      [`Elbow()`][symml.Elbow].
    - `max_terms`: the largest model considered (default: all terms).
    """

    def __init__(
        self,
        criterion: AbstractCriterion | None = None,
        *,
        max_terms: int | None = None,
    ):
        self.criterion = _check_criterion(criterion, "Stepwise")
        self.max_terms = (
            None
            if max_terms is None
            else _check_int(max_terms, "max_terms", minimum=1, owner="Stepwise")
        )

    def path(self, theta, y):
        return stepwise_path(theta, y, _max_terms(self, theta))

    def __repr__(self):
        return f"Stepwise({self.criterion!r}, max_terms={self.max_terms})"


class STLSQ(AbstractSelector):
    """Sequentially thresholded least squares (pysindy's `STLSQ`).

    With a `threshold`, the model is STLSQ's at that threshold: on unit-RMS
    columns and target, a term is dropped when its coefficient is below
    `threshold`, i.e. when it contributes less than that fraction of the
    target's size. Without one, STLSQ runs over 40 thresholds from 1e-4 to 1
    and `criterion` chooses among the models found. Either way the front
    (reported on the [`Discovery`][symml.Discovery]) is the best model of each
    size along the thresholds.

    **Arguments:**

    - `threshold`: the relative threshold, or `None` to choose by `criterion`.
    - `alpha`: the ridge penalty of the thresholded regressions (normalised
      problem).
    - `criterion`: the rule used when `threshold` is `None`; by default
      [`Elbow()`][symml.Elbow].
    """

    _THRESHOLDS = np.geomspace(1e-4, 1.0, 40)

    def __init__(
        self,
        threshold: float | None = None,
        *,
        alpha: float = 0.0,
        criterion: AbstractCriterion | None = None,
    ):
        if threshold is not None and criterion is not None:
            raise DiscoverError(
                "`STLSQ` takes a `threshold` or a `criterion`, not both: a fixed "
                "threshold decides the model by itself. Drop one of them."
            )
        self.threshold = (
            None
            if threshold is None
            else _check_float(
                threshold, "threshold", owner="STLSQ", low=0.0, example="0.1"
            )
        )
        self.alpha = _check_float(alpha, "alpha", owner="STLSQ", low=0.0, example="0.0")
        self.criterion = _check_criterion(criterion, "STLSQ")

    def _support(self, theta, y, threshold) -> np.ndarray:
        import pysindy as ps

        optimizer = ps.STLSQ(
            threshold=threshold, alpha=self.alpha, normalize_columns=False, unbias=False
        )
        with warnings.catch_warnings():
            # "Sparsity parameter is too big": an empty support is a valid answer.
            warnings.simplefilter("ignore")
            optimizer.fit(theta, y[:, None])
        return np.atleast_2d(optimizer.coef_)[0] != 0

    def path(self, theta, y):
        p = theta.shape[1]
        path: list = [None] * (p + 1)
        path[0] = np.zeros(p, dtype=bool)
        reduced = reduce(theta, y)
        for threshold in self._THRESHOLDS:
            s = self._support(theta, y, threshold)
            k = int(s.sum())
            if path[k] is None or sse(reduced, s) < sse(reduced, path[k]):
                path[k] = s
        return path

    def choose(self, theta, y, path, floor=_ERROR_FLOOR):
        if self.threshold is None:
            return super().choose(theta, y, path, floor)
        support = self._support(theta, y, self.threshold)
        k = int(support.sum())
        scores = np.array([0.0 if i == k else np.nan for i in range(len(path))])
        return _Choice(support, scores)

    def __repr__(self):
        if self.threshold is not None:
            return f"STLSQ(threshold={self.threshold:g}, alpha={self.alpha:g})"
        return f"STLSQ(alpha={self.alpha:g}, criterion={self.criterion!r})"


def check_selector(selector) -> AbstractSelector:
    if selector is None:
        return BestSubset()
    if not isinstance(selector, AbstractSelector):
        hint = ""
        if isinstance(selector, str):
            hint = (
                " Selectors are objects with their own parameters: "
                "`symml.BestSubset()`, `symml.Stepwise()` or "
                "`symml.STLSQ(threshold=0.1)`."
            )
        raise DiscoverError(
            f"`selector` must be a symml selector (`BestSubset`, `Stepwise` or "
            f"`STLSQ`); got {selector!r} of type {type(selector).__name__}." + hint
        )
    return selector


@dataclass(frozen=True)
class ParetoFront:
    """The best model of each number of terms for one discovered term, and the
    one chosen.

    **Attributes:**

    - `n_terms`: the model sizes on the front, increasing.
    - `error`: the relative RMS error of each model on the samples (residual
      RMS / RMS of the target).
    - `held_out_error`: the relative RMS error on held-out samples (by
      cross-validation) when the criterion computed it, else `None`.
    - `score`: the criterion's score of each model (lower is better; NaN
      where it was not scored).
    - `expressions`: each model as a sympy expression (coefficients refitted by
      least squares on all samples).
    - `chosen`: the index of the chosen model in these tuples, or `None` when
      the criterion chose a model off the front (stability selection).
    - `criterion`: the selector and criterion, as text.
    - `inclusion_frequencies`: `((term, frequency), ...)` for every candidate
      term, in library order: the fraction of resamples in which the
      criterion chose the term, when it resamples (stability selection,
      [`Stability`][symml.Stability]); else `None`.
    """

    n_terms: tuple[int, ...]
    error: tuple[float, ...]
    held_out_error: tuple[float, ...] | None
    score: tuple[float, ...]
    expressions: tuple[sp.Expr, ...]
    chosen: int | None
    criterion: str
    inclusion_frequencies: tuple[tuple[sp.Expr, float], ...] | None = None

    def to_dict(self) -> dict:
        """The front as plain JSON-serialisable data."""
        return {
            "n_terms": list(self.n_terms),
            "error": list(self.error),
            "held_out_error": None
            if self.held_out_error is None
            else list(self.held_out_error),
            "score": [None if math.isnan(s) else s for s in self.score],
            "expressions": [str(e) for e in self.expressions],
            "chosen": self.chosen,
            "criterion": self.criterion,
            "inclusion_frequencies": None
            if self.inclusion_frequencies is None
            else {str(t): f for t, f in self.inclusion_frequencies},
        }

    def __str__(self) -> str:
        lines = [f"Pareto front ({self.criterion}):"]
        for i, (k, e) in enumerate(zip(self.n_terms, self.error, strict=True)):
            mark = "*" if i == self.chosen else " "
            held = ""
            if self.held_out_error is not None:
                held = f", held-out {self.held_out_error[i]:.3g}"
            lines.append(
                f" {mark} {k:2d} terms: error {e:.3g}{held}  {self.expressions[i]}"
            )
        if self.inclusion_frequencies is not None:
            shown = ", ".join(
                f"{t}: {f:.2f}" for t, f in self.inclusion_frequencies if f > 0
            )
            lines.append(f" inclusion frequencies: {shown or 'none chosen'}")
        return "\n".join(lines)


def _describe_front(selection: _Selection, limit: int = 6) -> str:
    errors = selection.held_out if selection.held_out is not None else selection.errors
    parts = [
        f"{k} term{'s' if k != 1 else ''}: {100 * e:.3g} %"
        for k, e in enumerate(errors[:limit])
        if selection.path[k] is not None and math.isfinite(e)
    ]
    return "; ".join(parts)


def check_selection(
    selection: _Selection, name: str, terms: Sequence[sp.Expr], max_error: float
) -> None:
    """Warn when no sparse model explains the target to `max_error`, or when
    the front has no clear elbow."""
    k = int(selection.support.sum())
    on_front = selection.path[k] is not None and np.array_equal(
        selection.path[k], selection.support
    )
    errors = selection.held_out if selection.held_out is not None else selection.errors
    which = "held-out" if selection.held_out is not None else "in-sample"
    error = errors[k] if on_front else math.nan
    chosen = [str(t) for t, s in zip(terms, selection.support, strict=True) if s]
    if on_front and math.isfinite(error) and error > max_error:
        warn(
            f"No sparse model explains `{name}` to within {100 * max_error:g} %: the "
            f"chosen model ({k} term{'s' if k != 1 else ''}: "
            f"{', '.join(chosen) or 'none'}) leaves {100 * error:.3g} % of its RMS "
            f"unexplained ({which}). Relative errors along the front: "
            f"{_describe_front(selection)}. The fit may have learned the term only "
            "to this accuracy, the data may be too noisy, or the library may lack "
            "the right terms; look at `Discovery.fronts`.",
            DiscoveryWarning,
        )
    if selection.rival is not None:
        a, b = selection.rival
        warn(
            f"The Pareto front of `{name}` has no clear elbow: the models with {a} "
            f"and {b} terms score about equally ({which} relative errors "
            f"{100 * errors[a]:.3g} % and {100 * errors[b]:.3g} %); the {a}-term "
            "model was chosen. More or less noisy data, or a different library, "
            "may change the answer; look at `Discovery.fronts`.",
            DiscoveryWarning,
        )
