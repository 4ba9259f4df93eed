"""Physics-informed networks: fields trained on the residuals of their model,
its conditions and observations."""

import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import sympy as sp

from .._errors import FitError
from ..derivatives import FiniteDifference, get_scheme
from ..dsl import FieldFunction, FieldModel, Model
from ..lowering import Compiler, Env, Params, init_params
from ..lowering._compile import check_derivatives
from ..nets import MLP, EmbeddedNetwork, GatedMLP
from ._checkpoint import fingerprint
from ._loop import Problem
from ._method import AbstractFitMethod, one_of, positive_integer
from ._pinn_data import Observations, as_point_clouds, layout
from ._pinn_hard import constrained_params, plan
from ._pinn_options import (
    RAD,
    Causal,
    causal_weights,
    check_hard,
    slice_index,
    slice_means,
)
from ._result import FitResult
from ._sampling import SAMPLERS, residual_draw, sample_box
from ._shard import Shard
from ._ude import _with_units

ADAPTIVE = ("grad_norm",)


@dataclass(frozen=True)
class _Term:
    """One term of the loss: a residual sampled over some of the variables."""

    name: str
    expr: sp.Expr
    variables: tuple[sp.Symbol, ...]  # the variables it is sampled over
    n_points: int


class _Static(eqx.Module):
    points: tuple  # the equations' points (n, d), then per kept condition
    weights: jax.Array  # per term
    data: tuple = ()  # per data set: (points (n, d), targets (k, n), weights (k, n))
    epsilon: jax.Array | None = None  # causal ε in use
    stage: jax.Array | None = None  # its index in the schedule


def _equation_terms(model: Model, points: int) -> list[_Term]:
    return [
        _Term(f"equation {i}", eq.lhs - eq.rhs, model.variables, points)
        for i, eq in enumerate(model.equations)
    ]


def _condition_terms(model: Model, keep, boundary_points: int) -> list[_Term]:
    out = []
    for i, cond in enumerate(model.conditions):
        if i not in keep:
            continue
        expr = cond.lhs - cond.rhs
        free = tuple(v for v in model.variables if v in expr.free_symbols)
        out.append(_Term(f"condition {i}", expr, free, boundary_points if free else 1))
    return out


def _check_domain(model: Model, terms: list[_Term]):
    for term in terms:
        for v in term.variables:
            if v not in model.domain:
                raise FitError(
                    f"The {term.name} (`{term.expr} = 0`) is sampled over `{v}`, but "
                    f"`{v}` has no range: add it to the model's `domain=`, e.g. "
                    f"`domain={{{v}: (0, 1)}}`."
                )


def _scheme(derivatives, model: Model):
    """Finite differences by name get steps scaled to the domain's ranges."""
    if isinstance(derivatives, str) and derivatives == "fd":
        scale = tuple(
            float(np.subtract(*model.domain[v][::-1])) if v in model.domain else 1.0
            for v in model.variables
        )
        return FiniteDifference(scale=scale)
    if isinstance(derivatives, dict):
        return {k: _scheme(v, model) for k, v in derivatives.items()}
    return get_scheme(derivatives) if derivatives is not None else None


