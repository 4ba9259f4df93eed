"""Model selection: selectors build the front of best models of each size,
criteria choose one model from it."""

import abc
import contextlib
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .._errors import DiscoverError, SymmlWarning
from ._search import best_subset_path, coefficients, reduce, sse, stepwise_path

# A search maps (theta, y) to one support per model size (None where a size
# is out of reach).
_Search = Callable[[np.ndarray, np.ndarray], list]

# Two sizes whose Elbow scores differ by less than this (in terms) are about
# equally good: the front has no clear elbow.
_AMBIGUOUS = 0.25

# Relative errors below this are numerical error, not signal: on exact data the
# residual of the right model is rounding or the error of the derivative
# estimates and quadratures (1e-7 to 1e-5), and a term that lowers it further
# only fits that error.
_ERROR_FLOOR = 1e-5


def warn(message: str, category: type[Warning]) -> None:
    """Warn at the first frame outside symml: the user's call."""
    package = __name__.split(".")[0]
    frame, level = sys._getframe(1), 2
    while (
        frame is not None
        and frame.f_globals.get("__name__", "").split(".")[0] == package
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@contextlib.contextmanager
def single_threaded():
    """Limit BLAS to one thread: discovery solves many small least-squares
    problems, for which thread start-up and, on a loaded machine, waiting for
    busy cores cost more than the arithmetic (a 1000 x 20 QR: 2 ms on one
    thread, 26-80 ms with OpenBLAS's threads on a busy 2-core machine).
    threadpoolctl comes with scikit-learn, which pysindy needs."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - always present with pysindy
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class DiscoveryWarning(SymmlWarning):
    """Discovery found a model, but the data do not support it well: no sparse
    model explains the term to the stated accuracy, the Pareto front has no
    clear elbow, or a recovered term is of the size of the discretisation
    error."""


class TruncationErrorWarning(DiscoveryWarning):
    """A recovered term of a universal PDE is of the size of the truncation
    error of the stencils the model was fitted with, so the discretisation,
    not the data, may have put it there."""


def _check_int(value, name: str, *, minimum: int, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DiscoverError(
            f"`{name}` of `{owner}` must be an integer >= {minimum}; got {value!r}."
        )
    if value < minimum:
        raise DiscoverError(
            f"`{name}` of `{owner}` must be an integer >= {minimum}; got {value!r}."
        )
    return int(value)


def _check_float(
    value,
    name: str,
    *,
    owner: str,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    example: str = "",
) -> float:
    try:
        number = math.nan if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    bad = isinstance(value, bool) or not math.isfinite(number)
    bad = bad or (number <= low if low_open else number < low) or number > high
    if bad:
        left = "(" if low_open else "["
        right = "]" if high < math.inf else ")"
        interval = f"{left}{low:g}, {high:g}{right}"
        hint = f" Pass e.g. `{owner}({name}={example})`." if example else ""
        raise DiscoverError(
            f"`{name}` of `{owner}` must be a number in {interval}; got {value!r}."
            + hint
        )
    return number


def _folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """Held-out row sets: a seeded permutation cut into `folds` parts."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, folds)]


def _held_out(
    theta: np.ndarray,
    y: np.ndarray,
    search: _Search,
    folds: int,
    seed: int,
    n_sizes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out squared errors by size: the search is rerun on the training
    rows of each fold, and the model of each size predicts the held-out rows.

    **Returns:**

    `(sse, per_fold)`: the held-out residual sum of squares of each size, and
    the per-fold mean squared errors, shape `(folds, n_sizes)` (NaN where a
    fold's search could not reach a size).
    """
    n = len(y)
    per_fold = np.full((folds, n_sizes), np.nan)
    total = np.zeros(n_sizes)
    for i, test in enumerate(_folds(n, folds, seed)):
        train = np.setdiff1d(np.arange(n), test)
        path = search(theta[train], y[train])
        reduced = reduce(theta[train], y[train])
        for k in range(n_sizes):
            support = path[k] if k < len(path) else None
            if support is None:
                total[k] = np.nan
                continue
            c = coefficients(reduced, support)
            residual = y[test] - theta[test] @ c
            per_fold[i, k] = np.mean(residual**2)
            total[k] += np.sum(residual**2)
    return total, per_fold


@dataclass(frozen=True)
class _Choice:
    """What a criterion chose, with its scores (lower is better) by size."""

    support: np.ndarray
    scores: np.ndarray
    held_out: np.ndarray | None = None
    # (chosen size, rival size) when another size scores about as well.
    rival: tuple[int, int] | None = None


class AbstractCriterion(abc.ABC):
    """A rule that chooses one model from the front of best models of each
    size.

    Subclasses implement `choose(theta, y, path, search, floor)`, where `theta`
    and `y` are the normalised features and target, `path[k]` the support of
    the best model of `k` terms (or `None`), `search(theta, y)` recomputes the
    path on other rows (for held-out errors and resamples), and `floor` is the
    relative error below which differences are numerical error, not signal.
    """

    @abc.abstractmethod
    def choose(
        self,
        theta: np.ndarray,
        y: np.ndarray,
        path: list,
        search: _Search,
        floor: float = _ERROR_FLOOR,
    ) -> _Choice:
        """Choose a support; see the class docstring."""


def _errors(theta, y, path) -> np.ndarray:
    """In-sample relative RMS errors (targets are unit-RMS) by size."""
    n = len(y)
    reduced = reduce(theta, y)
    return np.array(
        [np.nan if s is None else math.sqrt(sse(reduced, s) / n) for s in path]
    )


def _best(scores: np.ndarray) -> int:
    """The first (smallest) size with the lowest finite score."""
    finite = np.where(np.isfinite(scores), scores, np.inf)
    return int(np.argmin(finite))


class Elbow(AbstractCriterion):
    """The elbow of the Pareto front: each term must buy a `gain`-fold
    reduction of the held-out error.

    The chosen model minimises `log(error) / log(gain) + n_terms` over the front,
    where `error` is the relative RMS error on held-out rows (`folds`-fold
    cross-validation, seeded). So a larger model is chosen only if it divides
    the error by at least `gain` per extra term, and a smaller one only if it
    costs less than that. Unlike information criteria, this does not assume
    independent errors: the errors of a network's learned term or of estimated
    derivatives are smooth and correlated, and any likelihood-based criterion
    then keeps terms that fit them. With `gain=2`, a term is kept when it
    carries at least about twice the size of what the model leaves unexplained.

    Relative errors below 1e-5 count as 1e-5 (numerical error, not signal:
    the residual of the right model on exact data). When
    another size scores within a quarter of a term of the chosen one, the
    front has no clear elbow and discovery warns.

    **Arguments:**

    - `gain`: the factor by which each kept term must reduce the error (> 1).
    - `folds`: the number of cross-validation folds; `0` uses the in-sample
      errors (faster; fine for many samples per term).
    - `seed`: the seed of the fold assignment.
    """

    def __init__(self, gain: float = 2.0, *, folds: int = 5, seed: int = 0):
        self.gain = _check_float(
            gain, "gain", owner="Elbow", low=1.0, low_open=True, example="2.0"
        )
        self.folds = _check_folds(folds, "Elbow")
        self.seed = _check_int(seed, "seed", minimum=0, owner="Elbow")

    def choose(self, theta, y, path, search, floor=_ERROR_FLOOR):
        if self.folds:
            total, _ = _held_out(theta, y, search, self.folds, self.seed, len(path))
            errors = np.sqrt(total / len(y))
            held_out = errors
        else:
            errors, held_out = _errors(theta, y, path), None
        sizes = np.arange(len(path))
        scores = np.log(np.maximum(errors, floor)) / math.log(self.gain) + sizes
        k = _best(scores)
        others = np.where(
            sizes == k, np.inf, np.where(np.isfinite(scores), scores, np.inf)
        )
        j = int(np.argmin(others))
        rival = (k, j) if others[j] - scores[k] < _AMBIGUOUS else None
        return _Choice(path[k], scores, held_out, rival)

    def __repr__(self):
        return f"Elbow(gain={self.gain:g}, folds={self.folds}, seed={self.seed})"


def _check_folds(folds, owner: str) -> int:
    if (
        isinstance(folds, bool)
        or not isinstance(folds, (int, np.integer))
        or (folds < 0 or folds == 1)
    ):
        raise DiscoverError(
            f"`folds` of `{owner}` must be 0 (in-sample errors) or an integer >= 2; "
            f"got {folds!r}."
        )
    return int(folds)


class _InformationCriterion(AbstractCriterion):
    name: str

    def __init__(self, *, folds: int = 5, seed: int = 0):
        self.folds = _check_folds(folds, self.name)
        self.seed = _check_int(seed, "seed", minimum=0, owner=self.name)

    @abc.abstractmethod
    def _penalty(self, n: int, k: np.ndarray) -> np.ndarray: ...

    def choose(self, theta, y, path, search, floor=_ERROR_FLOOR):
        n = len(y)
        if self.folds:
            total, _ = _held_out(theta, y, search, self.folds, self.seed, len(path))
            held_out = np.sqrt(total / n)
        else:
            reduced = reduce(theta, y)
            total = np.array([np.nan if s is None else sse(reduced, s) for s in path])
            held_out = None
        sizes = np.arange(len(path))
        with np.errstate(divide="ignore", invalid="ignore"):
            rss = np.maximum(total / n, floor**2)
            scores = n * np.log(rss) + self._penalty(n, sizes)
        k = _best(scores)
        return _Choice(path[k], scores, held_out)

    def __repr__(self):
        return f"{self.name}(folds={self.folds}, seed={self.seed})"


class AIC(_InformationCriterion):
    """Akaike's information criterion, `n log(RSS / n) + 2 k`, with the
    residual sum of squares on held-out rows (`folds`-fold cross-validation;
    `folds=0` for the in-sample RSS). It assumes independent Gaussian errors,
    and keeps spurious terms when the errors are correlated (learned terms,
    estimated derivatives); see [`Elbow`][symml.Elbow].

    **Arguments:**

    - `folds`: cross-validation folds for the held-out RSS, or `0`.
    - `seed`: the seed of the fold assignment.
    """

    name = "AIC"

    def _penalty(self, n, k):
        return 2.0 * k


class AICc(_InformationCriterion):
    """AIC with the small-sample correction `2 k (k + 1) / (n - k - 1)`;
    arguments as [`AIC`][symml.AIC]."""

    name = "AICc"

    def _penalty(self, n, k):
        with np.errstate(divide="ignore"):
            return np.where(
                n - k - 1 > 0, 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1), np.inf
            )


class BIC(_InformationCriterion):
    """The Bayesian information criterion, `n log(RSS / n) + k log n`;
    arguments as [`AIC`][symml.AIC]."""

    name = "BIC"

    def _penalty(self, n, k):
        return k * math.log(n)


class CrossValidation(AbstractCriterion):
    """The model with the lowest cross-validated error, or (with
    `one_standard_error=True`, the default) the smallest model whose
    cross-validated error is within one standard error of the lowest.

    **Arguments:**

    - `folds`: the number of folds (>= 2).
    - `one_standard_error`: apply the one-standard-error rule.
    - `seed`: the seed of the fold assignment.
    """

    def __init__(
        self, folds: int = 5, *, one_standard_error: bool = True, seed: int = 0
    ):
        self.folds = _check_folds(folds, "CrossValidation")
        if self.folds == 0:
            raise DiscoverError(
                "`folds` of `CrossValidation` must be an integer >= 2; got 0."
            )
        self.one_standard_error = bool(one_standard_error)
        self.seed = _check_int(seed, "seed", minimum=0, owner="CrossValidation")

    def choose(self, theta, y, path, search, floor=_ERROR_FLOOR):
        total, per_fold = _held_out(theta, y, search, self.folds, self.seed, len(path))
        scores = np.maximum(np.sqrt(total / len(y)), floor)
        k = _best(scores)
        if self.one_standard_error:
            spread = np.sqrt(per_fold[:, k])
            bound = scores[k] + np.std(spread, ddof=1) / math.sqrt(self.folds)
            k = int(
                np.flatnonzero(np.where(np.isfinite(scores), scores, np.inf) <= bound)[
                    0
                ]
            )
        return _Choice(path[k], scores, scores)

    def __repr__(self):
        return (
            f"CrossValidation(folds={self.folds}, one_standard_error="
            f"{self.one_standard_error}, seed={self.seed})"
        )


class Stability(AbstractCriterion):
    """Stability selection: the terms chosen in at least a fraction
    `threshold` of bootstrap resamples of the rows.

    On each resample the selector's search is rerun and `criterion` chooses a
    model; the result keeps the terms that were chosen often enough (so it may
    lie off the front). Deterministic for a `seed`.

    **Arguments:**

    - `criterion`: the rule applied on each resample; by default
      `Elbow(folds=0)`.
    - `n_resamples`: the number of bootstrap resamples.
    - `threshold`: the selection frequency a term needs, in (0, 1].
    - `seed`: the seed of the resamples.
    """

    def __init__(
        self,
        criterion: AbstractCriterion | None = None,
        *,
        n_resamples: int = 20,
        threshold: float = 0.7,
        seed: int = 0,
    ):
        criterion = Elbow(folds=0) if criterion is None else criterion
        if not isinstance(criterion, AbstractCriterion) or isinstance(
            criterion, Stability
        ):
            raise DiscoverError(
                f"`criterion` of `Stability` must be a criterion such as "
                f"`symml.Elbow()` or `symml.BIC()` (not another `Stability`); got "
                f"{criterion!r}."
            )
        self.criterion = criterion
        self.n_resamples = _check_int(
            n_resamples, "n_resamples", minimum=1, owner="Stability"
        )
        self.threshold = _check_float(
            threshold,
            "threshold",
            owner="Stability",
            low=0.0,
            high=1.0,
            low_open=True,
            example="0.7",
        )
        self.seed = _check_int(seed, "seed", minimum=0, owner="Stability")

    def choose(self, theta, y, path, search, floor=_ERROR_FLOOR):
        n, p = theta.shape
        rng = np.random.default_rng(self.seed)
        counts = np.zeros(p)
        for _ in range(self.n_resamples):
            rows = rng.integers(0, n, size=n)
            sub_path = search(theta[rows], y[rows])
            counts += self.criterion.choose(
                theta[rows], y[rows], sub_path, search
            ).support
        frequency = counts / self.n_resamples
        support = frequency >= self.threshold
        # The score of each size on the front: how far its terms are from
        # all being stable (0 when every term of it is).
        scores = np.array(
            [np.nan if s is None else float(np.sum(support != s)) for s in path]
        )
        return _Choice(support, scores)

    def __repr__(self):
        return (
            f"Stability({self.criterion!r}, n_resamples={self.n_resamples}, "
            f"threshold={self.threshold:g}, seed={self.seed})"
        )


# -- selectors ------------------------------------------------------------------


@dataclass(frozen=True)
class _Selection:
    """One target's front and the chosen support (normalised problem)."""

    path: list
    errors: np.ndarray
    held_out: np.ndarray | None
    scores: np.ndarray
    support: np.ndarray
    rival: tuple[int, int] | None


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


# -- the front, as users see it ---------------------------------------------------


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
    """

    n_terms: tuple[int, ...]
    error: tuple[float, ...]
    held_out_error: tuple[float, ...] | None
    score: tuple[float, ...]
    expressions: tuple[sp.Expr, ...]
    chosen: int | None
    criterion: str

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
