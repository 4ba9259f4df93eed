"""The weak (integral) form: equations tested against compactly supported
smooth functions, so that derivatives move from the noisy data onto the test
functions by integration by parts."""

import math
from collections.abc import Mapping, Sequence

import numpy as np
import sympy as sp
from numpy.polynomial import Polynomial

from .._checks import positive_number
from .._errors import DiscoverError
from ._differentiation import AbstractDerivative, FiniteDifference, as_derivative


def _check_positive(value, name) -> float:
    return positive_number(
        value, name, "WeakForm", error=DiscoverError, what="a positive number"
    )


class WeakForm:
    """Discover from the weak form of the equations (weak SINDy / WSINDy).

    Each equation `∂ₜu = Σ ξⱼ θⱼ(u)` is multiplied by test functions
    `φ(t)` (times `φ(x)` per spatial variable) and integrated over the data:
    `-∫ φₜ u = Σ ξⱼ ∫ φ θⱼ(u)`. No derivative of the data is taken, and
    integration averages the noise away, so this is the robust choice for
    noisy data. A term that is a spatial derivative of a function of the fields
    (`∂ₓ(u²)`, `∂ₓ²u`, and `g(u)·∂ₓu`) is integrated by parts onto `φ`;
    any other derivative in a term is estimated at the samples by `spatial`.

    The test functions are `(1 - s²)^degree` with `s = (t - c) / width`, their
    centres `c` spaced by `spacing · width` inside the data's span; integrals
    use the trapezoidal rule on the samples.

    **Arguments:**

    - `width`: the half-width of the test functions' support: a number (in
      units of time, for ODE data), a dict `{variable: width}` (for grid data;
      the time variable's key is the model's independent variable, or
      `"t"`), or `None` to choose each from the data: of 12 candidates from a
      few samples to a quarter of the span, the narrowest whose full-library
      regression has a held-out error within a factor 1.5 of the lowest (and
      at least three rows per term).
    - `spacing`: the distance between neighbouring centres as a fraction of
      `width` (0.5: each sample is covered by about four functions per axis).
    - `degree`: the exponent of the test functions; `None` takes
      `max(4, 2 + the highest derivative order on the axis)`.
    - `spatial`: the estimator for derivatives that cannot be integrated by
      parts (e.g. `u·u_xx`); by default fourth-order finite differences.
    """

    def __init__(
        self,
        *,
        width: float | Mapping | None = None,
        spacing: float = 0.5,
        degree: int | None = None,
        spatial: AbstractDerivative | str | None = None,
    ):
        if isinstance(width, Mapping):
            width = {k: _check_positive(v, f"width[{k!r}]") for k, v in width.items()}
        elif width is not None:
            width = _check_positive(width, "width")
        self.width = width
        self.spacing = _check_positive(spacing, "spacing")
        if degree is not None and (
            isinstance(degree, bool) or not isinstance(degree, int) or degree < 1
        ):
            raise DiscoverError(
                f"`degree` of `WeakForm` must be a positive integer or None; got "
                f"{degree!r}."
            )
        self.degree = degree
        self.spatial = (
            FiniteDifference(accuracy=4)
            if spatial is None
            else as_derivative(spatial, "spatial")
        )

    def width_for(self, variable: sp.Symbol, is_time: bool) -> float | None:
        """The width given for `variable`, or `None` (choose automatically)."""
        if self.width is None:
            return None
        if isinstance(self.width, float):
            if not is_time:
                raise DiscoverError(
                    "`width` of `WeakForm` is a single number, but the data are on a "
                    f"grid with the spatial variable `{variable}`; give a dict "
                    "`{t: ..., x: ...}` with a width per variable, or `None`."
                )
            return self.width
        for key, value in self.width.items():
            if key == variable or str(key) == str(variable):
                return value
        return None

    def degree_for(self, max_order: int) -> int:
        return self.degree if self.degree is not None else max(4, 2 + max_order)

    def __repr__(self):
        return (
            f"WeakForm(width={self.width!r}, spacing={self.spacing:g}, "
            f"degree={self.degree}, spatial={self.spatial!r})"
        )


def trapezoid_weights(x: np.ndarray) -> np.ndarray:
    h = np.diff(x)
    w = np.zeros_like(x)
    w[:-1] += 0.5 * h
    w[1:] += 0.5 * h
    return w


def test_matrices(
    x: np.ndarray, width: float, spacing: float, degree: int, max_order: int
) -> list[np.ndarray]:
    """`[M₀, M₁, ...]`, `Mₘ[k, i] = φₖ⁽ᵐ⁾(xᵢ) wᵢ` for the test functions
    `φₖ` centred inside the span, `wᵢ` the trapezoidal weights."""
    lo, hi = float(x[0]), float(x[-1])
    if 2 * width > hi - lo:
        raise DiscoverError(
            f"The weak form's test functions have half-width {width:.4g}, more than "
            f"half the span [{lo:.4g}, {hi:.4g}] of the data; use a smaller `width` "
            "or longer series."
        )
    n_centres = int(math.floor((hi - lo - 2 * width) / (spacing * width))) + 1
    centres = lo + width + spacing * width * np.arange(n_centres)
    # Centre the lattice of centres in the span.
    centres += 0.5 * (hi - width - centres[-1])
    s = (x[None, :] - centres[:, None]) / width
    inside = np.abs(s) < 1
    bump = Polynomial([1.0, 0.0, -1.0]) ** degree
    w = trapezoid_weights(x)
    out = []
    for m in range(max_order + 1):
        values = np.where(inside, bump.deriv(m)(s) if m else bump(s), 0.0)
        out.append(values * w[None, :] / width**m)
    return out


def apply(array: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Contract each axis of `array` with its matrix; flatten the centres."""
    out = array
    for axis, matrix in enumerate(matrices):
        out = np.moveaxis(np.tensordot(matrix, out, axes=([1], [axis])), 0, axis)
    return out.reshape(-1)
