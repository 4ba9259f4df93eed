"""Derivative estimators for sampled data: the strong form of discovery from
data needs du/dt (and, for PDEs on a grid, spatial derivatives) at the samples.

Every estimator maps `(values, coords)` to derivatives of any order along one
axis, is deterministic, and leaves its input untouched. pysindy and the
`derivative` package are imported only when an estimator that uses them runs.
"""

import abc
import math
from functools import partial

import numpy as np

from .._checks import integer_at_least
from .._errors import DiscoverError


def _check_coords(values: np.ndarray, coords: np.ndarray, axis: int) -> None:
    if coords.ndim != 1 or coords.size != values.shape[axis]:
        raise DiscoverError(
            f"The coordinates have shape {coords.shape}; expected "
            f"({values.shape[axis]},), one per sample along axis {axis}."
        )
    if coords.size < 3 or not np.all(np.diff(coords) > 0):
        raise DiscoverError(
            "Derivatives need at least 3 samples at strictly increasing "
            f"coordinates; got {coords.size} sample(s)."
        )


def _uniform_step(coords: np.ndarray, who: str) -> float:
    steps = np.diff(coords)
    if not np.allclose(steps, steps[0], rtol=1e-6, atol=0.0):
        raise DiscoverError(
            f"`{who}` needs uniformly spaced samples; the spacings range from "
            f"{steps.min():.4g} to {steps.max():.4g}. Use `symml.FiniteDifference()` "
            "or `symml.Spline()`, which accept any spacing, or resample the data."
        )
    return float(steps[0])


_positive_int = partial(integer_at_least, error=DiscoverError)


class AbstractDerivative(abc.ABC):
    """An estimator of derivatives of sampled data along one axis.

    Subclasses implement `differentiate(values, coords, *, axis, order)`.
    Estimators are chosen by object (`symml.Spline()`) or by name (`"spline"`,
    `"finite_difference"`, `"smoothed_finite_difference"`, `"savitzky_golay"`,
    `"total_variation"`, `"spectral"`).
    """

    @abc.abstractmethod
    def differentiate(
        self,
        values: np.ndarray,
        coords: np.ndarray,
        *,
        axis: int = 0,
        order: int = 1,
        periodic: bool = False,
    ) -> np.ndarray:
        """The `order`-th derivative of `values` along `axis`.

        **Arguments:**

        - `values`: the samples, any shape.
        - `coords`: the coordinates of the samples along `axis`, increasing.
        - `axis`: the axis to differentiate along.
        - `order`: the derivative order (>= 1).
        - `periodic`: whether the data are periodic along `axis` (a periodic
          grid excludes the right end point).

        **Returns:**

        An array of the shape of `values`.
        """

    def __call__(self, values, coords, *, axis=0, order=1, periodic=False):
        values = np.asarray(values, dtype=float)
        coords = np.asarray(coords, dtype=float)
        axis = axis % values.ndim
        _check_coords(values, coords, axis)
        order = _positive_int(order, "order", type(self).__name__)
        return self.differentiate(
            values, coords, axis=axis, order=order, periodic=periodic
        )

    def truncation_error(
        self, values, coords, *, axis=0, order=1, periodic=False
    ) -> np.ndarray | None:
        """An estimate of the error of `differentiate` on exact data (the
        truncation error of a stencil), or `None` when the estimator has no
        such estimate. Discovery treats relative errors below it as noise."""
        return None


def _repeat(one, values, coords, axis, order, periodic):
    """Apply a first-derivative estimator `order` times."""
    out = values
    for _ in range(order):
        out = one(out, coords, axis, periodic)
    return out


class FiniteDifference(AbstractDerivative):
    """Central finite differences (one-sided near the ends, or wrapping around
    for periodic data), accurate to `accuracy`-th order in the spacing; any
    spacing. Uses pysindy's `FiniteDifference`.

    Exact for polynomials of low degree, but noise is amplified by about
    1/spacing per derivative order: use it on clean data.

    **Arguments:**

    - `accuracy`: the order of accuracy (a positive integer; 2 by default).
    """

    def __init__(self, accuracy: int = 2):
        self.accuracy = _positive_int(accuracy, "accuracy", "FiniteDifference")

    def differentiate(self, values, coords, *, axis=0, order=1, periodic=False):
        import pysindy as ps

        method = ps.FiniteDifference(
            order=self.accuracy, d=order, axis=axis, periodic=periodic
        )
        return np.asarray(method._differentiate(values, coords))

    def truncation_error(self, values, coords, *, axis=0, order=1, periodic=False):
        # The leading error of the stencil is its difference from the next,
        # more accurate one.
        finer = FiniteDifference(self.accuracy + 2)
        return self(values, coords, axis=axis, order=order, periodic=periodic) - finer(
            values, coords, axis=axis, order=order, periodic=periodic
        )

    def __repr__(self):
        return f"FiniteDifference(accuracy={self.accuracy})"


