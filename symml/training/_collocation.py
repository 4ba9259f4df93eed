"""Fits without an ODE solve: collocation (smoothed data and their estimated
derivatives) and the shared machinery of derivative-matching losses.

A derivative-matching loss compares a linear combination of the right-hand
side evaluated at given states with a target computed once from the data:

    Σ_j β_j f(t_{i+j}, u_{i+j})  ≈  target_i,

with `β = (1,)`, `u` the smoothed data and the target their derivative for
collocation, and the coefficients of a linear multistep formula for
[`Multistep`][symml.Multistep]. No solve is involved, so a step of either
costs a few evaluations of the right-hand side on the data.
"""

import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._diffrax import SolveOptions, check_times
from .._errors import DataError, FitError, SymmlWarning
from ..dsl import Data, ODEModel
from ..dsl._data import as_datasets
from ..lowering import AbstractSystem, CompiledRHS, Params
from ._checkpoint import fingerprint
from ._loop import Problem, optimize
from ._matching_batch import windowed
from ._method import AbstractFitMethod, one_of, positive_integer, positive_number
from ._progress import Progress
from ._result import UDEResult

# -- the shared derivative-matching problem ----------------------------------------


class _Trainable(eqx.Module):
    params: Params


class _Static(eqx.Module):
    system: AbstractSystem = eqx.field(static=True)
    beta: tuple = eqx.field(static=True)  # weights of f over a window
    state_of: tuple = eqx.field(static=True)  # flat index -> state index
    ts: tuple  # per trajectory: (T,)
    us: tuple  # per trajectory: (T, n), where f is evaluated
    targets: tuple  # per trajectory: (T - len(beta) + 1, n)
    scale: jax.Array  # per state: normalisation of its squared residual
    units: dict  # per trainable parameter: the unit it is optimised in
    names: tuple = eqx.field(static=True)  # the states


def _with_units(params: Params, units: dict, *, divide: bool = False) -> Params:
    op = jnp.divide if divide else jnp.multiply
    values = {k: op(v, units[k]) for k, v in params.values.items()}
    return Params(values, params.networks)


def _matching_loss(x: _Trainable, s: _Static):
    params = _with_units(x.params, s.units)
    state_of = np.asarray(s.state_of)
    n_states = len(s.scale)
    per_state = jnp.zeros(n_states, s.scale.dtype)
    count = 0
    for ts, us, target in zip(s.ts, s.us, s.targets, strict=True):
        fs = jax.vmap(s.system, in_axes=(0, 0, None))(ts, us, params)
        rows = target.shape[0]
        combined = sum(b * fs[j : j + rows] for j, b in enumerate(s.beta) if b != 0)
        err = jnp.sum((combined - target) ** 2, axis=0)
        per_state += jax.ops.segment_sum(err, state_of, n_states)
        count += rows
    sizes = np.bincount(state_of, minlength=n_states)
    terms = per_state / (count * sizes) / s.scale
    return jnp.mean(terms), {name: terms[i] for i, name in enumerate(s.names)}


def _system_of(target, derivatives, owner: str) -> AbstractSystem:
    if isinstance(target, ODEModel):
        return CompiledRHS(target, derivatives)
    if isinstance(target, AbstractSystem):
        return target
    raise FitError(
        f"`{owner}` fits ODE models and lowered systems (such as a discretised "
        f"PDE); got {type(target).__name__}."
    )


def _observed_layout(system: AbstractSystem, data: Data, owner: str) -> np.ndarray:
    """The data as a `(T, n)` array in the system's flat layout; every state
    must be observed."""
    names = system.state_names
    for name, v in data.values.items():
        if name not in names:
            raise DataError(
                f"The data observe `{name}`, which is not a state of the model; its "
                f"states are {', '.join(names)}."
            )
        shape = system.state_shape(name)
        if v.shape[1:] != tuple(shape):
            raise DataError(
                f"Each observation of `{name}` has shape {v.shape[1:]}; the model's "
                f"`{name}` has shape {tuple(shape)}. Observe fields on the "
                "discretisation grid."
            )
    missing = [n for n in names if n not in data.values]
    if missing:
        raise FitError(
            f"`{owner}` fits the right-hand side to derivatives estimated from the "
            f"data, so it needs every state observed; "
            f"{', '.join(f'`{n}`' for n in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not. Fit with the solve in the "
            "loop instead (`method='solve'`), which trains unobserved states' "
            "initial values."
        )
    return np.concatenate(
        [data.values[n].reshape(data.t.size, -1) for n in names], axis=1
    )


