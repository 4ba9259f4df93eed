"""Uncertain inputs: normal distributions of parameters and initial states,
validated and laid out as one vector."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import final

import numpy as np
from jaxtyping import ArrayLike, Float

from .._checks import integer_at_least
from .._errors import UncertaintyError

# Relative tolerances of the covariance checks: asymmetry and negative
# eigenvalues below these fractions of the largest entry are rounding.
_SYMMETRY_TOL = 1e-8
_EIGEN_TOL = 1e-10


def _as_array(value, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise UncertaintyError(
            f"{what} must be a number or an array of numbers; got {value!r}."
        ) from None
    if not np.all(np.isfinite(array)):
        raise UncertaintyError(
            f"{what} is not finite (NaN or inf): {value!r}; give finite numbers."
        )
    return array


@final
class Normal:
    """A normal distribution of one uncertain quantity, or of several jointly.

    `Normal(1.3, 0.013)` is a number with standard deviation 0.013;
    `Normal([1.0, 2.0], covariance=[[...], [...]])` two correlated numbers (or
    the values of a state on a grid, flattened in C order). Give a standard
    deviation or a covariance, not both; a zero standard deviation makes the
    quantity certain.

    **Arguments:**

    - `mean`: the mean, a number or an array.
    - `std`: the standard deviation (broadcast to the mean's shape); each
      entry finite and >= 0. The entries are independent.
    - `covariance`: the covariance of the flattened mean, shape `(k, k)`:
      symmetric and positive semi-definite.

    **Attributes:** `mean` (flat, shape `(k,)`), `shape` (the mean's shape),
    `covariance` (`(k, k)`), `std` (flat, shape `(k,)`).
    """

    def __init__(
        self,
        mean: Float[ArrayLike, "..."],
        std: Float[ArrayLike, "..."] | None = None,
        *,
        covariance: Float[ArrayLike, "k k"] | None = None,
    ):
        mean = _as_array(mean, "The `mean` of `Normal`")
        self.shape: tuple[int, ...] = mean.shape
        self.mean: np.ndarray = mean.ravel()
        k = self.mean.size
        if (std is None) == (covariance is None):
            raise UncertaintyError(
                "`Normal` takes a standard deviation `std` or a `covariance`, "
                "exactly one of them; e.g. `Normal(1.3, 0.013)` or "
                "`Normal([1.0, 2.0], covariance=[[0.01, 0.002], [0.002, 0.04]])`."
            )
        if std is not None:
            std = _as_array(std, "The `std` of `Normal`")
            try:
                std = np.broadcast_to(std, mean.shape).ravel()
            except ValueError:
                raise UncertaintyError(
                    f"The `std` of `Normal` has shape {std.shape}, which does not "
                    f"broadcast to the mean's shape {mean.shape}."
                ) from None
            if np.any(std < 0):
                i = int(np.argmin(std))
                raise UncertaintyError(
                    f"The `std` of `Normal` has a negative entry ({std[i]:g} at "
                    f"index {i}); a standard deviation must be >= 0. Give its "
                    "magnitude (the spread is the same either way)."
                )
            self.covariance: np.ndarray = np.diag(std**2)
            self._factor = np.diag(std)[:, std > 0]
        else:
            cov = _as_array(covariance, "The `covariance` of `Normal`")
            if cov.shape != (k, k):
                raise UncertaintyError(
                    f"The `covariance` of `Normal` has shape {cov.shape}; the mean "
                    f"has {k} entr{'y' if k == 1 else 'ies'}, so it must have shape "
                    f"({k}, {k})."
                )
            self.covariance = cov
            self._factor = _factor(cov, "The `covariance` of `Normal`")
        self.std: np.ndarray = np.sqrt(np.diag(self.covariance))

    @property
    def size(self) -> int:
        return self.mean.size

    def __repr__(self) -> str:
        if self.size == 1:
            return f"Normal({self.mean[0]:g}, {self.std[0]:g})"
        return f"Normal(mean of shape {self.shape}, covariance {self.size}×{self.size})"


def _factor(cov: np.ndarray, what: str) -> np.ndarray:
    """`L` with `L Lᵀ = cov`, of the covariance's rank, or an error saying
    why `cov` is not a covariance."""
    scale = float(np.max(np.abs(cov))) if cov.size else 0.0
    if scale == 0.0:
        return np.zeros((cov.shape[0], 0))
    asymmetry = float(np.max(np.abs(cov - cov.T)))
    if asymmetry > _SYMMETRY_TOL * scale:
        i, j = np.unravel_index(int(np.argmax(np.abs(cov - cov.T))), cov.shape)
        raise UncertaintyError(
            f"{what} is not symmetric: entry ({i}, {j}) is {cov[i, j]:g} but "
            f"({j}, {i}) is {cov[j, i]:g}. A covariance is symmetric; use "
            "`(C + C.T) / 2` if the difference is rounding."
        )
    cov = (cov + cov.T) / 2
    eigenvalues, vectors = np.linalg.eigh(cov)
    if eigenvalues[0] < -_EIGEN_TOL * scale * cov.shape[0]:
        raise UncertaintyError(
            f"{what} is not positive semi-definite: its smallest eigenvalue is "
            f"{eigenvalues[0]:.3g} (the largest {eigenvalues[-1]:.3g}), so some "
            "combination of the inputs would have a negative variance. Check the "
            "correlations (each |C_ij| <= sqrt(C_ii C_jj), and jointly "
            "consistent), or build it as `L @ L.T`."
        )
    keep = eigenvalues > _EIGEN_TOL * scale * cov.shape[0]
    return vectors[:, keep] * np.sqrt(eigenvalues[keep])


def as_normal(value, key) -> Normal:
    """A `Normal` from a `Normal` or a `(mean, std)` pair."""
    if isinstance(value, Normal):
        return value
    if isinstance(value, tuple | list) and len(value) == 2:
        return Normal(value[0], value[1])
    raise UncertaintyError(
        f"The uncertainty of `{key}` must be `symml.Normal(mean, std)`, "
        f"`symml.Normal(mean, covariance=...)` or a pair `(mean, std)`; got "
        f"{value!r}."
    )


@dataclass(frozen=True)
class Inputs:
    """Every uncertain scalar laid out as one vector `θ ~ N(mean, L Lᵀ)`.

    **Attributes:**

    - `names`: per input, its name (a parameter or state name), in order.
    - `shapes`: per input, the shape of its value (`()` for a number).
    - `sizes`: per input, how many entries of `θ` it takes.
    - `mean`: shape `(k,)`.
    - `covariance`: shape `(k, k)`.
    - `factor`: `L`, shape `(k, r)`, with `r` the covariance's rank.
    - `labels`: per entry of `θ`, a readable name (`x`, `rho[3]`).
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    sizes: tuple[int, ...]
    mean: np.ndarray
    covariance: np.ndarray
    factor: np.ndarray
    labels: tuple[str, ...]

    def slices(self) -> dict[str, slice]:
        """`{name: slice of θ}`."""
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes, strict=True):
            out[name] = slice(start, start + size)
            start += size
        return out


def parse_inputs(uncertain, resolve, shape_of) -> Inputs:
    """Lay out `uncertain` (`{key: Normal | (mean, std)}`, where a key may be
    a tuple of keys sharing one joint `Normal`) as one vector.

    `resolve(key) -> name` names a key (or raises); `shape_of(name)` is the
    shape of the input's value (`()` for a parameter, the grid's shape for a
    state on a grid), or `None` when any shape goes (the inputs of an
    expression): then a key on its own takes its `Normal`'s shape and the
    keys of a tuple are numbers.
    """
    if not isinstance(uncertain, Mapping) or not uncertain:
        raise UncertaintyError(
            "`uncertain` must be a non-empty dict `{parameter or state: "
            "symml.Normal(mean, std)}` (or `(mean, std)` pairs; a tuple of keys "
            f"for correlated inputs with a joint `Normal`); got {uncertain!r}."
        )
    names: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    means, blocks, factors, labels = [], [], [], []
    for key, value in uncertain.items():
        keys = key if isinstance(key, tuple) else (key,)
        if not keys:
            raise UncertaintyError("`uncertain` has an empty tuple as a key.")
        group = [resolve(k) for k in keys]
        normal = as_normal(value, key)
        for n in group:
            shape = shape_of(n)
            if shape is None:
                shape = normal.shape if len(group) == 1 else ()
            shapes[n] = tuple(shape)
        sizes = {n: math.prod(shapes[n]) for n in group}
        expected = sum(sizes.values())
        if normal.size != expected:
            detail = ", ".join(f"`{n}`: {sizes[n]}" for n in group)
            raise UncertaintyError(
                f"The uncertainty of `{key}` has {normal.size} entr"
                f"{'y' if normal.size == 1 else 'ies'}, but {detail} make "
                f"{expected}; give a mean of that size (a state on a grid takes "
                "one value per grid point, flattened in C order)."
            )
        for n in group:
            if n in names:
                raise UncertaintyError(
                    f"`{n}` is given an uncertainty twice in `uncertain`; give each "
                    "input once (a tuple key for correlated inputs)."
                )
            names.append(n)
            labels.extend(
                [n] if not shapes[n] else [f"{n}[{i}]" for i in range(sizes[n])]
            )
        means.append(normal.mean)
        blocks.append(normal.covariance)
        factors.append(normal._factor)
    mean = np.concatenate(means)
    k = mean.size
    covariance = np.zeros((k, k))
    rank = sum(f.shape[1] for f in factors)
    factor = np.zeros((k, rank))
    row = col = 0
    for block, f in zip(blocks, factors, strict=True):
        m, r = f.shape
        covariance[row : row + m, row : row + m] = block
        factor[row : row + m, col : col + r] = f
        row, col = row + m, col + r
    return Inputs(
        names=tuple(names),
        shapes=tuple(shapes[n] for n in names),
        sizes=tuple(math.prod(shapes[n]) for n in names),
        mean=mean,
        covariance=covariance,
        factor=factor,
        labels=tuple(labels),
    )


check_positive_int = partial(integer_at_least, error=UncertaintyError)


def check_choice(value, name: str, owner: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise UncertaintyError(
            f"`{name}` of `{owner}` must be one of "
            f"{', '.join(repr(c) for c in choices)}; got {value!r}."
        )
    return value


def check_level(level) -> float:
    try:
        number = float(level)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(level, bool) or not (0 < number < 1):
        raise UncertaintyError(
            f"`level` must be a probability in (0, 1), e.g. 0.95; got {level!r}."
        )
    return number
