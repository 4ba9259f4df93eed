"""Physics-informed networks: fields trained on the residuals of their model."""

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import sympy as sp

from .._errors import FitError
from ..derivatives import FiniteDifference, get_scheme
from ..dsl import FieldModel, Model
from ..lowering import Compiler, Env, Params, init_params
from ._checkpoint import fingerprint
from ._loop import Problem
from ._method import AbstractFitMethod, one_of, positive_integer
from ._result import FitResult
from ._sampling import SAMPLERS, sample_box

ADAPTIVE = ("grad_norm",)


@dataclass(frozen=True)
class _Term:
    """One term of the loss: a residual sampled over some of the variables."""

    name: str
    expr: sp.Expr
    variables: tuple[sp.Symbol, ...]  # the variables it is sampled over
    n_points: int


class _Static(eqx.Module):
    points: tuple  # per term: (n, len(variables)) array
    weights: jax.Array  # per term


def _terms(model: Model, points: int, boundary_points: int) -> list[_Term]:
    variables = model.variables
    out = []
    for i, eq in enumerate(model.equations):
        out.append(_Term(f"equation {i}", eq.lhs - eq.rhs, variables, points))
    for i, cond in enumerate(model.conditions):
        expr = cond.lhs - cond.rhs
        free = tuple(v for v in variables if v in expr.free_symbols)
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
    """

    weights: dict = field(default_factory=dict)
    _evaluate: Any = field(default=None, repr=False)

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
            out[f.func.__name__] = np.asarray(jax.vmap(net)(flat)[:, 0]).reshape(
                arrays[0].shape
            )
        return out

    def residuals(self, **coordinates) -> list[np.ndarray]:
        """Each equation's residual (lhs − rhs) at the given coordinates."""
        return [
            np.asarray(r)
            for r in self._evaluate(
                self.params,
                {sp.Symbol(k): jnp.asarray(v, float) for k, v in coordinates.items()},
            )
        ]

    def unknown_samples(self, n: int = 200) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        raise FitError(
            "Sampling the unknown terms of a physics-informed fit is not supported "
            "yet; discover from a method-of-lines fit (`symml.discretize`) instead."
        )


@dataclass(frozen=True)
class PhysicsInformed(AbstractFitMethod):
    """Train the fields of a [`FieldModel`][symml.FieldModel] on the mean
    squared residuals of its equations and conditions at collocation points
    (a physics-informed network).

    **Arguments:**

    - `derivatives`: the scheme of the fields' derivatives: `"taylor"` (the
      default), `"forward"`, `"reverse"`, `"fd"`, a scheme object, or a dict
      per derivative.
    - `points`: collocation points per equation; `boundary_points`: per
      condition.
    - `sampling`: `"sobol"` (the default), `"halton"`, `"uniform"` or `"grid"`.
    - `resample_every`: draw new points every this many steps (`None`: never).
    - `weights`: `{term or equation: weight}`.
    - `adaptive`: `"grad_norm"` to balance the condition terms' weights by
      gradient size (Wang, Teng & Perdikaris 2021) every `adapt_every` steps.
    """

    name: ClassVar[str] = "PhysicsInformed"
    default_steps: ClassVar[int] = 5000
    default_learning_rate: ClassVar[float] = 1e-3
    default_lbfgs_steps: ClassVar[int] = 1000
    clip: ClassVar[float | None] = None
    derivatives: Any = "taylor"
    points: int = 2048
    boundary_points: int = 256
    sampling: str = "sobol"
    resample_every: int | None = 100
    weights: dict | None = None
    adaptive: str | None = None
    adapt_every: int = 100

    def __post_init__(self):
        owner = "PhysicsInformed"
        positive_integer(self.points, "points", owner)
        positive_integer(self.boundary_points, "boundary_points", owner)
        one_of(self.sampling, "sampling", owner, SAMPLERS)
        positive_integer(self.resample_every, "resample_every", owner, allow_none=True)
        if self.adaptive is not None:
            one_of(self.adaptive, "adaptive", owner, ADAPTIVE)
        positive_integer(self.adapt_every, "adapt_every", owner)
        if self.weights is not None and not isinstance(self.weights, dict):
            raise FitError(
                f"`weights` of `{owner}` must be a dict `{{term: weight}}`; got "
                f"{type(self.weights).__name__}."
            )

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        if not isinstance(target, FieldModel):
            raise FitError(
                f"`PhysicsInformed` fits field models (declared with `symml.Field`); "
                f"got {getattr(target, '_kind', type(target).__name__)}."
            )
        if data is not None:
            raise FitError(
                "Physics-informed fits train on the model's residuals and conditions;"
                " observations of fields are not supported yet. Leave out `data`."
            )
        return _pinn_problem(self, target, seed=seed, dtype=dtype, init=init)