def _state_of(system: AbstractSystem) -> tuple[int, ...]:
    state_of = np.zeros(system.n, int)
    for i, name in enumerate(system.state_names):
        state_of[system.state_indices(name)] = i
    return tuple(state_of.tolist())


def _scales(targets: list[np.ndarray], state_of, n_states: int) -> np.ndarray:
    # Each state's squared residual is divided by the variance of its target
    # (the data's derivative), so states of different rates weigh the same.
    stacked = np.concatenate(targets, axis=0)
    scale = np.ones(n_states)
    state_of = np.asarray(state_of)
    for i in range(n_states):
        v = stacked[:, state_of == i].ravel()
        scale[i] = max(np.var(v), 1e-3 * np.mean(v**2), 1e-12)
    return scale


def matching_problem(
    *,
    owner: str,
    method: AbstractFitMethod,
    system: AbstractSystem,
    datasets: list[Data],
    us: list[np.ndarray],
    targets: list[np.ndarray],
    beta: tuple[float, ...],
    initial_states: list[np.ndarray],
    seed: int,
    dtype,
    init,
    result_cls=UDEResult,
    result_extra: dict | None = None,
) -> Problem:
    """The [`Problem`] of fitting `Σ_j β_j f(t_{i+j}, u_{i+j}) ≈ target_i`."""
    if init is not None:
        params = init.params
    else:
        # Unknown terms start small, as in the solve-in-the-loop fit.
        params = system.init_params(key=jr.PRNGKey(seed), dtype=dtype, final_scale=0.1)
    # Trainable parameters in units of their initial magnitude (see
    # `SolveInLoop.prepare`: Adam steps are about the learning rate).
    units = {
        k: jnp.asarray(float(abs(v)) if float(v) != 0 else 1.0, dtype)
        for k, v in params.values.items()
    }
    state_of = _state_of(system)
    names = system.state_names
    static = _Static(
        system,
        tuple(float(b) for b in beta),
        state_of,
        tuple(jnp.asarray(d.t, dtype) for d in datasets),
        tuple(jnp.asarray(u, dtype) for u in us),
        tuple(jnp.asarray(t, dtype) for t in targets),
        jnp.asarray(_scales(targets, state_of, len(names)), dtype),
        units,
        names,
    )
    options = SolveOptions.make(error=FitError)
    model = system.model
    starts = tuple(jnp.asarray(s, dtype) for s in initial_states)

    def result(x: _Trainable, history, static):
        return result_cls(
            model=model,
            params=_with_units(x.params, units),
            history=history,
            wall_time=0.0,
            method=method,
            seed=seed,
            system=system,
            initial_states=starts,
            data=tuple(datasets),
            options=options,
            **(result_extra or {}),
        )

    problem = Problem(
        loss=_matching_loss,
        trainable=_Trainable(_with_units(params, units, divide=True)),
        static=static,
        result=result,
        fingerprint=fingerprint(
            owner,
            model,
            method,
            seed,
            np.dtype(dtype).name,
            *[a for d in datasets for a in (d.t, *d.values.values())],
        ),
    )
    # On a mesh and in a bootstrap: one batch of rows (`_matching_batch.py`).
    problem.relayout = partial(windowed, problem, owner=owner)
    return problem


# -- smoothing and derivative estimates --------------------------------------------

_KERNELS = {
    "epanechnikov": lambda u: np.where(np.abs(u) < 1, 0.75 * (1 - u**2), 0.0),
    "triangular": lambda u: np.where(np.abs(u) < 1, 1 - np.abs(u), 0.0),
    "gaussian": lambda u: np.exp(-0.5 * u**2),
}


