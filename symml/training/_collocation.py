"""Fits without an ODE solve: collocation (smoothed data and their estimated
derivatives) and the shared machinery of derivative-matching losses.

A derivative-matching loss compares a linear combination of the right-hand
side evaluated at given states with a target computed once from the data:

    Σ_j β_j f(t_{i+j}, u_{i+j})  ≈  target_i,

with `β = (1,)`, `u` the smoothed data and the target their derivative for
collocation of derivatives, and the coefficients of a linear multistep
formula for [`Multistep`][symml.Multistep]. Collocation of integrals uses
per-row weights instead: `Σ_q w_iq f(s_iq, û(s_iq)) ≈ û(t_{i+1}) − û(t_i)`,
a Gauss–Legendre rule on the smoothed data between consecutive observations.
No solve is involved, so a step costs a few evaluations of the right-hand
side per observation.
"""

import dataclasses
import functools
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
from ..discretization import DiscretizedModel
from ..dsl import Data
from ..dsl._data import as_datasets
from ..lowering import AbstractSystem, Params
from ._checkpoint import fingerprint
from ._loop import Problem, optimize
from ._matching_batch import windowed
from ._method import AbstractFitMethod, one_of, positive_integer, positive_number
from ._progress import Progress
from ._result import UDEResult
from ._ude import check_observations, system_of

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
    # Integral matching: per trajectory, (rows, nodes) quadrature weights; `us`
    # then holds the states at the nodes, row after row (`beta` is unused).
    weights: tuple = ()


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
    for k, (ts, us, target) in enumerate(zip(s.ts, s.us, s.targets, strict=True)):
        fs = jax.vmap(s.system, in_axes=(0, 0, None))(ts, us, params)
        rows = target.shape[0]
        if s.weights:
            w = s.weights[k]
            combined = jnp.einsum("iq,iqn->in", w, fs.reshape(rows, w.shape[1], -1))
        else:
            combined = sum(b * fs[j : j + rows] for j, b in enumerate(s.beta) if b != 0)
        err = jnp.sum((combined - target) ** 2, axis=0)
        per_state += jax.ops.segment_sum(err, state_of, n_states)
        count += rows
    sizes = np.bincount(state_of, minlength=n_states)
    terms = per_state / (count * sizes) / s.scale
    return jnp.mean(terms), {name: terms[i] for i, name in enumerate(s.names)}


def _observed_layout(system: AbstractSystem, data: Data, owner: str) -> np.ndarray:
    """The data as a `(T, n)` array in the system's flat layout; every state
    must be observed."""
    check_observations(system, data)
    names = system.state_names
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