@dataclass(frozen=True, eq=False)
class PINNResult(FitResult):
    """A trained physics-informed model: see [`FitResult`][symml.FitResult] for
    the common attributes.

    **Attributes:**

    - `weights`: `{term: final loss weight}` (changed by adaptive weighting).
    - `hard_conditions`: the indices of the model's conditions imposed by
      construction (not terms of the loss).
    - `causal_weights`: with causal training, the final weight of each time
      slice (all near 1 once the fit respects causality); else `None`.
    - `data`: the point clouds fitted.
    """

    weights: dict = field(default_factory=dict)
    hard_conditions: tuple = ()
    causal_weights: np.ndarray | None = None
    data: tuple = ()
    _evaluate: Any = field(default=None, repr=False)
    _samples: Any = field(default=None, repr=False)

    def predict(self, points=None, /, **coordinates) -> dict[str, np.ndarray]:
        """Evaluate every field at points.

        Give the coordinates by variable name (`result.predict(t=ts, x=xs)`,
        broadcast against each other) or as an array of shape `(n, d)` in the
        order of `model.variables`.

        **Returns:** `{field name: values}` in the broadcast shape.
        """
        names = [str(v) for v in self.model.variables]
        if points is not None:
            if coordinates:
                raise FitError("Give `points` or coordinates by name, not both.")
            points = np.asarray(points, dtype=float)
            if points.ndim < 1 or points.shape[-1] != len(names):
                raise FitError(
                    f"`points` has shape {points.shape}; expected (n, {len(names)}),"
                    f" one column per variable ({', '.join(names)})."
                )
            coordinates = {n: points[..., i] for i, n in enumerate(names)}
        unknown = [k for k in coordinates if k not in names]
        if unknown:
            raise FitError(
                f"`predict` got {', '.join(unknown)}, which are not variables of the "
                f"model; its variables are {', '.join(names)}."
            )
        missing = [n for n in names if n not in coordinates]
        if missing:
            raise FitError(
                f"`predict` needs every independent variable; missing "
                f"{', '.join(missing)}."
            )
        try:
            arrays = np.broadcast_arrays(
                *(np.asarray(coordinates[n], float) for n in names)
            )
        except ValueError:
            raise FitError(
                "The coordinates given to `predict` do not broadcast against each "
                "other; give arrays of one shape (or scalars)."
            ) from None
        dtype = jax.tree.leaves(self.params)[0].dtype
        flat = jnp.stack([jnp.asarray(a.ravel(), dtype) for a in arrays], axis=1)
        out = {}
        for f in self.model.fields:
            net = self.params.networks[f.func.__name__]
            out[f.func.__name__] = np.asarray(_field_values(net, flat)).reshape(
                arrays[0].shape
            )
        return out

    def residuals(self, **coordinates) -> list[np.ndarray]:
        """Each equation's residual (lhs − rhs) at the given coordinates, e.g.
        `result.residuals(t=ts, x=xs)` with one array per independent
        variable, all of one shape."""
        names = [str(v) for v in self.model.variables]
        unknown = sorted(set(coordinates) - set(names))
        if unknown:
            raise FitError(
                f"{', '.join(f'`{k}`' for k in unknown)} are not variables of the "
                f"model; its variables are {', '.join(names)}."
            )
        missing = [n for n in names if n not in coordinates]
        if missing:
            raise FitError(
                "`residuals` needs every independent variable of the model "
                f"({', '.join(names)}) as a keyword; missing: {', '.join(missing)}."
            )
        return [
            np.asarray(r)
            for r in self._evaluate(
                self.params,
                {sp.Symbol(k): jnp.asarray(v, float) for k, v in coordinates.items()},
            )
        ]

    def unknown_samples(
        self, n: int = 1000
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each unknown term on the fitted fields: `{name: (X, Y)}` with the
        network's inputs `X` (shape `(n, n_inputs)`, expressions of the fields
        and their derivatives evaluated on the fitted fields) and its outputs
        `Y` at `n` points spread over the domain (a scrambled Sobol sequence,
        seeded by the fit's seed). The data of [`discover`][symml.discover].
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
            raise FitError(f"`n` must be an integer >= 2; got {n!r}.")
        if not self.model.unknowns:
            return {}
        bounds = [self.model.domain[v] for v in self.model.variables]
        rng = np.random.default_rng([self.seed, 2])
        dtype = jax.tree.leaves(self.params)[0].dtype
        points = jnp.asarray(sample_box(bounds, int(n), "sobol", rng), dtype)
        return {
            name: (np.asarray(x), np.asarray(y))
            for name, (x, y) in self._samples(self.params, points).items()
        }


@eqx.filter_jit
def _field_values(net, points):
    return jax.vmap(net)(points)[:, 0]


@dataclass(frozen=True)
class PhysicsInformed(AbstractFitMethod):
    """Train the fields of a [`FieldModel`][symml.FieldModel], its trainable
    parameters and its unknown terms on the mean squared residuals of its
    equations and conditions at collocation points and, given data, on the
    mismatch with observations (a physics-informed network; with unknown terms
    or trainable parameters, an inverse problem).

    The loss is `Σ weight × term`: one term per equation (the mean squared
    residual), per condition, and per observed key of each data set (the
    weighted mean squared error divided by the variance of the key's values,
    so observables of different units weigh alike; see
    [`PointData`][symml.PointData] for the noise weights). Trainable
    parameters are optimised in units of their initial magnitude, so a
    coefficient of 0.01 moves by fractions of itself per step.

    **Arguments:**

    - `derivatives`: the scheme of the fields' derivatives: `"taylor"` (the
      default), `"forward"`, `"reverse"`, `"fd"`, a scheme object, or a dict
      per derivative.
    - `points`: collocation points of the equations; `boundary_points`: per
      condition.
    - `sampling`: `"sobol"` (the default), `"halton"`, `"uniform"`, `"grid"`,
      or [`RAD(...)`][symml.RAD]: residual-based adaptive sampling (the
      equations' points redrawn where the residual is large).
    - `resample_every`: draw new points every this many steps (`None`: never).
    - `weights`: `{term: weight}`; a term is named (`"equation 0"`,
      `"condition 1"`, `"data 0: u"`, or `"data 0"` / `"data"` for every key
      of a data set / of all of them) or given as an equation or condition.
    - `adaptive`: `"grad_norm"` to balance the weights of the condition and
      data terms by gradient size (Wang, Teng & Perdikaris 2021) every
      `adapt_every` steps.
    - `causal`: [`Causal(...)`][symml.Causal] to weight the equations'
      residuals causally in time (Wang, Sankaran & Perdikaris 2022).
    - `hard_conditions`: `True` to impose every condition that the geometry
      allows by construction of the fields' networks (periodic pairs, and
      values on faces of the domain's box), or a list of conditions that must
      be; the others stay terms of the loss. See
      [`PINNResult.hard_conditions`][symml.PINNResult].
    """

    name: ClassVar[str] = "PhysicsInformed"
    default_steps: ClassVar[int] = 5000
    default_learning_rate: ClassVar[float] = 1e-3
    default_lbfgs_steps: ClassVar[int] = 1000
    clip: ClassVar[float | None] = None
    derivatives: Any = "taylor"
    points: int = 2048
    boundary_points: int = 256
    sampling: Any = "sobol"
    resample_every: int | None = 100
    weights: dict | None = None
    adaptive: str | None = None
    adapt_every: int = 100
    causal: Causal | None = None
    hard_conditions: Any = False

    def __post_init__(self):
        owner = "PhysicsInformed"
        positive_integer(self.points, "points", owner)
        positive_integer(self.boundary_points, "boundary_points", owner)
        if not isinstance(self.sampling, RAD):
            one_of(self.sampling, "sampling", owner, SAMPLERS)
        positive_integer(self.resample_every, "resample_every", owner, allow_none=True)
        if isinstance(self.sampling, RAD) and self.resample_every is None:
            raise FitError(
                "`sampling=RAD(...)` of `PhysicsInformed` redraws points every "
                "`resample_every` steps; give `resample_every` a number."
            )
        if self.adaptive is not None:
            one_of(self.adaptive, "adaptive", owner, ADAPTIVE)
        positive_integer(self.adapt_every, "adapt_every", owner)
        if self.weights is not None and not isinstance(self.weights, dict):
            raise FitError(
                f"`weights` of `{owner}` must be a dict `{{term: weight}}`; got "
                f"{type(self.weights).__name__}."
            )
        if self.causal is not None and not isinstance(self.causal, Causal):
            raise FitError(
                f"`causal` of `{owner}` must be `symml.Causal(...)` or None; got "
                f"{self.causal!r}."
            )
        object.__setattr__(self, "hard_conditions", check_hard(self.hard_conditions))
        check_derivatives(self.derivatives, FitError)

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        if not isinstance(target, FieldModel):
            raise FitError(
                f"`PhysicsInformed` fits field models (declared with `symml.Field`); "
                f"got {getattr(target, '_kind', type(target).__name__)}."
            )
        observations = (
            [] if data is None else layout(as_point_clouds(data, target), target)
        )
        return _pinn_problem(
            self, target, observations, seed=seed, dtype=dtype, init=init
        )


def _pinn_problem(
    method: PhysicsInformed,
    model: FieldModel,
    observations: list[Observations],
    *,
    seed,
    dtype,
    init,
):
    if method.hard_conditions:
        plans, imposed = plan(model, method.hard_conditions)
    else:
        plans, imposed = {}, ()
    keep = [i for i in range(len(model.conditions)) if i not in imposed]
    equations = _equation_terms(model, method.points)
    conditions = _condition_terms(model, keep, method.boundary_points)
    _check_domain(model, [*equations, *conditions])
    names = [t.name for t in (*equations, *conditions)]
    for obs in observations:
        names.extend(obs.term_names())
    n_eq = len(equations)
    weights0 = _initial_weights(method.weights, names, model, imposed, observations)

    variables = tuple(model.variables)
    trainable_params = list(model.trainable_parameters)
    compiler = Compiler(
        bound=[*variables, *trainable_params],
        constants=model.fixed_parameters,
        derivatives=_scheme(method.derivatives, model),
    )

    def compile_expr(expr):
        return compiler(sp.sympify(expr).doit(deep=True))

    eq_evaluators = [compile_expr(t.expr) for t in equations]
    cond_evaluators = [compile_expr(t.expr) for t in conditions]
    data_evaluators = [[compile_expr(k) for k in obs.keys] for obs in observations]
    unknown_evaluators = [
        (u.name, [compile_expr(i) for i in u.inputs], [compiler(o) for o in u.outputs])
        for u in model.unknowns
    ]
    requests = compiler.requests

    if init is not None:
        params = init.params
    else:
        params = init_params(model, key=jr.PRNGKey(seed), dtype=dtype)
        params = _normalised_outputs(params, _output_scales(observations))
        if plans:
            params = constrained_params(model, plans, params, seed, dtype)
    # Trainable parameters are optimised in units of their initial magnitude
    # (as in `SolveInLoop`): Adam moves every variable by about the learning
    # rate per step, which would push a diffusion coefficient of 0.01 through
    # zero within a few steps.
    units = {
        k: jnp.asarray(float(abs(v)) if float(v) != 0 else 1.0, dtype)
        for k, v in params.values.items()
    }
    rng = np.random.default_rng(seed)
    rad = method.sampling if isinstance(method.sampling, RAD) else None
    sampler = rad.base if rad is not None else method.sampling
    domain_box = [model.domain[v] for v in variables]

    def draw_conditions() -> list:
        return [
            jnp.asarray(
                sample_box(
                    [model.domain[v] for v in t.variables], t.n_points, sampler, rng
                ),
                dtype,
            )
            for t in conditions
        ]

    def draw_interior():
        return jnp.asarray(sample_box(domain_box, method.points, sampler, rng), dtype)

    def bind(params: Params, pts, over=variables) -> dict:
        values = {v: pts[:, i] for i, v in enumerate(over)}
        values.update({q: params.values[str(q)] for q in trainable_params})
        return values

    def evaluate_all(
        evaluators, params: Params, pts, over=variables
    ) -> list[jax.Array]:
        env = Env(bind(params, pts, over), params.networks, requests)
        n = pts.shape[0]
        return [
            jnp.broadcast_to(jnp.asarray(ev(env), pts.dtype), (n,)) for ev in evaluators
        ]

    causal = method.causal
    if causal is not None:
        time = causal.time_index(variables)
        if variables[time] not in model.domain:
            raise FitError(
                f"`Causal` weights in `{variables[time]}`, which has no range; add "
                "it to the model's `domain=`."
            )
        t_lo, t_hi = model.domain[variables[time]]

    def equation_slices(params, static):
        """Per equation, its mean squared residual in each time slice."""
        pts = static.points[0]
        residuals = evaluate_all(eq_evaluators, params, pts)
        index = slice_index(pts[:, time], t_lo, t_hi, causal.chunks)
        return [slice_means(r**2, index, causal.chunks) for r in residuals]

    def slice_weights(per_slice, static):
        total = sum(
            w * s for w, s in zip(static.weights[:n_eq], per_slice, strict=True)
        )
        return causal_weights(total, static.epsilon)

    def term_values(params: Params, static: _Static) -> list[jax.Array]:
        if causal is None:
            residuals = evaluate_all(eq_evaluators, params, static.points[0])
            out = [jnp.mean(r**2) for r in residuals]
        else:
            per_slice = equation_slices(params, static)
            c = slice_weights(per_slice, static)
            out = [jnp.mean(c * s) for s in per_slice]
        for term, evaluate, pts in zip(
            conditions, cond_evaluators, static.points[1:], strict=True
        ):
            (r,) = evaluate_all([evaluate], params, pts, term.variables)
            out.append(jnp.mean(r**2))
        for evaluators, (pts, targets, w) in zip(
            data_evaluators, static.data, strict=True
        ):
            predictions = evaluate_all(evaluators, params, pts)
            for j, pred in enumerate(predictions):
                out.append(jnp.sum(w[j] * (pred - targets[j]) ** 2))
        return out

    def loss_fn(x: Params, static: _Static):
        values = term_values(_with_units(x, units), static)
        loss = sum(w * v for w, v in zip(static.weights, values, strict=True))
        return loss, dict(zip(names, values, strict=True))

    @eqx.filter_jit
    def term_gradient_sizes(x: Params, static: _Static):
        # For gradient-norm weighting: max |∇ equations| and mean |∇ term|.
        sizes = []
        for k in range(len(names)):
            g = eqx.filter_grad(
                lambda p, k=k: term_values(_with_units(p, units), static)[k]
            )(x)
            leaves = jnp.concatenate(
                [
                    jnp.ravel(jnp.abs(a))
                    for a in jax.tree.leaves(eqx.filter(g, eqx.is_inexact_array))
                ]
            )
            sizes.append((jnp.max(leaves), jnp.mean(leaves)))
        return sizes

    @eqx.filter_jit
    def candidate_residuals(params: Params, candidates, weights):
        # In batches of the training size, so memory stays what a step needs.
        batches = candidates.reshape(-1, method.points, candidates.shape[-1])

        def one(pts):
            residuals = evaluate_all(eq_evaluators, params, pts)
            return jnp.sqrt(
                sum(w * r**2 for w, r in zip(weights, residuals, strict=True))
            )

        return jax.lax.map(one, batches).reshape(-1)

    @eqx.filter_jit
    def current_slice_weights(params: Params, static: _Static):
        return slice_weights(equation_slices(params, static), static)

    resample = method.resample_every if method.sampling != "grid" else None
    adapt = method.adapt_every if method.adaptive == "grad_norm" else None
    schedule = causal.schedule if causal is not None else ()
    anneal = causal.check_every if len(schedule) > 1 else None

    def between(phase: str, step: int, x: Params, static: _Static) -> _Static:
        params = _with_units(x, units)
        if resample and step and step % resample == 0:
            if rad is not None:
                candidates = sample_box(
                    domain_box, method.points * rad.candidates, rad.base, rng
                )
                r = candidate_residuals(
                    params, jnp.asarray(candidates, dtype), static.weights[:n_eq]
                )
                interior = jnp.asarray(
                    residual_draw(
                        candidates,
                        np.asarray(r),
                        method.points,
                        k=float(rad.k),
                        c=float(rad.c),
                        rng=rng,
                    ),
                    dtype,
                )
            else:
                interior = draw_interior()
            points = (interior, *draw_conditions())
            static = eqx.tree_at(lambda s: s.points, static, points)
        if adapt and step % adapt == 0 and len(names) > n_eq:
            sizes = term_gradient_sizes(x, static)
            reference = max(float(m) for m, _ in sizes[:n_eq])
            w = np.array(static.weights)
            for k in range(n_eq, len(names)):
                mean = float(sizes[k][1])
                if mean > 0:
                    # Wang, Teng & Perdikaris (2021): a moving average of the ratio.
                    w[k] = 0.9 * w[k] + 0.1 * reference / mean
            static = eqx.tree_at(lambda s: s.weights, static, jnp.asarray(w, dtype))
        if anneal and step and step % anneal == 0:
            stage = int(static.stage)
            if stage + 1 < len(schedule):
                c = np.asarray(current_slice_weights(params, static))
                if c.min() > causal.tolerance:
                    static = eqx.tree_at(
                        lambda s: (s.epsilon, s.stage),
                        static,
                        (
                            jnp.asarray(schedule[stage + 1], dtype),
                            jnp.asarray(stage + 1, jnp.int32),
                        ),
                    )
        return static

    periods = [p for p in (resample, adapt, anneal) if p]
    period = math.gcd(*periods) if periods else None

    @jax.jit
    def evaluate(params, coordinates):
        out = []
        for ev in eq_evaluators:
            values = dict(coordinates)
            values.update({q: params.values[str(q)] for q in trainable_params})
            out.append(ev(Env(values, params.networks, requests)))
        return out

    @eqx.filter_jit
    def samples(params: Params, pts):
        env = Env(bind(params, pts), params.networks, requests)
        n = pts.shape[0]
        out = {}
        for name, inputs, outputs in unknown_evaluators:
            x = jnp.stack(
                [
                    jnp.broadcast_to(jnp.asarray(e(env), pts.dtype), (n,))
                    for e in inputs
                ],
                axis=1,
            )
            y = jnp.stack(
                [
                    jnp.broadcast_to(jnp.asarray(e(env), pts.dtype), (n,))
                    for e in outputs
                ],
                axis=1,
            )
            out[name] = (x, y)
        return out

    def result(x: Params, history, static: _Static) -> PINNResult:
        params = _with_units(x, units)
        w = np.asarray(static.weights)
        slices = (
            np.asarray(current_slice_weights(params, static))
            if causal is not None
            else None
        )
        return PINNResult(
            model=model,
            params=params,
            history=history,
            wall_time=0.0,
            method=method,
            seed=seed,
            weights=dict(zip(names, (float(v) for v in w), strict=True)),
            hard_conditions=tuple(imposed),
            causal_weights=slices,
            data=tuple(obs for obs in observations),
            _evaluate=evaluate,
            _samples=samples,
        )

    data_static = tuple(
        (
            jnp.asarray(obs.points, dtype),
            jnp.asarray(obs.targets, dtype),
            jnp.asarray(obs.weights, dtype),
        )
        for obs in observations
    )
    static = _Static(
        (draw_interior(), *draw_conditions()),
        jnp.asarray(weights0, dtype),
        data_static,
        jnp.asarray(schedule[0] if schedule else 0.0, dtype),
        jnp.asarray(0, jnp.int32),
    )
    problem = Problem(
        loss=loss_fn,
        trainable=_with_units(params, units, divide=True),
        static=static,
        result=result,
        between=between if periods else None,
        period=period,
        rng=rng,
        fingerprint=fingerprint(
            "PhysicsInformed",
            model,
            method,
            seed,
            np.dtype(dtype).name,
            *[
                a
                for obs in observations
                for a in (obs.points, obs.targets, obs.weights)
            ],
        ),
        shard=_data_axes(conditions, observations),
        resample=partial(_resample_observations, observations),
    )
    problem.relayout = partial(_pad_observations, problem)
    return problem


def _data_axes(conditions: list[_Term], observations) -> _Static:
    """`Problem.shard`: the points of every sampled term and of every data set
    are split over the devices of a mesh; a condition at one point is not."""
    where = "(`boundary_points` of `PhysicsInformed`)"
    return _Static(
        (
            Shard("collocation points (`points` of `PhysicsInformed`)"),
            *(
                Shard(f"points of the {t.name} {where}") if t.variables else None
                for t in conditions
            ),
        ),
        None,
        tuple(
            (Shard(f"points of data set {k}"),)
            + (Shard(f"points of data set {k}", 1),) * 2
            for k in range(len(observations))
        ),
        None,
        None,
    )


def _pad_observations(problem: Problem, n_devices: int) -> Problem:
    """`problem` with each data set padded to a multiple of `n_devices` points
    by copies of its last point with zero weight (out of the loss)."""
    if not any(pts.shape[0] % n_devices for pts, _, _ in problem.static.data):
        return problem
    data = []
    for pts, targets, w in problem.static.data:
        pad = -pts.shape[0] % n_devices
        if pad:
            pts = jnp.concatenate([pts, jnp.repeat(pts[-1:], pad, axis=0)])
            targets = jnp.concatenate(
                [targets, jnp.repeat(targets[:, -1:], pad, axis=1)], axis=1
            )
            w = jnp.concatenate([w, jnp.zeros((w.shape[0], pad), w.dtype)], axis=1)
        data.append((pts, targets, w))
    return dataclasses.replace(
        problem,
        static=eqx.tree_at(lambda s: s.data, problem.static, tuple(data)),
        fingerprint=fingerprint(problem.fingerprint, "padded", n_devices),
        relayout=None,
    )


def _resample_observations(observations, static: _Static, rng) -> _Static:
    """`static` with each data set's points drawn with replacement (a case
    bootstrap): each point's weight times the number of times it is drawn."""
    if not observations:
        raise FitError(
            "`bootstrap=True` resamples observations, and this physics-informed "
            "fit has none; fit an ensemble over `seeds` alone, or give data."
        )
    data = []
    for obs, (pts, targets, w) in zip(observations, static.data, strict=True):
        n = obs.points.shape[0]
        counts = np.bincount(rng.integers(0, n, n), minlength=w.shape[1])
        data.append((pts, targets, w * jnp.asarray(counts, w.dtype)))
    return eqx.tree_at(lambda s: s.data, static, tuple(data))


def _output_scales(observations: list[Observations]) -> dict[str, tuple[float, float]]:
    """`{field name: (mean, standard deviation)}` of the values observed of each
    field itself (not of expressions of it), over every data set."""
    values: dict[str, list] = {}
    for obs in observations:
        for key, row in zip(obs.keys, obs.targets, strict=True):
            if isinstance(key, FieldFunction) and all(
                isinstance(a, sp.Symbol) for a in key.args
            ):
                values.setdefault(key.func.__name__, []).append(row)
    out = {}
    for name, rows in values.items():
        y = np.concatenate(rows)
        mean, std = float(np.mean(y)), float(np.std(y))
        if y.size >= 2 and np.isfinite(std) and std > 0:
            out[name] = (mean, std)
    return out


def _normalised_outputs(params: Params, scales: dict) -> Params:
    """Fields start at the scale of their observations: the last layer's
    weights are multiplied by the observed standard deviation and its bias set
    to the observed mean, so a network whose hidden output is of order one
    starts with values of the data's size (a state of the Lorenz system
    around 25 needs no weights of that size to be learned first)."""
    networks = dict(params.networks)
    for name, (mean, std) in scales.items():
        networks[name] = _rescale_last_layer(networks[name], mean, std)
    return Params(params.values, networks)


def _rescale_last_layer(net, mean: float, std: float):
    if isinstance(net, EmbeddedNetwork):
        return eqx.tree_at(
            lambda n: n.body, net, _rescale_last_layer(net.body, mean, std)
        )
    if isinstance(net, MLP | GatedMLP):
        w, b = net.weights[-1], net.biases[-1]
        return eqx.tree_at(
            lambda n: (n.weights[-1], n.biases[-1]),
            net,
            (w * jnp.asarray(std, w.dtype), b + jnp.asarray(mean, b.dtype)),
        )
    return net  # an architecture of its own: left as it was built


def _initial_weights(weights, names, model, imposed, observations) -> np.ndarray:
    out = np.ones(len(names))
    for key, w in (weights or {}).items():
        indices = _term_indices(names, model, imposed, key)
        try:
            w = float(w)
        except (TypeError, ValueError):
            w = float("nan")
        if not (np.isfinite(w) and w >= 0):
            raise FitError(
                f"The weight of {key!r} in `weights` must be finite and >= 0; got {w}."
            )
        out[indices] = w
    return out


def _term_indices(names: list[str], model: Model, imposed, key) -> list[int]:
    if isinstance(key, str):
        if key in names:
            return [names.index(key)]
        if key == "data" or (key.startswith("data ") and ":" not in key):
            prefix = "data " if key == "data" else key + ": "
            found = [i for i, n in enumerate(names) if n.startswith(prefix)]
            if found:
                return found
    else:
        for i, eq in enumerate(model.equations):
            if key == eq:
                return [names.index(f"equation {i}")]
        for i, cond in enumerate(model.conditions):
            if key == cond:
                if i in imposed:
                    raise FitError(
                        f"`weights` weighs the condition `{key}`, which is imposed "
                        "by construction (`hard_conditions`), so it is no term of "
                        "the loss; drop its weight."
                    )
                return [names.index(f"condition {i}")]
    listed = ", ".join(repr(n) for n in names)
    raise FitError(
        f"`weights` has the key {key!r}, which is no term of the loss; use one of "
        f"{listed}, 'data' or 'data <k>' for data sets, or an equation or "
        "condition of the model."
    )
