"""Error bars of fitted parameters: Gauss–Newton and bootstrap."""

import abc
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np
import sympy as sp

from .._errors import UncertaintyError, UncertaintyWarning
from ..dsl import Model, Trainable
from ._inputs import Normal, check_choice, check_level, check_positive_int
from ._least_squares import LeastSquares, jacobian_at, refine, refit_batch

# A Gauss–Newton step larger than this many standard errors means the fit has
# not reached the minimum its error bars describe.
_CONVERGED = 0.2
# Scaled curvature eigenvalues below this (relative to the largest) mean a
# combination of parameters the data do not determine.
_IDENTIFIABLE = 1e-12


def _check_noise(noise, owner: str):
    if isinstance(noise, str):
        return check_choice(noise, "noise", owner, ("per_state", "shared"))
    if isinstance(noise, Mapping):
        out = {}
        for key, value in noise.items():
            name = (
                key
                if isinstance(key, str)
                else getattr(getattr(key, "func", None), "__name__", str(key))
            )
            try:
                std = float(value)
            except (TypeError, ValueError):
                std = math.nan
            if not (math.isfinite(std) and std > 0):
                raise UncertaintyError(
                    f"`noise[{key}]` of `{owner}` must be a positive standard "
                    f"deviation; got {value!r}."
                )
            out[name] = std
        return out
    raise UncertaintyError(
        f"`noise` of `{owner}` must be 'per_state' (a noise variance per state, "
        "estimated from its residuals), 'shared' (one for all), or `{state: "
        f"standard deviation}}` when it is known; got {noise!r}."
    )


class AbstractErrorMethod(abc.ABC):
    """How a fit's error bars are computed: [`GaussNewton`][symml.GaussNewton]
    or [`Bootstrap`][symml.Bootstrap]."""

    @abc.abstractmethod
    def run(self, problem: LeastSquares) -> "ParameterUncertainty":
        """The error bars of `problem`'s parameters."""


def _noise_variances(problem: LeastSquares, residuals: np.ndarray, noise, k: int):
    """Per observation, the noise variance; per state, its standard deviation;
    and the residual degrees of freedom."""
    m = residuals.size
    dof = m - k
    if isinstance(noise, dict):
        missing = [
            problem.state_names[s]
            for s in np.unique(problem.state)
            if problem.state_names[s] not in noise
        ]
        if missing:
            raise UncertaintyError(
                f"`noise` gives no standard deviation for the observed state(s) "
                f"{', '.join(f'`{n}`' for n in missing)}."
            )
        per_state = {
            problem.state_names[s]: noise[problem.state_names[s]]
            for s in np.unique(problem.state)
        }
        variance = np.array(
            [per_state[problem.state_names[s]] ** 2 for s in problem.state]
        )
        return variance, per_state, math.inf
    if dof < 1:
        raise UncertaintyError(
            f"The fit has {m} observations and {k} fitted numbers (parameters and "
            "initial states), so no degrees of freedom are left to estimate the "
            "noise from the residuals; give more data, or the noise with "
            "`noise={state: std}`."
        )
    if noise == "shared":
        v = float(np.sum(residuals**2)) / dof
        states = np.unique(problem.state)
        return (
            np.full(m, v),
            {problem.state_names[s]: math.sqrt(v) for s in states},
            dof,
        )
    variance = np.zeros(m)
    per_state = {}
    for s in np.unique(problem.state):
        mask = problem.state == s
        n_s = int(mask.sum())
        # The fitted numbers use up degrees of freedom in proportion to each
        # state's share of the observations.
        v = float(np.sum(residuals[mask] ** 2)) / (n_s * (1 - k / m))
        variance[mask] = v
        per_state[problem.state_names[s]] = math.sqrt(v)
    return variance, per_state, dof


def _jacobian(problem: LeastSquares, theta):
    pred, jac, ok = jacobian_at(problem.predictor, jnp.asarray(theta, problem.dtype))
    if not bool(ok):
        raise UncertaintyError(
            "The solve at the fitted parameters failed or is not finite, so its "
            "derivatives cannot be taken; check the fit."
        )
    return np.asarray(pred, float), np.asarray(jac, float)