def _pinn_problem(method: PhysicsInformed, model: FieldModel, *, seed, dtype, init):
    terms = _terms(model, method.points, method.boundary_points)
    _check_domain(model, terms)
    weights0 = np.ones(len(terms))
    for key, w in (method.weights or {}).items():
        idx = _term_index(terms, model, key)
        try:
            w = float(w)
        except (TypeError, ValueError):
            w = float("nan")
        if not (np.isfinite(w) and w >= 0):
            raise FitError(f"The weight of {terms[idx].name} must be finite and >= 0.")
        weights0[idx] = w
    trainable_params = list(model.trainable_parameters)
    compiler = Compiler(
        bound=[*model.variables, *trainable_params],
        constants=model.fixed_parameters,
        derivatives=_scheme(method.derivatives, model),
    )
    evaluators = [compiler(sp.sympify(term.expr).doit(deep=True)) for term in terms]
    requests = compiler.requests
    params = (
        init.params
        if init is not None
        else init_params(model, key=jr.PRNGKey(seed), dtype=dtype)
    )
    rng = np.random.default_rng(seed)

    def draw() -> tuple:
        return tuple(
            jnp.asarray(
                sample_box(
                    [model.domain[v] for v in t.variables],
                    t.n_points,
                    method.sampling,
                    rng,
                ),
                dtype,
            )
            for t in terms
        )

    def term_values(params: Params, pts: tuple) -> list[jax.Array]:
        out = []
        for term, evaluate, p in zip(terms, evaluators, pts, strict=True):
            values = {v: p[:, i] for i, v in enumerate(term.variables)}
            values.update({q: params.values[str(q)] for q in trainable_params})
            r = evaluate(Env(values, params.networks, requests))
            out.append(jnp.mean(jnp.asarray(r, dtype) ** 2))
        return out

    def loss_fn(params: Params, static: _Static):
        values = term_values(params, static.points)
        loss = sum(w * v for w, v in zip(static.weights, values, strict=True))
        return loss, {t.name: v for t, v in zip(terms, values, strict=True)}

    @eqx.filter_jit
    def term_gradient_sizes(params: Params, static: _Static):
        # For gradient-norm weighting: max |∇ equations| and mean |∇ term|.
        sizes = []
        for k in range(len(terms)):
            g = eqx.filter_grad(lambda p, k=k: term_values(p, static.points)[k])(params)
            leaves = jnp.concatenate(
                [
                    jnp.ravel(jnp.abs(x))
                    for x in jax.tree.leaves(eqx.filter(g, eqx.is_inexact_array))
                ]
            )
            sizes.append((jnp.max(leaves), jnp.mean(leaves)))
        return sizes

    n_equations = len(model.equations)
    resample = method.resample_every if method.sampling != "grid" else None
    adapt = method.adapt_every if method.adaptive == "grad_norm" else None

    def between(phase: str, step: int, params: Params, static: _Static) -> _Static:
        if resample and step and step % resample == 0:
            static = eqx.tree_at(lambda s: s.points, static, draw())
        if adapt and step % adapt == 0:
            sizes = term_gradient_sizes(params, static)
            reference = max(float(m) for m, _ in sizes[:n_equations])
            w = np.array(static.weights)
            for k in range(n_equations, len(terms)):
                mean = float(sizes[k][1])
                if mean > 0:
                    # Wang, Teng & Perdikaris (2021): a moving average of the ratio.
                    w[k] = 0.9 * w[k] + 0.1 * reference / mean
            static = eqx.tree_at(lambda s: s.weights, static, jnp.asarray(w, dtype))
        return static

    periods = [p for p in (resample, adapt) if p]
    period = math.gcd(*periods) if periods else None

    @jax.jit
    def evaluate(params, coordinates):
        out = []
        for ev in evaluators[:n_equations]:
            values = dict(coordinates)
            values.update({q: params.values[str(q)] for q in trainable_params})
            out.append(ev(Env(values, params.networks, requests)))
        return out

    def result(params: Params, history, static: _Static) -> PINNResult:
        w = np.asarray(static.weights)
        return PINNResult(
            model=model,
            params=params,
            history=history,
            wall_time=0.0,
            method=method,
            seed=seed,
            weights={t.name: float(x) for t, x in zip(terms, w, strict=True)},
            _evaluate=evaluate,
        )

    return Problem(
        loss=loss_fn,
        trainable=params,
        static=_Static(draw(), jnp.asarray(weights0, dtype)),
        result=result,
        between=between if periods else None,
        period=period,
        rng=rng,
        fingerprint=fingerprint(
            "PhysicsInformed", model, method, seed, np.dtype(dtype).name
        ),
    )


def _term_index(terms: list[_Term], model: Model, key) -> int:
    if isinstance(key, str):
        for i, t in enumerate(terms):
            if t.name == key:
                return i
    else:
        for i, eq in enumerate((*model.equations, *model.conditions)):
            if key == eq:
                return i
    names = ", ".join(repr(t.name) for t in terms)
    raise FitError(
        f"`weights` has the key {key!r}, which is no term of the loss; use one of "
        f"{names}, or an equation or condition of the model."
    )
