"""Criteria: rules that choose one model from the front of best models of
each size."""

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._errors import DiscoverError
from ._search import coefficients, reduce, sse

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
    # How often each candidate term was chosen over resamples of the rows, for
    # criteria that resample (stability selection); None otherwise.
    frequencies: np.ndarray | None = None


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
    lie off the front). Deterministic for a `seed`. How often each candidate
    term was chosen (its inclusion frequency, as in ensemble SINDy) is kept on
    the front: see
    [`Discovery.inclusion_frequencies`][symml.Discovery.inclusion_frequencies].

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
        return _Choice(support, scores, frequencies=frequency)

    def __repr__(self):
        return (
            f"Stability({self.criterion!r}, n_resamples={self.n_resamples}, "
            f"threshold={self.threshold:g}, seed={self.seed})"
        )