def _inverse(a: np.ndarray, labels) -> np.ndarray:
    """`a⁻¹` of a curvature matrix, or an error naming the parameters the data
    do not determine."""
    d = np.sqrt(np.diag(a))
    if np.any(d == 0):
        i = int(np.argmin(d))
        raise UncertaintyError(
            f"The data do not depend on `{labels[i]}` at the fitted values, so its "
            "error bar is infinite; fix it or remove it from the fit."
        )
    scaled = a / np.outer(d, d)
    eigenvalues, vectors = np.linalg.eigh(scaled)
    if eigenvalues[0] < _IDENTIFIABLE * eigenvalues[-1]:
        v = vectors[:, 0]
        top = np.argsort(-np.abs(v))[:3]
        if v[top[0]] < 0:
            v = -v
        combo = ""
        for i in top:
            if abs(v[i]) > 0.05:
                sign = (
                    ("− " if v[i] < 0 else "")
                    if not combo
                    else (" − " if v[i] < 0 else " + ")
                )
                combo += f"{sign}{abs(v[i]):.2f}·{labels[i]}"
        raise UncertaintyError(
            f"The parameters are not identifiable from these data: the combination "
            f"{combo} leaves the residuals unchanged (the curvature is singular). "
            "Fix or remove one of them, or fit more informative data."
        )
    inv_scaled = (vectors / eigenvalues) @ vectors.T
    return inv_scaled / np.outer(d, d)


@dataclass(frozen=True)
class GaussNewton(AbstractErrorMethod):
    """Error bars from the Gauss–Newton approximation of the loss's Hessian at
    the fitted parameters.

    With the Jacobian `J` of the model's values at the observations with
    respect to `θ` (the trainable parameters and the trained initial states,
    by forward mode through the solve), the fit's weights `W` and the noise
    variances `S` estimated from the residuals, the covariance is the
    sandwich `(JᵀWJ)⁻¹ JᵀWSWJ (JᵀWJ)⁻¹`: that of the weighted least-squares
    estimator the fit computes, which is the textbook `σ² (JᵀJ)⁻¹` for one
    observed state. Intervals use Student's t with the residual degrees of
    freedom.

    The error bars are conditional on the model that was fitted: the terms
    discovery selected (a missing or extra term is not covered), the fixed
    parameters taken as exact, and noise independent between observations
    with one variance per state. They are first order in `θ`: when a
    standard error is not small against the scale on which the model is
    nonlinear in `θ`, prefer the bootstrap's percentile intervals.

    **Arguments:**

    - `noise`: `"per_state"` (default: a noise variance per observed state,
      from its residuals), `"shared"` (one for all observations), or `{state:
      standard deviation}` when the noise is known.
    - `refine`: Levenberg–Marquardt iterations on the fit's loss before the
      error bars are computed (0: use the fit's parameters as they are). A fit
      stopped early is not at the minimum its error bars describe; symml
      warns when a Gauss–Newton step would move a parameter by more than 0.2
      standard errors.
    """

    noise: Any = "per_state"
    refine: int = 0

    def __post_init__(self):
        object.__setattr__(self, "noise", _check_noise(self.noise, "GaussNewton"))
        check_positive_int(self.refine, "refine", "GaussNewton", minimum=0)

    def run(self, problem: LeastSquares) -> "ParameterUncertainty":
        start = time.perf_counter()
        theta = _refine(problem, problem.theta, self.refine)
        pred, jac = _jacobian(problem, theta)
        residuals = pred - problem.y
        w = problem.weights
        variance, noise_std, dof = _noise_variances(
            problem, residuals, self.noise, problem.k
        )
        a = jac.T @ (w[:, None] * jac)
        a_inv = _inverse(a, problem.labels)
        b = jac.T @ ((w**2 * variance)[:, None] * jac)
        covariance = a_inv @ b @ a_inv
        se = np.sqrt(np.diag(covariance))
        step = -a_inv @ (jac.T @ (w * residuals))
        moved = np.abs(step) / np.where(se > 0, se, np.inf)
        i = int(np.argmax(moved))
        if moved[i] > _CONVERGED:
            warnings.warn(
                f"The fit is not at the minimum of its loss: a Gauss–Newton step "
                f"would move `{problem.labels[i]}` by {moved[i]:.2g} standard "
                "errors, so the error bars describe a nearby point. Refit longer, "
                "or pass `GaussNewton(refine=20)`.",
                UncertaintyWarning,
                stacklevel=3,
            )
        return ParameterUncertainty(
            method=self,
            labels=problem.labels,
            estimates=np.asarray(theta, float),
            covariance=covariance,
            symbols=problem.symbols,
            noise_std=noise_std,
            dof=dof,
            wall_time=time.perf_counter() - start,
            _problem=problem,
        )


