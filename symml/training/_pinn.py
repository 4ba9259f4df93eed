"""Physics-informed networks: fields trained on the residuals of their model."""

import time
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import sympy as sp

from .._errors import FitError
from ..derivatives import FiniteDifference, get_scheme
from ..dsl import Model
from ..lowering import Compiler, Env, Params, init_params
from ._optim import Phase, adam, lbfgs, run_phases
from ._progress import Progress
from ._result import TrainedMixin
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


@dataclass(frozen=True)
class PINNResult(TrainedMixin):
    """A trained physics-informed model.

    **Attributes:**

    - `model`: the fitted [`Model`][symml.Model].
    - `params`: the trained [`Params`][symml.Params]: one network per field
      and the trainable parameter values.
    - `history`: `{phase: losses per step}`.
    - `weights`: `{term: final loss weight}` (changed by adaptive weighting).
    - `wall_time`: seconds spent fitting.
    """

    model: Model
    params: Params
    history: dict[str, np.ndarray]
    weights: dict[str, float]
    wall_time: float
    _residuals: dict = field(repr=False)

    def predict(self, points=None, /, **coordinates) -> dict[str, np.ndarray]:
        """Evaluate every field at points.

        Give the coordinates by variable name (`result.predict(t=ts, x=xs)`,
        broadcast against each other) or as an array of shape `(n, d)` in the
        order of `model.variables`.

        **Returns:** `{field name: values}` in the broadcast shape.
        """
        names = [str(v) for v in self.model.variables]
        if points is not None:
            points = np.asarray(points, dtype=float)
            coordinates = {n: points[..., i] for i, n in enumerate(names)}
        missing = [n for n in names if n not in coordinates]
        if missing:
            raise FitError(
                f"`predict` needs every independent variable; missing "
                f"{', '.join(missing)}."
            )
        arrays = np.broadcast_arrays(
            *(np.asarray(coordinates[n], float) for n in names)
        )
        flat = jnp.stack([a.ravel() for a in arrays], axis=1)
        out = {}
        for f in self.model.fields:
            net = self.params.networks[f.func.__name__]
            out[f.func.__name__] = np.asarray(jax.vmap(net)(flat)[:, 0]).reshape(
                arrays[0].shape
            )
        return out

    def residuals(self, **coordinates) -> list[np.ndarray]:
        """Each equation's residual (lhs − rhs) at the given coordinates."""
        evaluate = self._residuals["evaluate"]
        return [
            np.asarray(r)
            for r in evaluate(
                self.params,
                {sp.Symbol(k): jnp.asarray(v, float) for k, v in coordinates.items()},
            )
        ]


def fit_pinn(
    model: Model,
    *,
    seed: int = 0,
    derivatives="taylor",
    points: int = 2048,
    boundary_points: int = 256,
    sampling: str = "sobol",
    resample_every: int = 100,
    weights: dict | None = None,
    adaptive: str | None = None,
    adapt_every: int = 100,
    steps: int = 5000,
    learning_rate: float = 1e-3,
    lbfgs_steps: int = 1000,
    phases: list[Phase] | None = None,
    dtype=None,
    progress: bool | None = None,
) -> PINNResult:
    """Train the fields of `model` on the mean squared residuals of its
    equations and conditions (see [`fit`][symml.fit])."""
    if sampling not in SAMPLERS:
        raise FitError(
            f"`sampling={sampling!r}` is not known; use one of {', '.join(SAMPLERS)}."
        )
    if adaptive is not None and adaptive not in ADAPTIVE:
        raise FitError(
            f"`adaptive={adaptive!r}` is not known; use one of {', '.join(ADAPTIVE)} "
            "or None."
        )
    terms = _terms(model, points, boundary_points)
    _check_domain(model, terms)
    weights0 = np.ones(len(terms))
    for key, w in (weights or {}).items():
        idx = _term_index(terms, model, key)
        if not (np.isfinite(w) and w >= 0):
            raise FitError(f"The weight of {terms[idx].name} must be finite and >= 0.")
        weights0[idx] = float(w)
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    trainable_params = list(model.trainable_parameters)
    compiler = Compiler(
        bound=[*model.variables, *trainable_params],
        constants=model.fixed_parameters,
        derivatives=_scheme(derivatives, model),
    )
    evaluators = [compiler(sp.sympify(term.expr).doit(deep=True)) for term in terms]
    requests = compiler.requests
    params = init_params(model, key=jr.PRNGKey(seed), dtype=dtype)
    rng = np.random.default_rng(seed)

    def draw() -> tuple:
        return tuple(
            jnp.asarray(
                sample_box(
                    [model.domain[v] for v in t.variables], t.n_points, sampling, rng
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

    static = _Static(draw(), jnp.asarray(weights0, dtype))

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

    def update(phase: str, step: int, params: Params, static: _Static) -> _Static:
        if (
            resample_every
            and step
            and step % resample_every == 0
            and sampling != "grid"
        ):
            static = eqx.tree_at(lambda s: s.points, static, draw())
        if adaptive == "grad_norm" and step % adapt_every == 0:
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

    if phases is None:
        phases = [adam(steps, learning_rate, clip=None), lbfgs(lbfgs_steps)]
    start = time.perf_counter()
    final_static = [static]

    def tracked_update(phase, step, params, static):
        final_static[0] = update(phase, step, params, static)
        return final_static[0]

    def result(params: Params, history) -> PINNResult:
        @jax.jit
        def evaluate(params, coordinates):
            out = []
            for ev in evaluators[:n_equations]:
                values = dict(coordinates)
                values.update({q: params.values[str(q)] for q in trainable_params})
                out.append(ev(Env(values, params.networks, requests)))
            return out

        w = np.asarray(final_static[0].weights)
        return PINNResult(
            model,
            params,
            history,
            {t.name: float(x) for t, x in zip(terms, w, strict=True)},
            time.perf_counter() - start,
            {"evaluate": evaluate},
        )

    def on_failure(error, last_good, history):
        error.result = result(last_good, history)
        return error

    params, history = run_phases(
        loss_fn,
        params,
        static,
        phases,
        progress=Progress(progress),
        on_failure=on_failure,
        update=tracked_update,
    )
    return result(params, history)


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