def local_polynomial(
    t: np.ndarray, h: float, kernel: str, degree: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `(T, T)` matrices `S` and `D` of the local polynomial smoother of
    `degree` with bandwidth `h`: `S @ y` are the smoothed values at the times
    `t`, `D @ y` their derivatives (the fitted polynomials' value and slope at
    each time)."""
    size = t.size
    weights = _KERNELS[kernel]
    smooth = np.zeros((size, size))
    slope = np.zeros((size, size))
    for i in range(size):
        dt = t - t[i]
        w = weights(dt / h)
        basis = np.vander(dt / h, degree + 1, increasing=True)
        gram = basis.T @ (w[:, None] * basis)
        coefficients = np.linalg.solve(gram, basis.T * w)
        smooth[i] = coefficients[0]
        slope[i] = coefficients[1] / h
    return smooth, slope


def _bandwidths(t: np.ndarray, degree: int) -> np.ndarray:
    """Candidate bandwidths: from the narrowest whose windows all hold
    `degree + 2` observations to half the time span."""
    span = t[-1] - t[0]
    low = 0.0
    for i in range(t.size):
        distances = np.sort(np.abs(t - t[i]))
        low = max(low, distances[min(degree + 1, t.size - 1)])
    low *= 1.0 + 1e-9
    return np.geomspace(low, max(span / 2, low * 1.01), 40)


def _loo_error(smooth: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out cross-validation error of a linear smoother `S` on the
    columns of `y`, in closed form: `mean(((y − S y) / (1 − S_ii))²)`."""
    leverage = np.diag(smooth)
    if np.any(leverage >= 1 - 1e-8):
        return np.inf
    residual = (y - smooth @ y) / (1 - leverage)[:, None]
    return float(np.mean(residual**2))


@dataclass(frozen=True)
class DerivativeEstimates:
    """Smoothed observations of one trajectory and their time derivatives.

    **Attributes:**

    - `t`: the observation times, `(T,)`.
    - `values`: `{state: smoothed values (T, *shape)}`.
    - `derivatives`: `{state: estimated time derivatives (T, *shape)}`.
    - `smoothing`: `{state: bandwidth}` for the kernel smoother; `{state:
      None}` for the smoothing spline (scipy chooses each spline's penalty by
      generalised cross-validation and does not report it).
    """

    t: np.ndarray
    values: dict[str, np.ndarray]
    derivatives: dict[str, np.ndarray]
    smoothing: dict[str, float]


@dataclass(frozen=True, eq=False)
class CollocationResult(UDEResult):
    """A collocation fit: a [`UDEResult`][symml.UDEResult] whose initial
    states are the smoothed data at their first time, with the derivative
    estimates it was fitted to.

    **Attributes:**

    - `estimates`: one [`DerivativeEstimates`][symml.training.DerivativeEstimates]
      per trajectory.
    """

    estimates: tuple = field(default=(), repr=False)


@dataclass(frozen=True)
class Collocation(AbstractFitMethod):
    """Fit an ODE system without solving it: smooth the data, estimate their
    time derivatives, and fit the right-hand side at the smoothed states to
    the estimated derivatives (two-stage or "collocation" fitting, as
    DiffEqFlux's `collocate_data`; Liang & Wu 2008). A step costs one
    evaluation of the right-hand side per observation, so a fit takes
    seconds; it is a good start for [`SolveInLoop`][symml.SolveInLoop]
    (`method="collocation+solve"`).

    Every state must be observed, at the same times. The loss is the mean
    over states of each state's mean squared mismatch divided by the variance
    of its estimated derivative.

    **Arguments:**

    - `smoother`: `"kernel"` (the default): a local polynomial of `degree`
      fitted by kernel-weighted least squares around each observation time;
      the smoothed value and derivative are its value and slope there (which
      keeps the estimates unbiased for polynomials of `degree`, also at the
      ends of the data). `"spline"`: a cubic smoothing spline (scipy's
      `make_smoothing_spline`) whose penalty is chosen by generalised
      cross-validation, differentiated exactly.
    - `bandwidth`: the kernel's half-width in time. `None` (the default)
      chooses it per state, among 40 bandwidths from the narrowest whose
      windows hold `degree + 2` observations to half the time span, as the
      one with the smallest leave-one-out cross-validation error of the
      smoothed values (in closed form for a linear smoother, pooled over
      trajectories and grid points).
    - `kernel`: `"epanechnikov"` (the default), `"triangular"` or
      `"gaussian"`.
    - `degree`: the degree of the local polynomial (2 by default: the
      derivative is then the slope of a local quadratic, whose bias is of
      third order).
    - `derivatives`: the scheme of derivatives of networks in the model (as
      in [`lower`][symml.lower]).

    The derivative estimates are available before fitting,
    `Collocation().estimate(data)`, and on the result,
    `result.estimates`.
    """

    name: ClassVar[str] = "Collocation"
    default_steps: ClassVar[int] = 2000
    default_learning_rate: ClassVar[float] = 3e-3
    default_lbfgs_steps: ClassVar[int] = 300
    smoother: str = "kernel"
    bandwidth: float | None = None
    kernel: str = "epanechnikov"
    degree: int = 2
    derivatives: Any = None

    def __post_init__(self):
        owner = "Collocation"
        one_of(self.smoother, "smoother", owner, ("kernel", "spline"))
        one_of(self.kernel, "kernel", owner, tuple(_KERNELS))
        positive_integer(self.degree, "degree", owner)
        if self.bandwidth is not None:
            positive_number(self.bandwidth, "bandwidth", owner)

    def estimate(self, data: Data | list[Data]) -> list[DerivativeEstimates]:
        """Smooth each trajectory's observations and estimate their time
        derivatives.

        **Arguments:**

        - `data`: a [`Data`][symml.Data] or a list of them.

        **Returns:** one [`DerivativeEstimates`][symml.training.DerivativeEstimates]
        per trajectory.
        """
        datasets = as_datasets(data)
        names = list(dict.fromkeys(n for d in datasets for n in d.values))
        for d in datasets:
            minimum = 5 if self.smoother == "spline" else self.degree + 2
            if d.t.size < minimum:
                raise DataError(
                    f"`Collocation` needs at least {minimum} observation times per "
                    f"trajectory to estimate derivatives; one has {d.t.size}."
                )
        if self.smoother == "spline":
            return [self._spline(d) for d in datasets]
        smoothing = {}
        for name in names:
            if self.bandwidth is not None:
                smoothing[name] = float(self.bandwidth)
                continue
            smoothing[name] = self._choose_bandwidth(
                [(d.t, d.values[name]) for d in datasets if name in d.values], name
            )
        out = []
        for d in datasets:
            values, slopes = {}, {}
            cache = {}
            for name, v in d.values.items():
                h = smoothing[name]
                if h not in cache:
                    cache[h] = self._matrices(d.t, h, name)
                smooth, slope = cache[h]
                flat = v.reshape(d.t.size, -1)
                values[name] = (smooth @ flat).reshape(v.shape)
                slopes[name] = (slope @ flat).reshape(v.shape)
            out.append(
                DerivativeEstimates(
                    d.t, values, slopes, {k: smoothing[k] for k in d.values}
                )
            )
        return out

    def _matrices(self, t, h, name):
        try:
            return local_polynomial(t, h, self.kernel, self.degree)
        except np.linalg.LinAlgError:
            raise FitError(
                f"`bandwidth={h:g}` is too narrow for the observations of `{name}`: "
                f"some windows hold fewer than {self.degree + 1} times. Give a wider "
                "bandwidth, or `bandwidth=None` to choose it."
            ) from None

    def _choose_bandwidth(self, series, name) -> float:
        candidates = None
        for t, _ in series:
            c = _bandwidths(t, self.degree)
            candidates = c if candidates is None else np.maximum(candidates, c)
        errors = []
        for h in candidates:
            total, count = 0.0, 0
            for t, v in series:
                try:
                    smooth, _ = local_polynomial(t, h, self.kernel, self.degree)
                except np.linalg.LinAlgError:
                    total = np.inf
                    break
                flat = v.reshape(t.size, -1)
                total += _loo_error(smooth, flat) * flat.size
                count += flat.size
            errors.append(total / count)
        errors = np.asarray(errors)
        if not np.any(np.isfinite(errors)):
            raise FitError(
                f"No bandwidth smooths the observations of `{name}`; give "
                "`bandwidth=` explicitly."
            )
        return float(candidates[int(np.nanargmin(errors))])

    def _spline(self, d: Data) -> DerivativeEstimates:
        from scipy.interpolate import make_smoothing_spline

        values, slopes = {}, {}
        for name, v in d.values.items():
            flat = v.reshape(d.t.size, -1)
            smooth = np.empty_like(flat)
            slope = np.empty_like(flat)
            for c in range(flat.shape[1]):
                spline = make_smoothing_spline(d.t, flat[:, c])
                smooth[:, c] = spline(d.t)
                slope[:, c] = spline.derivative()(d.t)
            values[name] = smooth.reshape(v.shape)
            slopes[name] = slope.reshape(v.shape)
        # scipy chooses each spline's penalty and does not report it.
        return DerivativeEstimates(d.t, values, slopes, dict.fromkeys(values))

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        system = _system_of(target, self.derivatives, "Collocation")
        if data is None:
            raise FitError(
                "Collocation fits the model to observations: pass `data=symml.Data("
                "t, {state: values})` (a list of them for several trajectories)."
            )
        datasets = as_datasets(data)
        for d in datasets:
            _observed_layout(system, d, "Collocation")
            check_times(d.t, dtype, DataError, "the data's `t`")
        estimates = self.estimate(datasets)
        us, targets = [], []
        for e in estimates:
            smoothed = Data(e.t, e.values)
            us.append(_observed_layout(system, smoothed, "Collocation"))
            targets.append(
                _observed_layout(system, Data(e.t, e.derivatives), "Collocation")
            )
        return matching_problem(
            owner="Collocation",
            method=self,
            system=system,
            datasets=datasets,
            us=us,
            targets=targets,
            beta=(1.0,),
            initial_states=[u[0] for u in us],
            seed=seed,
            dtype=dtype,
            init=init,
            result_cls=CollocationResult,
            result_extra={"estimates": tuple(estimates)},
        )


# A collocation fit whose solution is further than this from the data (relative
# L2 error of some state) leaves the solve in the loop to start far away.
_FAR = 0.5


def _warn_if_far(start: UDEResult) -> None:
    """Warn when the collocation fit, solved from its initial states, does
    not follow the data: its field matched derivative estimates that were
    wrong (coarse sampling, noise), and the solve in the loop starts from a
    poor guess, where its solves may be long."""
    worst, where = 0.0, ""
    for j, d in enumerate(start.data):
        try:
            solution = start.predict(d.t, trajectory=j)
        except FitError:
            worst, where = np.inf, f"its solve of trajectory {j} fails"
            break
        for name, values in d.values.items():
            got = np.asarray(solution[name]).reshape(values.shape)
            scale = max(float(np.linalg.norm(values)), 1e-300)
            error = float(np.linalg.norm(got - values)) / scale
            if not error <= worst:
                worst = error
                where = f"`{name}` of trajectory {j} is off by {error:.0%}"
    if worst > _FAR:
        warnings.warn(
            "The collocation fit, solved from the data's initial values, does not "
            f"follow the data ({where}): the derivatives estimated from the data "
            "are probably wrong (look at `Collocation().estimate(data)`; coarse "
            "sampling and noise bias them). The solve in the loop starts from this "
            "poor guess and may take longer than from scratch: observe more "
            "densely, try `Collocation(smoother='spline')`, or fit with "
            "`method='solve'`.",
            SymmlWarning,
            stacklevel=4,
        )


@dataclass(frozen=True)
class CollocationThenSolve(AbstractFitMethod):
    """Collocation first, then the solve in the loop from its result
    (`fit(..., method="collocation+solve")`).

    The collocation fit is cheap and lands near the answer; the
    solve-in-the-loop fit then removes what smoothing and derivative
    estimates got wrong, from a start where its solves are already close to
    the data, so it needs fewer steps than from scratch. `fit`'s `steps`,
    `learning_rate` and `lbfgs_steps` set the second stage; the result's
    history holds both (`"collocation:adam"`, ..., then `"adam"`, ...) and its
    `wall_time` both stages.

    **Arguments:**

    - `collocation`: the first stage, a [`Collocation`][symml.Collocation].
    - `solve`: the second stage, a [`SolveInLoop`][symml.SolveInLoop].
    - `collocation_steps`, `collocation_lbfgs_steps`: the first stage's Adam
      and L-BFGS steps (default: `Collocation`'s, 2000 and 300).
    """

    name: ClassVar[str] = "CollocationThenSolve"
    default_steps: ClassVar[int] = 500
    default_learning_rate: ClassVar[float] = 1e-3
    default_lbfgs_steps: ClassVar[int] = 300
    collocation: Collocation = field(default_factory=Collocation)
    solve: Any = None
    collocation_steps: int | None = None
    collocation_lbfgs_steps: int | None = None

    def __post_init__(self):
        from ._ude import SolveInLoop

        owner = "CollocationThenSolve"
        if not isinstance(self.collocation, Collocation):
            raise FitError(
                f"`collocation` of `{owner}` must be `symml.Collocation(...)`; got "
                f"{self.collocation!r}."
            )
        if self.solve is None:
            object.__setattr__(self, "solve", SolveInLoop())
        elif not isinstance(self.solve, SolveInLoop):
            raise FitError(
                f"`solve` of `{owner}` must be `symml.SolveInLoop(...)`; got "
                f"{self.solve!r}."
            )
        for name in ("collocation_steps", "collocation_lbfgs_steps"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise FitError(
                    f"`{name}` of `{owner}` must be an integer >= 0; got {value!r}."
                )

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        first = self.collocation.prepare(
            target, data, seed=seed, dtype=dtype, init=init
        )
        phases = self.collocation.phases(
            self.collocation_steps, None, self.collocation_lbfgs_steps
        )
        trainable, history, static = optimize(
            first, [p for p in phases if p.steps > 0], progress=Progress(False)
        )
        start = first.result(trainable, history, static)
        _warn_if_far(start)
        problem = self.solve.prepare(target, data, seed=seed, dtype=dtype, init=start)
        build = problem.result
        earlier = {f"collocation:{k}": v for k, v in history.items()}

        def result(x, history, static):
            out = build(x, {**earlier, **history}, static)
            object.__setattr__(out, "method", self)
            return out

        problem.result = result
        problem.fingerprint = fingerprint(
            "CollocationThenSolve", problem.fingerprint, self
        )
        return problem