def _refine(problem: LeastSquares, theta, steps: int) -> np.ndarray:
    if steps == 0:
        return np.asarray(theta, float)
    y = jnp.asarray(problem.y, problem.dtype)
    w = jnp.asarray(problem.weights, problem.dtype)
    theta, _, ok = refine(
        problem.predictor, jnp.asarray(theta, problem.dtype), y, w, steps
    )
    if not bool(ok):
        raise UncertaintyError(
            "Levenberg–Marquardt refinement of the fit failed (a solve did not "
            "finish); use `refine=0`, or check the fit."
        )
    return np.asarray(theta, float)


@dataclass(frozen=True)
class Bootstrap(AbstractErrorMethod):
    """Error bars from refits on resampled data.

    The fit's parameters are first refined by Levenberg–Marquardt on the
    data; then each resample builds new data and refits `θ` from there by
    `steps` Levenberg–Marquardt iterations of the fit's loss, `batch_size`
    resamples at once under `vmap`. The covariance and standard errors are
    the replicates'; intervals are their percentiles.

    **Arguments:**

    - `n_resamples`: the number of bootstrap refits.
    - `seed`: the seed of the resampling (the same seed gives the same
      replicates).
    - `resample`: `"residuals"` (default): new data = fitted values + the
      residuals of the same state drawn with replacement (centred and
      inflated by `sqrt(n / (n - p))`), which keeps the design (the times)
      fixed; `"cases"`: the observation times of each trajectory drawn with
      replacement (as weights of the loss).
    - `steps`: Levenberg–Marquardt iterations per refit.
    - `batch_size`: refits run at once.
    """

    n_resamples: int = 200
    seed: int = 0
    resample: str = "residuals"
    steps: int = 10
    batch_size: int = 50

    def __post_init__(self):
        check_positive_int(self.n_resamples, "n_resamples", "Bootstrap", minimum=2)
        check_positive_int(self.seed, "seed", "Bootstrap", minimum=0)
        check_choice(self.resample, "resample", "Bootstrap", ("residuals", "cases"))
        check_positive_int(self.steps, "steps", "Bootstrap")
        check_positive_int(self.batch_size, "batch_size", "Bootstrap")

    def run(self, problem: LeastSquares) -> "ParameterUncertainty":
        start = time.perf_counter()
        theta = _refine(problem, problem.theta, self.steps)
        pred, _ = _jacobian(problem, theta)
        residuals = pred - problem.y
        _, noise_std, dof = _noise_variances(problem, residuals, "per_state", problem.k)
        rng = np.random.default_rng(self.seed)
        m, k = residuals.size, problem.k
        ys = np.empty((self.n_resamples, m))
        ws = np.empty((self.n_resamples, m))
        if self.resample == "residuals":
            pools = {}
            for s in np.unique(problem.state):
                mask = np.flatnonzero(problem.state == s)
                e = -residuals[mask]  # observation minus fit
                pools[s] = (mask, (e - e.mean()) * math.sqrt(m / (m - k)))
            for b in range(self.n_resamples):
                y = pred.copy()
                for mask, e in pools.values():
                    y[mask] += rng.choice(e, size=mask.size, replace=True)
                ys[b] = y
                ws[b] = problem.weights
        else:
            rows = np.unique(problem.row)
            traj_rows = _rows_by_trajectory(problem)
            for b in range(self.n_resamples):
                counts = np.zeros(rows.max() + 1)
                for r in traj_rows:
                    counts += np.bincount(
                        rng.choice(r, size=r.size, replace=True),
                        minlength=counts.size,
                    )
                ys[b] = problem.y
                ws[b] = problem.weights * counts[problem.row]
        dtype = problem.dtype
        start_theta = jnp.asarray(theta, dtype)
        batch = min(self.batch_size, self.n_resamples)
        replicates, good = [], []
        for i in range(0, self.n_resamples, batch):
            y, w = ys[i : i + batch], ws[i : i + batch]
            size = y.shape[0]
            if size < batch:  # pad to the compiled batch shape
                y = np.concatenate([y, np.repeat(y[-1:], batch - size, axis=0)])
                w = np.concatenate([w, np.repeat(w[-1:], batch - size, axis=0)])
            th, ok = refit_batch(
                problem.predictor,
                start_theta,
                jnp.asarray(y, dtype),
                jnp.asarray(w, dtype),
                self.steps,
            )
            replicates.append(np.asarray(th, float)[:size])
            good.append(np.asarray(ok)[:size])
        replicates = np.concatenate(replicates)
        good = np.concatenate(good) & np.all(np.isfinite(replicates), axis=1)
        n_failed = int((~good).sum())
        if good.sum() < max(2, self.n_resamples / 2):
            raise UncertaintyError(
                f"{n_failed} of {self.n_resamples} bootstrap refits failed (a solve "
                "did not finish); the data cannot support resampling here. Use "
                "`GaussNewton()`."
            )
        if n_failed:
            warnings.warn(
                f"{n_failed} of {self.n_resamples} bootstrap refits failed and are "
                "left out.",
                UncertaintyWarning,
                stacklevel=3,
            )
        samples = replicates[good]
        return ParameterUncertainty(
            method=self,
            labels=problem.labels,
            estimates=np.asarray(theta, float),
            covariance=np.cov(samples.T, ddof=1).reshape(k, k),
            symbols=problem.symbols,
            noise_std=noise_std,
            dof=dof,
            wall_time=time.perf_counter() - start,
            samples=samples,
            n_failed=n_failed,
            _problem=problem,
        )


