"""Multistep fits: the residual of a linear multistep formula on the data
(Raissi, Perdikaris & Karniadakis, "Multistep neural networks for data-driven
discovery of nonlinear dynamical systems", 2018)."""

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._errors import DataError, FitError
from ..dsl import Data
from ..lowering import AbstractSystem, Params
from ._collocation import _observed_layout, matching_problem, observed_datasets
from ._loop import Problem
from ._method import AbstractFitMethod, one_of, positive_integer

_FORMULAS = ("bdf", "adams-moulton", "adams-bashforth")
_MAX_ORDER = 6


def _solve_exact(matrix: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction]:
    """Gaussian elimination in exact rationals (the order conditions are
    Vandermonde systems, ill-conditioned in floating point)."""
    n = len(rhs)
    a = [row[:] + [r] for row, r in zip(matrix, rhs, strict=True)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if a[r][col] != 0)
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col and a[r][col] != 0:
                factor = a[r][col] / a[col][col]
                a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
    return [a[i][n] / a[i][i] for i in range(n)]


def multistep_coefficients(formula: str, order: int) -> tuple[np.ndarray, np.ndarray]:
    """`(α, β)` of the `order`-th order formula in the form
    `Σ_j α_j y_{n+j} = h Σ_j β_j f_{n+j}`, `j = 0..s`, exact for polynomials
    of degree `order`.

    Adams–Bashforth of order p has s = p steps and `β_s = 0` (explicit);
    Adams–Moulton of order p has s = max(p − 1, 1) (order 1 is backward
    Euler, order 2 the trapezoidal rule); BDF of order p has s = p and
    `β = (0, ..., 0, 1)`.
    """
    p = order
    if formula == "bdf":
        s = p
        # Σ α_j j^q = q s^(q-1) for q = 0..p (exact for t^q at the last node).
        matrix = [[Fraction(j) ** q for j in range(s + 1)] for q in range(p + 1)]
        rhs = [
            Fraction(q) * Fraction(s) ** (q - 1) if q else Fraction(0)
            for q in range(p + 1)
        ]
        alpha = _solve_exact(matrix, rhs)
        beta = [Fraction(0)] * s + [Fraction(1)]
    else:
        explicit = formula == "adams-bashforth"
        s = p if explicit else max(p - 1, 1)
        nodes = list(range(s)) if explicit else list(range(s + 1))
        if not explicit and p == 1:
            nodes = [s]
        # Σ β_j j^q = ∫_{s-1}^{s} x^q dx for q < len(nodes).
        matrix = [[Fraction(j) ** q for j in nodes] for q in range(len(nodes))]
        rhs = [
            (Fraction(s) ** (q + 1) - Fraction(s - 1) ** (q + 1)) / (q + 1)
            for q in range(len(nodes))
        ]
        weights = _solve_exact(matrix, rhs)
        beta = [Fraction(0)] * (s + 1)
        for j, w in zip(nodes, weights, strict=True):
            beta[j] = w
        alpha = [Fraction(0)] * (s + 1)
        alpha[s], alpha[s - 1] = Fraction(1), Fraction(-1)
    return (
        np.array([float(a) for a in alpha]),
        np.array([float(b) for b in beta]),
    )


def _step(t: np.ndarray, owner: str) -> float:
    h = np.diff(t)
    if not np.allclose(h, h[0], rtol=1e-6, atol=0):
        raise DataError(
            f"`{owner}` needs observations at equally spaced times; the data's "
            f"steps range from {h.min():g} to {h.max():g}. Resample the data to a "
            "uniform grid, or use `method='collocation'`."
        )
    return float(np.mean(h))


@dataclass(frozen=True)
class Multistep(AbstractFitMethod):
    """Fit an ODE system without solving it: the residual of a linear
    multistep formula on the data,

        r_n = (1/h) Σ_j α_j y_{n+j} − Σ_j β_j f(t_{n+j}, y_{n+j}),

    over every window of `s + 1` consecutive observations (Raissi, Perdikaris
    & Karniadakis 2018: a UDE with a multistep integrator and fixed steps).
    On exact data the residual is `O(h^order)`; on noisy data the noise
    enters it divided by `h`, so fit smooth or densely observed data (or use
    [`Collocation`][symml.Collocation], which smooths). The loss is the mean
    over states of each state's mean squared residual divided by the variance
    of its data term `(1/h) Σ α_j y_{n+j}`.

    Every state must be observed, at equally spaced times.

    **Arguments:**

    - `formula`: `"bdf"` (backward differentiation, the default),
      `"adams-moulton"` (implicit Adams) or `"adams-bashforth"` (explicit
      Adams).
    - `order`: the order of the formula, 1 to 6.
    - `derivatives`: the scheme of derivatives of networks in the model (as
      in [`lower`][symml.lower]).
    """

    name: ClassVar[str] = "Multistep"
    default_steps: ClassVar[int] = 2000
    default_learning_rate: ClassVar[float] = 3e-3
    default_lbfgs_steps: ClassVar[int] = 300
    formula: str = "bdf"
    order: int = 2
    derivatives: Any = None

    def __post_init__(self):
        owner = "Multistep"
        one_of(self.formula, "formula", owner, _FORMULAS)
        positive_integer(self.order, "order", owner)
        if self.order > _MAX_ORDER:
            raise FitError(
                f"`order={self.order}` of `Multistep` is too high; use 1 to "
                f"{_MAX_ORDER}."
            )
        object.__setattr__(
            self, "_coefficients", multistep_coefficients(self.formula, self.order)
        )

    @property
    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """`(α, β)`, the formula's coefficients (see
        [`multistep_coefficients`][symml.training.multistep_coefficients])."""
        return self._coefficients

    def residuals(
        self, system: AbstractSystem, data: Data, params: Params | None = None
    ) -> Float[Array, "N n"]:
        """The residuals `r_n` of the formula on one trajectory's data, shape
        `(T − s, n)` in the system's flat layout: how far the data are from
        solving `system` by this formula."""
        alpha, beta = self._coefficients
        y = _observed_layout(system, data, "Multistep")
        h = _step(data.t, "Multistep")
        rows = data.t.size - len(alpha) + 1
        lhs = sum(a * y[j : j + rows] for j, a in enumerate(alpha)) / h
        fs = jax.vmap(system, in_axes=(0, 0, None))(
            jnp.asarray(data.t), jnp.asarray(y), params
        )
        rhs = sum(b * fs[j : j + rows] for j, b in enumerate(beta) if b != 0)
        return jnp.asarray(lhs) - rhs

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        system, datasets, observed = observed_datasets(
            target, data, self.derivatives, dtype, "Multistep"
        )
        alpha, beta = self._coefficients
        us, targets = [], []
        for d, y in zip(datasets, observed, strict=True):
            h = _step(d.t, "Multistep")
            if d.t.size < len(alpha) + 1:
                raise DataError(
                    f"`Multistep(order={self.order})` with `formula={self.formula!r}`"
                    f" needs at least {len(alpha) + 1} observation times per "
                    f"trajectory; one has {d.t.size}."
                )
            rows = d.t.size - len(alpha) + 1
            us.append(y)
            targets.append(sum(a * y[j : j + rows] for j, a in enumerate(alpha)) / h)
        return matching_problem(
            owner="Multistep",
            method=self,
            system=system,
            datasets=datasets,
            us=us,
            targets=targets,
            beta=tuple(beta),
            initial_states=[u[0] for u in us],
            seed=seed,
            dtype=dtype,
            init=init,
        )