def observed_datasets(
    target, data, derivatives, dtype, owner: str
) -> tuple[AbstractSystem, list[Data], list[np.ndarray]]:
    """The system a derivative-matching method `owner` trains, the data sets,
    and each one's observations in the system's flat layout."""
    system = system_of(target, derivatives, owner, "such as a discretised PDE")
    if data is None:
        raise FitError(
            f"{owner} fits the model to observations: pass `data=symml.Data("
            "t, {state: values})` (a list of them for several trajectories)."
        )
    datasets = as_datasets(data)
    observed = []
    for d in datasets:
        observed.append(_observed_layout(system, d, owner))
        check_times(d.t, dtype, DataError, "the data's `t`")
    return system, datasets, observed


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
    times: list[np.ndarray] | None = None,
    weights: list[np.ndarray] | None = None,
) -> Problem:
    """The [`Problem`] of fitting `Σ_j β_j f(t_{i+j}, u_{i+j}) ≈ target_i`, or,
    with `weights` (per trajectory `(rows, q)`) and `times` (where `us` are,
    `rows · q` of them, row after row), `Σ_q w_iq f(s_iq, u_iq) ≈ target_i`."""
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
        tuple(
            jnp.asarray(d.t if times is None else times[j], dtype)
            for j, d in enumerate(datasets)
        ),
        tuple(jnp.asarray(u, dtype) for u in us),
        tuple(jnp.asarray(t, dtype) for t in targets),
        jnp.asarray(_scales(targets, state_of, len(names)), dtype),
        units,
        names,
        () if weights is None else tuple(jnp.asarray(w, dtype) for w in weights),
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
    t: np.ndarray,
    h: float,
    kernel: str,
    degree: int,
    at: np.ndarray | None = None,
    period: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The `(P, T)` matrices `S` and `D` of the local polynomial smoother of
    `degree` with bandwidth `h`: `S @ y` are the smoothed values at the times
    `at` (default: `t`, `P = T`), `D @ y` their derivatives (the value and
    slope, at each of those times, of the polynomial fitted around it).
    With `period`, distances wrap around it (a periodic coordinate)."""
    at = t if at is None else np.asarray(at, float)
    weights = _KERNELS[kernel]
    smooth = np.zeros((at.size, t.size))
    slope = np.zeros((at.size, t.size))
    for i in range(at.size):
        dt = t - at[i]
        if period is not None:
            dt = (dt + period / 2) % period - period / 2
        w = weights(dt / h)
        basis = np.vander(dt / h, degree + 1, increasing=True)
        gram = basis.T @ (w[:, None] * basis)
        coefficients = np.linalg.solve(gram, basis.T * w)
        smooth[i] = coefficients[0]
        slope[i] = coefficients[1] / h
    return smooth, slope


def _bandwidths(t: np.ndarray, degree: int) -> np.ndarray:
    """Candidate bandwidths: from the narrowest whose windows, centred on the
    observations and on the midpoints between them (where integral matching
    evaluates the smoother too), all hold `degree + 2` observations, to half
    the time span."""
    span = t[-1] - t[0]
    low = 0.0
    for centre in np.concatenate([t, (t[1:] + t[:-1]) / 2]):
        distances = np.sort(np.abs(t - centre))
        low = max(low, distances[min(degree + 1, t.size - 1)])
    low *= 1.0 + 1e-9
    return np.geomspace(low, max(span / 2, low * 1.01), 40)


def _space_axes(system) -> list[tuple]:
    """`(variable, coordinates, period or None)` per spatial axis of a
    discretised PDE, in the order of its states' array axes; `[]` for other
    systems."""
    if not isinstance(system, DiscretizedModel):
        return []
    model = system.model
    out = []
    for var, coords in system.grid.items():
        lo, hi = (float(b) for b in model.domain[var])
        periodic = model.boundary[var] == "periodic"
        out.append((var, np.asarray(coords, float), hi - lo if periodic else None))
    return out


def _space_bandwidths(coords: np.ndarray, period: float | None, degree: int):
    """Candidate bandwidths along a spatial axis, as `_bandwidths` in time:
    from the narrowest whose windows all hold `degree + 2` grid points to
    half the axis (half the period on a periodic one)."""
    low = 0.0
    for centre in coords:
        d = coords - centre
        if period is not None:
            d = (d + period / 2) % period - period / 2
        low = max(low, np.sort(np.abs(d))[min(degree + 1, coords.size - 1)])
    low *= 1.0 + 1e-9
    span = period if period is not None else coords[-1] - coords[0]
    return np.geomspace(low, max(span / 2, low * 1.01), 40)


def _along(y: np.ndarray, matrices) -> np.ndarray:
    """`y` with `matrices[k]` applied along its axis `k` (`None`: none)."""
    for k, m in enumerate(matrices):
        if m is not None:
            y = np.moveaxis(np.tensordot(m, y, axes=(1, k)), 0, k)
    return y


def _tensor_loo_error(y: np.ndarray, matrices) -> float:
    """`_loo_error` of the tensor-product smoother that applies
    `matrices[k]` along axis `k` of `y` (`None`: none): a local polynomial
    fit in several variables at once, whose leverages are the products of
    the factors' (the diagonal of a Kronecker product)."""
    diagonals = [
        np.ones(n) if m is None else np.diag(m)
        for n, m in zip(y.shape, matrices, strict=True)
    ]
    leverage = functools.reduce(np.multiply.outer, diagonals)
    if np.any(leverage >= 1 - 1e-8):
        return np.inf
    return float(np.mean(((y - _along(y, matrices)) / (1 - leverage)) ** 2))


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
    - `space_smoothing`: for the fields of a discretised PDE smoothed in
      space too, `{state: {spatial variable: bandwidth}}`; empty otherwise.
    """

    t: np.ndarray
    values: dict[str, np.ndarray]
    derivatives: dict[str, np.ndarray]
    smoothing: dict[str, float]
    space_smoothing: dict = field(default_factory=dict)


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
    """Fit an ODE system without solving it: smooth the data and fit the
    right-hand side along the smoothed states û(t) (two-stage or
    "collocation" fitting, as DiffEqFlux's `collocate_data`; Liang & Wu
    2008). A step costs a few evaluations of the right-hand side per
    observation, so a fit takes seconds; it is a good start for
    [`SolveInLoop`][symml.SolveInLoop] (`method="collocation+solve"`).

    Two ways to match (`match=`):

    - `"integral"` (the default): between consecutive observations,
      `∫ f(s, û(s)) ds` by a Gauss–Legendre rule of `nodes` points against
      the increment `û(t_{i+1}) − û(t_i)` (integral matching; Dattner &
      Klaassen 2015). It needs no derivative estimate, only smoothed values
      between the observations, which sparse data give far more accurately:
      on the Lotka–Volterra data of `examples/lotka_volterra.py` (21 points
      over about one period) the true field misses these equations by 2–6 %,
      against 12–37 % for the kernel's derivative estimates.
    - `"derivative"`: `f(t_i, û(t_i))` against the estimated derivative
      `dû/dt(t_i)` at each observation (gradient matching).

    Every state must be observed, at the same times. The loss is the mean
    over states of each state's mean squared mismatch divided by the variance
    of its target (increment or derivative).

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
    - `match`: `"integral"` (the default) or `"derivative"`, see above.
    - `nodes`: the Gauss–Legendre points per interval of integral matching
      (3 by default: exact for polynomials of degree 5 in time).
    - `smooth_space`: for a discretised PDE ([`discretize`][symml.discretize]),
      smooth its fields in space too (`True`, the default). The right-hand
      side differentiates the states in space by finite differences, which
      amplify noise by `1/h²` for a second derivative: smoothed in time
      alone, noisy fields make the diffusion term mostly noise, and its
      coefficient comes out far too small (errors in the regressors bias a
      fit towards zero). In space the smoother is the same local polynomial
      along each grid axis (distances wrapping round a periodic axis), and
      the smoothing is their tensor product with time's.
    - `space_bandwidth`: the spatial kernel's half-width, in the units of the
      spatial variables, for every axis. `None` (the default) chooses it per
      axis and state with the time bandwidth, by the leave-one-out error of
      the tensor-product smoother (closed form: its leverages are the
      products of the factors'), minimised one bandwidth at a time until none
      changes; candidates run from the narrowest whose windows hold
      `degree + 2` grid points to half the axis.
    - `derivatives`: the scheme of derivatives of networks in the model (as
      in [`lower`][symml.lower]).

    The derivative estimates are available before fitting,
    `Collocation().estimate(data)` (`estimate(data, system)` to smooth a
    discretised PDE's fields in space as the fit does), and on the result,
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
    match: str = "integral"
    nodes: int = 3
    smooth_space: bool = True
    space_bandwidth: float | None = None
    derivatives: Any = None

    def __post_init__(self):
        owner = "Collocation"
        one_of(self.smoother, "smoother", owner, ("kernel", "spline"))
        one_of(self.match, "match", owner, ("integral", "derivative"))
        positive_integer(self.nodes, "nodes", owner)
        one_of(self.kernel, "kernel", owner, tuple(_KERNELS))
        positive_integer(self.degree, "degree", owner)
        if self.bandwidth is not None:
            positive_number(self.bandwidth, "bandwidth", owner)
        if not isinstance(self.smooth_space, bool):
            raise FitError(
                f"`smooth_space` of `{owner}` must be True or False; got "
                f"{self.smooth_space!r}."
            )
        if self.space_bandwidth is not None:
            positive_number(self.space_bandwidth, "space_bandwidth", owner)

    def estimate(
        self, data: Data | list[Data], system: AbstractSystem | None = None
    ) -> list[DerivativeEstimates]:
        """Smooth each trajectory's observations and estimate their time
        derivatives.

        **Arguments:**

        - `data`: a [`Data`][symml.Data] or a list of them.
        - `system`: the system to be fitted; a discretised PDE's fields are
          then smoothed in space too (see `smooth_space`).

        **Returns:** one [`DerivativeEstimates`][symml.training.DerivativeEstimates]
        per trajectory.
        """
        return self._estimates(as_datasets(data), system)[1]

    def _estimates(self, datasets: list[Data], system) -> tuple[list, list]:
        """The data smoothed in space (unchanged where not), and the
        estimates."""
        names = list(dict.fromkeys(n for d in datasets for n in d.values))
        for d in datasets:
            minimum = 5 if self.smoother == "spline" else self.degree + 2
            if d.t.size < minimum:
                raise DataError(
                    f"`Collocation` needs at least {minimum} observation times per "
                    f"trajectory to estimate derivatives; one has {d.t.size}."
                )
        axes = _space_axes(system) if self.smooth_space else []
        shape = tuple(c.size for _, c, _ in axes)
        smoothing, in_space = {}, {}
        for name in names:
            series = [(d.t, d.values[name]) for d in datasets if name in d.values]
            if axes and all(v.shape[1:] == shape for _, v in series):
                smoothing[name], in_space[name] = self._choose_space(series, name, axes)
            elif self.smoother == "kernel":
                smoothing[name] = (
                    float(self.bandwidth)
                    if self.bandwidth is not None
                    else self._choose_bandwidth(series, name)
                )
        if in_space:
            datasets = [self._in_space(d, in_space, axes) for d in datasets]
        if self.smoother == "spline":
            out = [self._spline(d) for d in datasets]
        else:
            out = self._kernel(datasets, smoothing)
        return datasets, [
            dataclasses.replace(
                e, space_smoothing={k: v for k, v in in_space.items() if k in e.values}
            )
            for e in out
        ]

    def _in_space(self, d: Data, in_space: dict, axes) -> Data:
        values = dict(d.values)
        for name, bandwidths in in_space.items():
            if name in values:
                values[name] = _along(
                    values[name], [None, *self._space_matrices(axes, bandwidths, name)]
                )
        return Data(d.t, values)

    def _space_matrices(self, axes, bandwidths: dict, name) -> list[np.ndarray]:
        return [
            self._matrices(
                c, bandwidths[str(var)], name, period=period, what="space_bandwidth"
            )[0]
            for var, c, period in axes
        ]

    def _choose_space(self, series, name, axes) -> tuple[float | None, dict]:
        """The time bandwidth (None for the spline) and `{variable:
        bandwidth}` of a field's tensor-product smoother: fixed where given,
        otherwise each minimising the pooled leave-one-out error with the
        others held, in turn until none changes."""
        spaces = [
            [float(self.space_bandwidth)]
            if self.space_bandwidth is not None
            else _space_bandwidths(c, period, self.degree)
            for _, c, period in axes
        ]
        if self.smoother == "spline":
            times = [None]  # chosen afterwards, per column, by scipy
        elif self.bandwidth is not None:
            times = [float(self.bandwidth)]
        else:
            times = None
            for t, _ in series:
                c = _bandwidths(t, self.degree)
                times = c if times is None else np.maximum(times, c)
        cache, matrices = {}, {}

        def matrix(k, coords, h, period=None):
            # Along axis `k` (0: time) of one series: cached per bandwidth.
            key = (k, id(coords), h)
            if key not in matrices:
                matrices[key] = local_polynomial(
                    coords, h, self.kernel, self.degree, period=period
                )[0]
            return matrices[key]

        def error(choice) -> float:
            key = tuple(choice)
            if key not in cache:
                try:
                    space = [
                        matrix(k + 1, c, h, p)
                        for k, ((_, c, p), h) in enumerate(
                            zip(axes, key[1:], strict=True)
                        )
                    ]
                    total = 0.0
                    for t, v in series:
                        time = None if key[0] is None else matrix(0, t, key[0])
                        total += _tensor_loo_error(v, [time, *space]) * v.size
                    cache[key] = total / sum(v.size for _, v in series)
                except np.linalg.LinAlgError:
                    cache[key] = np.inf
            return cache[key]

        candidates = [times, *spaces]
        # Start from time's choice as for an ODE and the narrowest windows in
        # space, then minimise over one bandwidth at a time, space first.
        choice = [times[0], *(c[0] for c in spaces)]
        if len(times) > 1:
            choice[0] = self._choose_bandwidth(series, name)
        for _ in range(20):
            before = list(choice)
            for k in [*range(1, len(choice)), 0]:
                errors = np.asarray(
                    [error([*choice[:k], h, *choice[k + 1 :]]) for h in candidates[k]]
                )
                if not np.any(np.isfinite(errors)):
                    raise FitError(
                        f"No bandwidths smooth the observations of `{name}`; give "
                        "`bandwidth=` and `space_bandwidth=` explicitly."
                    )
                choice[k] = candidates[k][int(np.nanargmin(errors))]
            if choice == before:
                break
        chosen = {
            str(var): float(h) for (var, _, _), h in zip(axes, choice[1:], strict=True)
        }
        return (None if choice[0] is None else float(choice[0])), chosen

    def _kernel(self, datasets: list[Data], smoothing: dict) -> list:
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

    def _matrices(self, t, h, name, at=None, period=None, what="bandwidth"):
        try:
            return local_polynomial(t, h, self.kernel, self.degree, at, period)
        except np.linalg.LinAlgError:
            raise FitError(
                f"`{what}={h:g}` is too narrow for `{name}`: some windows hold "
                f"fewer than {self.degree + 1} points. Give a wider one, or "
                f"`{what}=None` to choose it."
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

    def _smoothed_at(self, d: Data, e: DerivativeEstimates, at: np.ndarray) -> dict:
        """The smoothed observations of one trajectory at the times `at`, by
        the smoother (and bandwidths) that made `e`."""
        from scipy.interpolate import make_smoothing_spline

        values = {}
        for name, v in d.values.items():
            flat = v.reshape(d.t.size, -1)
            if self.smoother == "spline":
                smooth = np.stack(
                    [
                        make_smoothing_spline(d.t, flat[:, c])(at)
                        for c in range(flat.shape[1])
                    ],
                    axis=1,
                )
            else:
                smooth = self._matrices(d.t, e.smoothing[name], name, at)[0] @ flat
            values[name] = smooth.reshape((at.size, *v.shape[1:]))
        return values

    def _integral_rows(self, system, d: Data, e: DerivativeEstimates):
        """Integral matching on one trajectory: the quadrature nodes (row
        after row), the smoothed states there, the rows' weights and the
        increments of the smoothed states."""
        x, w = np.polynomial.legendre.leggauss(self.nodes)
        half = np.diff(d.t) / 2
        middle = (d.t[1:] + d.t[:-1]) / 2
        at = (middle[:, None] + half[:, None] * x[None, :]).ravel()
        states = _observed_layout(
            system, Data(at, self._smoothed_at(d, e, at)), "Collocation"
        )
        smoothed = _observed_layout(system, Data(e.t, e.values), "Collocation")
        return at, states, half[:, None] * w[None, :], np.diff(smoothed, axis=0)

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        system, datasets, _ = observed_datasets(
            target, data, self.derivatives, dtype, "Collocation"
        )
        # `smoothed`: the data smoothed in space, where that applies.
        smoothed_data, estimates = self._estimates(datasets, system)
        us, targets, times, weights, starts = [], [], [], [], []
        for d, e in zip(smoothed_data, estimates, strict=True):
            smoothed = _observed_layout(system, Data(e.t, e.values), "Collocation")
            starts.append(smoothed[0])
            if self.match == "integral":
                at, states, w, increments = self._integral_rows(system, d, e)
                times.append(at)
                us.append(states)
                weights.append(w)
                targets.append(increments)
            else:
                us.append(smoothed)
                targets.append(
                    _observed_layout(system, Data(e.t, e.derivatives), "Collocation")
                )
        integral = self.match == "integral"
        return matching_problem(
            owner="Collocation",
            method=self,
            system=system,
            datasets=datasets,
            us=us,
            targets=targets,
            beta=(1.0,),
            initial_states=starts,
            seed=seed,
            dtype=dtype,
            init=init,
            result_cls=CollocationResult,
            result_extra={"estimates": tuple(estimates)},
            times=times if integral else None,
            weights=weights if integral else None,
        )


# The solve stage's loss is each state's mean squared error over the variance
# of its observations: at 1 the collocation fit, solved from the smoothed
# initial values, follows the data no better than each state's mean does.
_FAR = 1.0


def _warn_if_far(first_loss: float) -> None:
    """Warn when the solve stage started far from the data: the collocation
    fit matched wrong targets (coarse sampling, noise), and the solve in the
    loop had to start from a poor guess, where its solves may be long.

    Read from the solve stage's first loss, so the check costs no solve (and
    no compilation) of its own."""
    if not first_loss < _FAR:
        warnings.warn(
            "The collocation fit, solved from the smoothed initial values, does "
            f"not follow the data (the solve stage's first loss is {first_loss:.3g}"
            "; 1 is no better than each state's mean): the targets estimated from "
            "the data are probably wrong (look at `Collocation().estimate(data)`; "
            "coarse sampling and noise bias them). The solve in the loop started "
            "from this poor guess and may have needed more steps than from "
            "scratch: observe more densely, try `Collocation(smoother='spline')`, "
            "or fit with `method='solve'`.",
            SymmlWarning,
            stacklevel=4,
        )


@dataclass(frozen=True)
class CollocationThenSolve(AbstractFitMethod):
    """Collocation first, then the solve in the loop from its result
    (`fit(..., method="collocation+solve")`).

    The collocation fit is cheap and lands near the answer; the
    solve-in-the-loop fit then removes what smoothing got wrong, from a start
    where its solves already follow the data. `fit`'s `steps`,
    `learning_rate` and `lbfgs_steps` set the second stage; the result's
    history holds both (`"collocation:adam"`, ..., then `"adam"`, ...) and its
    `wall_time` both stages.

    Both stages default to one optimiser phase each (Adam): every phase is a
    separately compiled step, and for a small model compiling a step with an
    ODE solve and its gradient costs more than hundreds of its steps
    (measured on `examples/lotka_volterra.py`: about 9 s of CPU time to
    compile the Adam step, 15 s the L-BFGS step, under 1 ms to run a step).
    A warm start needs neither a long Adam phase nor a second optimiser; add
    `lbfgs_steps=` for a polished optimum, which costs one more compilation.

    A warning says when the solve stage started far from the data (its first
    loss at least 1, which a constant at each state's mean reaches).

    **Arguments:**

    - `collocation`: the first stage, a [`Collocation`][symml.Collocation].
    - `solve`: the second stage, a [`SolveInLoop`][symml.SolveInLoop].
    - `collocation_steps`, `collocation_lbfgs_steps`: the first stage's Adam
      and L-BFGS steps (default: 2000 and 0).
    - `tolerance`: stop a phase of the second stage early when its loss
      changes by less than this fraction over 10 steps (`None`, the default,
      keeps each phase's own: none for Adam, 1e-10 for L-BFGS).
    """

    name: ClassVar[str] = "CollocationThenSolve"
    default_steps: ClassVar[int] = 1000
    default_learning_rate: ClassVar[float] = 1e-3
    default_lbfgs_steps: ClassVar[int] = 0
    collocation: Collocation = field(default_factory=Collocation)
    solve: Any = None
    collocation_steps: int | None = None
    collocation_lbfgs_steps: int | None = None
    tolerance: float | None = None

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
        if self.tolerance is not None:
            positive_number(self.tolerance, "tolerance", owner)

    def phases(self, steps, learning_rate, lbfgs_steps):
        phases = super().phases(steps, learning_rate, lbfgs_steps)
        if self.tolerance is None:
            return phases
        return [dataclasses.replace(p, tolerance=self.tolerance) for p in phases]

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        first = self.collocation.prepare(
            target, data, seed=seed, dtype=dtype, init=init
        )
        phases = self.collocation.phases(
            self.collocation_steps,
            None,
            0 if self.collocation_lbfgs_steps is None else self.collocation_lbfgs_steps,
        )
        trainable, history, static = optimize(
            first, [p for p in phases if p.steps > 0], progress=Progress(False)
        )
        start = first.result(trainable, history, static)
        problem = self.solve.prepare(target, data, seed=seed, dtype=dtype, init=start)
        build = problem.result
        earlier = {f"collocation:{k}": v for k, v in history.items()}

        def result(x, history, static):
            firsts = [v[0] for v in history.values() if len(v)]
            if firsts:
                _warn_if_far(float(firsts[0]))
            out = build(x, {**earlier, **history}, static)
            object.__setattr__(out, "method", self)
            return out

        problem.result = result
        problem.fingerprint = fingerprint(
            "CollocationThenSolve", problem.fingerprint, self
        )
        return problem