def _rows_by_trajectory(problem: LeastSquares) -> list[np.ndarray]:
    out, start = [], 0
    for d in problem.result.data:
        out.append(np.arange(start, start + d.t.size))
        start += d.t.size
    return out


@dataclass(frozen=True, eq=False)
class ParameterUncertainty:
    """Error bars of a fit's parameters, from
    [`parameter_uncertainty`][symml.parameter_uncertainty].

    `θ` holds the trainable parameters, then the trained initial states of
    each trajectory (nuisance parameters: their uncertainty is part of the
    parameters' error bars).

    **Attributes:**

    - `method`: [`GaussNewton`][symml.GaussNewton] or
      [`Bootstrap`][symml.Bootstrap], with its options.
    - `labels`: a name per entry of `θ`.
    - `estimates`: `θ` where the error bars were computed, shape `(k,)`.
    - `covariance`: the covariance of `θ`, shape `(k, k)`.
    - `symbols`: the trainable parameters (the first entries of `θ`).
    - `values`, `standard_errors`: `{symbol: float}` of the trainable
      parameters.
    - `noise_std`: `{state: standard deviation}` of the noise, estimated from
      the residuals (or as given).
    - `dof`: the residual degrees of freedom (observations − `k`).
    - `samples`: the bootstrap replicates of `θ`, shape `(B, k)` (`None` for
      Gauss–Newton); `n_failed` the refits left out.
    - `wall_time`: seconds.
    """

    method: AbstractErrorMethod
    labels: tuple[str, ...]
    estimates: np.ndarray
    covariance: np.ndarray
    symbols: tuple[sp.Symbol, ...]
    noise_std: dict[str, float]
    dof: float
    wall_time: float
    samples: np.ndarray | None = None
    n_failed: int = 0
    _problem: LeastSquares = field(default=None, repr=False)

    @property
    def values(self) -> dict[sp.Symbol, float]:
        return {s: float(self.estimates[i]) for i, s in enumerate(self.symbols)}

    @property
    def standard_errors(self) -> dict[sp.Symbol, float]:
        se = np.sqrt(np.diag(self.covariance))
        return {s: float(se[i]) for i, s in enumerate(self.symbols)}

    def correlation(self) -> np.ndarray:
        """The correlation matrix of `θ`."""
        se = np.sqrt(np.diag(self.covariance))
        return self.covariance / np.outer(se, se)

    def interval(self, level: float = 0.95) -> dict[sp.Symbol, tuple[float, float]]:
        """`{symbol: (low, high)}`: the central `level` interval of each
        trainable parameter: `estimate ± t·se` (Student's t with `dof`
        degrees of freedom, normal when the noise was given) for Gauss–Newton,
        the replicates' percentiles for the bootstrap."""
        level = check_level(level)
        out = {}
        if self.samples is not None:
            low, high = np.percentile(
                self.samples[:, : len(self.symbols)],
                [50 * (1 - level), 50 * (1 + level)],
                axis=0,
            )
            return {
                s: (float(low[i]), float(high[i])) for i, s in enumerate(self.symbols)
            }
        from scipy import stats  # about a second to import; needed only here

        q = (
            stats.norm.ppf(0.5 + level / 2)
            if not math.isfinite(self.dof)
            else stats.t.ppf(0.5 + level / 2, self.dof)
        )
        for s, v in self.values.items():
            se = self.standard_errors[s]
            out[s] = (v - q * se, v + q * se)
        return out

    @property
    def model(self) -> Model:
        """The fitted model with each trainable parameter fixed at its
        estimate: what `to_latex(..., uncertainty=standard_errors)` prints."""
        model = self._problem.result.model
        values = self.values
        parameters = {
            p: values[p] if isinstance(v, Trainable) else v
            for p, v in model.parameters.items()
        }
        return Model(
            model.equations,
            conditions=model.conditions,
            parameters=parameters,
            domain=model.domain or None,
            boundary=model.boundary,
        )

    def inputs(self, trajectory: int = 0) -> dict[tuple, Normal]:
        """The joint normal distribution of the trainable parameters and the
        trained initial states of one trajectory, as
        [`propagate`][symml.propagate]'s `uncertain=`."""
        spans = self._problem.trajectories
        if (
            isinstance(trajectory, bool)
            or not isinstance(trajectory, int | np.integer)
            or not 0 <= trajectory < len(spans)
        ):
            raise UncertaintyError(
                f"`trajectory={trajectory!r}` is out of range; the fit has "
                f"{len(spans)} trajectory(ies), numbered from 0."
            )
        span = spans[trajectory]
        index = list(range(len(self.symbols)))
        for sl in span.values():
            index.extend(range(sl.start, sl.stop))
        index = np.asarray(index)
        keys = (*self.symbols, *span)
        return {
            keys: Normal(
                self.estimates[index],
                covariance=self.covariance[np.ix_(index, index)],
            )
        }

    def predict(self, t, *, method=None, trajectory: int = 0):
        """The fitted model's prediction band: the trainable parameters and
        the trajectory's initial state drawn from their joint distribution,
        propagated to the times `t` (from the trajectory's first observation).

        **Arguments:**

        - `t`: increasing save times, none before the first observation.
        - `method`: [`Linear()`][symml.Linear] (default) or
          [`MonteCarlo(...)`][symml.MonteCarlo].
        - `trajectory`: which trajectory's initial state.

        **Returns:** a [`Propagation`][symml.Propagation].
        """
        from ._propagate import propagate

        uncertain = self.inputs(trajectory)
        result = self._problem.result
        ts = np.asarray(t, dtype=float)
        t0 = float(result.data[trajectory].t[0])
        if ts.ndim != 1 or ts.size < 1 or ts[0] < t0:
            raise UncertaintyError(
                f"`t` must be a 1-D array of increasing times from the trajectory's "
                f"first observation (t = {t0:g}) on; got shape {ts.shape}"
                + (f" starting at {ts[0]:g}." if ts.ndim == 1 and ts.size else ".")
            )
        # The uncertain entries' means (the estimates) replace their values in
        # the fitted parameters and initial state.
        t_end = float(ts[-1]) if ts[-1] > t0 else t0 + 1.0
        return propagate(
            result.system,
            uncertain,
            method=method,
            params=result.params,
            y0=result.initial_states[trajectory],
            t_span=(t0, t_end),
            saveat=ts,
            solver=result.options.solver,
            rtol=result.options.rtol,
            atol=result.options.atol,
        )

    def to_dict(self, level: float = 0.95) -> dict:
        """Plain JSON-serialisable data."""
        intervals = self.interval(level)
        return {
            "method": repr(self.method),
            "values": {str(s): v for s, v in self.values.items()},
            "standard_errors": {str(s): v for s, v in self.standard_errors.items()},
            f"intervals_{round(100 * level)}": {
                str(s): list(v) for s, v in intervals.items()
            },
            "labels": list(self.labels),
            "estimates": self.estimates.tolist(),
            "covariance": self.covariance.tolist(),
            "noise_std": dict(self.noise_std),
            "dof": self.dof if math.isfinite(self.dof) else None,
            "n_resamples": None if self.samples is None else int(len(self.samples)),
            "n_failed": self.n_failed,
            "wall_time_seconds": self.wall_time,
        }

    def equations(self) -> list[str]:
        """The fitted model's equations with each trainable parameter printed
        as `(value ± standard error)`."""
        from ..export import with_uncertainty

        lines = with_uncertainty(self.model, self.standard_errors, values=True)
        return [
            f"{e.lhs} = {e.rhs}" if isinstance(e, sp.Equality) else str(e)
            for e in lines
        ]

    def __str__(self) -> str:
        from ..export import format_uncertain

        intervals = self.interval()
        width = max((len(str(s)) for s in self.symbols), default=0)
        lines = [f"Error bars ({self.method!r}):"]
        for s, v in self.values.items():
            lo, hi = intervals[s]
            text = format_uncertain(v, self.standard_errors[s], latex=False)
            lines.append(f"  {str(s):{width}} = {text}   95 %: [{lo:.4g}, {hi:.4g}]")
        lines.extend(f"  {e}" for e in self.equations())
        return "\n".join(lines)


