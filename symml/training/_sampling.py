"""Collocation points in a box: grids, uniform random and quasi-random."""

import math
import warnings

import numpy as np

from .._errors import FitError

SAMPLERS = ("grid", "uniform", "sobol", "halton")


def sample_box(
    bounds: list[tuple[float, float]], n: int, method: str, rng: np.random.Generator
) -> np.ndarray:
    """`n` points (about `n` for a grid) in the box `bounds`, shape `(n, d)`.

    `"grid"` places a tensor grid with ⌈n^(1/d)⌉ points per axis, including the
    box's faces; `"uniform"` draws from `rng`; `"sobol"` and `"halton"` are
    scrambled low-discrepancy sequences seeded from `rng`, so every draw is
    reproducible by seed and a fresh draw covers the box anew.
    """
    d = len(bounds)
    if d == 0:
        return np.zeros((1, 0))
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    if method == "grid":
        per_axis = max(2, math.ceil(n ** (1 / d)))
        axes = [np.linspace(a, b, per_axis) for a, b in zip(lo, hi, strict=True)]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)
    if method == "uniform":
        unit = rng.uniform(size=(n, d))
    elif method in ("sobol", "halton"):
        # Imported here: `scipy.stats` takes about a second to import, and
        # only quasi-random sampling needs it.
        from scipy.stats import qmc

        seed = int(rng.integers(2**32))
        engine = (
            qmc.Sobol(d, scramble=True, seed=seed)
            if method == "sobol"
            else qmc.Halton(d, scramble=True, seed=seed)
        )
        with warnings.catch_warnings():
            # A size that is not a power of two loses some balance, not validity.
            warnings.simplefilter("ignore", UserWarning)
            unit = engine.random(n)
    else:
        raise FitError(
            f"`sampling={method!r}` is not known; use one of {', '.join(SAMPLERS)}."
        )
    return lo + (hi - lo) * unit


def residual_draw(
    candidates: np.ndarray,
    residuals: np.ndarray,
    n: int,
    *,
    k: float,
    c: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """`n` of the `candidates` (rows), drawn without replacement with
    probability `p ∝ |r|^k / mean(|r|^k) + c` (residual-based adaptive
    distribution, RAD: Wu, Zhu, Tan, Kartha & Lu 2023). `c` keeps a uniform
    share, so no region is left without points; `k` sharpens the draw towards
    large residuals.

    **Returns:** the drawn rows, shape `(n, d)`, in candidate order.
    """
    r = np.abs(np.asarray(residuals, dtype=float)) ** k
    if not np.all(np.isfinite(r)):
        # A non-finite residual is the loss's to report; sample uniformly.
        r = np.ones_like(r)
    mean = r.mean()
    density = (r / mean if mean > 0 else np.zeros_like(r)) + c
    if not density.sum() > 0:
        density = np.ones_like(density)
    chosen = rng.choice(len(r), size=n, replace=False, p=density / density.sum())
    return candidates[np.sort(chosen)]