class SmoothedFiniteDifference(AbstractDerivative):
    """A Savitzky–Golay smoothing (`window` samples, polynomials of degree
    `degree`) followed by second-order finite differences; pysindy's
    `SmoothedFiniteDifference`.

    **Arguments:**

    - `window`: the smoothing window in samples (odd, > `degree`).
    - `degree`: the degree of the local polynomials.
    """

    def __init__(self, window: int = 11, degree: int = 3):
        self.window, self.degree = _window(window, degree, "SmoothedFiniteDifference")

    def differentiate(self, values, coords, *, axis=0, order=1, periodic=False):
        import pysindy as ps

        window = min(self.window, _largest_odd(values.shape[axis]))
        method = ps.SmoothedFiniteDifference(
            smoother_kws={
                "window_length": window,
                "polyorder": min(self.degree, window - 1),
                "axis": axis,
                "mode": "wrap" if periodic else "interp",
            },
            d=order,
            axis=axis,
            periodic=periodic,
        )
        return np.asarray(method._differentiate(values, coords))

    def __repr__(self):
        return f"SmoothedFiniteDifference(window={self.window}, degree={self.degree})"


def _largest_odd(n: int) -> int:
    return n if n % 2 else n - 1


def _window(window, degree, owner) -> tuple[int, int]:
    window = _positive_int(window, "window", owner, minimum=3)
    degree = _positive_int(degree, "degree", owner)
    if window % 2 == 0 or window <= degree:
        raise DiscoverError(
            f"`window` of `{owner}` must be odd and larger than `degree` "
            f"({degree}); got {window}."
        )
    return window, degree


class SavitzkyGolay(AbstractDerivative):
    """The derivative of a local least-squares polynomial fit (Savitzky–Golay):
    polynomials of degree `degree` over `window` samples; uniform spacing.

    **Arguments:**

    - `window`: the window in samples (odd, > `degree`).
    - `degree`: the degree of the local polynomials (>= the derivative order).
    """

    def __init__(self, window: int = 11, degree: int = 3):
        self.window, self.degree = _window(window, degree, "SavitzkyGolay")

    def differentiate(self, values, coords, *, axis=0, order=1, periodic=False):
        from scipy.signal import savgol_filter

        h = _uniform_step(coords, "SavitzkyGolay")
        window = min(self.window, _largest_odd(values.shape[axis]))
        degree = min(max(self.degree, order), window - 1)
        return savgol_filter(
            values,
            window,
            degree,
            deriv=order,
            delta=h,
            axis=axis,
            mode="wrap" if periodic else "interp",
        )

    def __repr__(self):
        return f"SavitzkyGolay(window={self.window}, degree={self.degree})"


class Spline(AbstractDerivative):
    """The derivative of a cubic smoothing spline (scipy's
    `make_smoothing_spline`), any spacing.

    The smoothing weight `lam` is chosen by generalised cross-validation when
    not given, so the estimator adapts to the noise level without tuning.

    **Arguments:**

    - `lam`: the smoothing weight, or `None` to choose it by generalised
      cross-validation for each series.
    """

    def __init__(self, lam: float | None = None):
        if lam is not None:
            try:
                lam = float(lam)
            except (TypeError, ValueError):
                lam = math.nan
            if not math.isfinite(lam) or lam < 0:
                raise DiscoverError(
                    f"`lam` of `Spline` must be a non-negative number or None; got "
                    f"{lam!r}."
                )
        self.lam = lam

    def differentiate(self, values, coords, *, axis=0, order=1, periodic=False):
        from scipy.interpolate import make_smoothing_spline

        if order > 3:
            raise DiscoverError(
                f"A cubic `Spline` has no derivative of order {order} beyond 3; use "
                "`symml.FiniteDifference()` or `symml.Spectral()` for higher orders."
            )
        moved = np.moveaxis(values, axis, 0)
        flat = moved.reshape(moved.shape[0], -1)
        out = np.empty_like(flat)
        for j in range(flat.shape[1]):
            spline = make_smoothing_spline(coords, flat[:, j], lam=self.lam)
            out[:, j] = spline.derivative(order)(coords)
        return np.moveaxis(out.reshape(moved.shape), 0, axis)

    def __repr__(self):
        return f"Spline(lam={self.lam})"