def parameter_uncertainty(
    result, method: AbstractErrorMethod | None = None
) -> ParameterUncertainty:
    """Error bars (standard errors, a covariance, intervals) of the trainable
    parameters of a fit of an ODE system or a discretised PDE, typically the
    refit of a recovered model's coefficients:

        found = symml.discover(result)
        refit = symml.fit(found.trainable_model(), data, steps=0, lbfgs_steps=200)
        bars = symml.parameter_uncertainty(refit)

    **Arguments:**

    - `result`: a [`UDEResult`][symml.UDEResult] whose model has no networks
      (its unknowns discovered and replaced).
    - `method`: [`GaussNewton()`][symml.GaussNewton] (default) or
      [`Bootstrap(...)`][symml.Bootstrap].

    **Returns:**

    A [`ParameterUncertainty`][symml.ParameterUncertainty]; `print(bars)`
    shows the parameters and equations with error bars,
    `symml.to_latex(bars.model, uncertainty=bars.standard_errors)` prints
    them as LaTeX, and `bars.predict(t)` gives the prediction band.
    """
    method = GaussNewton() if method is None else method
    if not isinstance(method, AbstractErrorMethod):
        raise UncertaintyError(
            f"`method` must be `symml.GaussNewton(...)` or `symml.Bootstrap(...)`; "
            f"got {method!r}."
        )
    return method.run(LeastSquares(result))