class Spectral(AbstractDerivative):
    """Fourier differentiation of periodic, uniformly spaced data: exact for
    band-limited signals, but it amplifies noise at high wavenumbers (set
    `filter` to keep only the lowest fraction of them).

    **Arguments:**

    - `filter`: the fraction of the wavenumbers kept, in (0, 1].
    """

    def __init__(self, filter: float = 1.0):
        try:
            filter = float(filter)
        except (TypeError, ValueError):
            filter = math.nan
        if not 0 < filter <= 1:
            raise DiscoverError(
                f"`filter` of `Spectral` must be in (0, 1]; got {filter!r}."
            )
        self.filter = filter

    def differentiate(self, values, coords, *, axis=0, order=1, periodic=False):
        if not periodic:
            raise DiscoverError(
                "`Spectral` differentiation needs periodic data, and this axis is not "
                "periodic (time never is). Use it for the spatial derivatives of "
                "periodic data (`boundary='periodic'`, e.g. "
                "`WeakForm(spatial=symml.Spectral())`), or another estimator."
            )
        h = _uniform_step(coords, "Spectral")
        n = values.shape[axis]
        k = 2j * np.pi * np.fft.fftfreq(n, d=h)
        keep = np.abs(np.fft.fftfreq(n)) <= 0.5 * self.filter
        if n % 2 == 0 and order % 2 == 1:
            keep &= np.arange(n) != n // 2  # the Nyquist mode has no odd derivative
        shape = [1] * values.ndim
        shape[axis] = n
        factor = (np.where(keep, k, 0.0) ** order).reshape(shape)
        spectrum = np.fft.fft(values, axis=axis)
        return np.real(np.fft.ifft(factor * spectrum, axis=axis))

    def __repr__(self):
        return f"Spectral(filter={self.filter:g})"


class TotalVariation(AbstractDerivative):
    """Total-variation regularised differentiation (Chartrand 2011): the
    derivative `u` minimising `alpha · TV(u) + ½ |∫u − (f − f₀)|²`, so it is
    piecewise smooth and robust to noise; any spacing, but slower than the
    others (a few sparse solves per series).

    **Arguments:**

    - `alpha`: the regularisation weight, relative to the data: the functional
      is scaled so that `alpha` multiplies the typical size of the data times
      the span of the coordinates. `alpha = 1e-5` suits about 1 % noise on a
      smooth signal; more noise needs more.
    - `iterations`: the number of lagged-diffusivity iterations.
    """

    def __init__(self, alpha: float = 1e-5, *, iterations: int = 20):
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            alpha = math.nan
        if not math.isfinite(alpha) or alpha <= 0:
            raise DiscoverError(
                f"`alpha` of `TotalVariation` must be a positive number; got {alpha!r}."
            )
        self.alpha = alpha
        self.iterations = _positive_int(iterations, "iterations", "TotalVariation")

    def _first(self, f: np.ndarray, x: np.ndarray) -> np.ndarray:
        from scipy.sparse import diags

        n = f.size
        h = np.diff(x)
        # `a` integrates the derivative (given at the samples) from x[0] by the
        # trapezoidal rule; `d` differences it.
        a = np.zeros((n, n))
        for i in range(1, n):
            a[i, :i] += 0.5 * h[:i]
            a[i, 1 : i + 1] += 0.5 * h[:i]
        d = diags([-1 / h, 1 / h], [0, 1], shape=(n - 1, n)).tocsr()
        scale = max(float(np.sqrt(np.mean((f - f.mean()) ** 2))), 1e-300)
        span = float(x[-1] - x[0])
        # Dimensionless weight: the data term is a sum over n samples of
        # squared data, the total variation of u is about scale / span times
        # the number of its swings; this makes `alpha` independent of units.
        alpha = self.alpha * n * scale * span
        target = f - f[0]
        ata = a.T @ a
        atb = a.T @ target
        u = np.gradient(f, x)
        eps = 1e-8 * (scale / span) ** 2 / span**2
        for _ in range(self.iterations):
            e = diags(h / np.sqrt((d @ u) ** 2 + eps))
            u = np.linalg.solve(alpha * (d.T @ e @ d).toarray() + ata, atb)
        return u

    def differentiate(self, values, coords, *, axis=0, order=1, periodic=False):
        if values.shape[axis] > 4000:
            raise DiscoverError(
                f"`TotalVariation` solves dense systems of the series' length; "
                f"{values.shape[axis]} samples is too many (at most 4000). Use "
                "`symml.Spline()` or the weak form (`symml.WeakForm()`)."
            )

        def one(v, x, ax, _periodic):
            moved = np.moveaxis(v, ax, 0)
            flat = moved.reshape(moved.shape[0], -1)
            out = np.stack(
                [self._first(flat[:, j], x) for j in range(flat.shape[1])], 1
            )
            return np.moveaxis(out.reshape(moved.shape), 0, ax)

        return _repeat(one, values, coords, axis, order, periodic)

    def __repr__(self):
        return f"TotalVariation(alpha={self.alpha:g}, iterations={self.iterations})"


_NAMES = {
    "finite_difference": FiniteDifference,
    "smoothed_finite_difference": SmoothedFiniteDifference,
    "savitzky_golay": SavitzkyGolay,
    "spline": Spline,
    "spectral": Spectral,
    "total_variation": TotalVariation,
}


def as_derivative(method, what: str = "derivative") -> AbstractDerivative:
    """An estimator from an estimator or its name."""
    if isinstance(method, AbstractDerivative):
        return method
    if isinstance(method, str) and method in _NAMES:
        return _NAMES[method]()
    raise DiscoverError(
        f"`{what}` must be a derivative estimator (e.g. `symml.Spline()`) or one of "
        f"the names {', '.join(map(repr, _NAMES))}; got {method!r}."
    )
