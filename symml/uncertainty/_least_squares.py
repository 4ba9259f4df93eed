"""The weighted least-squares problem behind a fit of an ODE system: its
residuals, their Jacobian by forward mode, and Levenberg–Marquardt refits that
`vmap` over resampled data."""

import dataclasses

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._diffrax import SolveOptions, diffeqsolve
from .._errors import UncertaintyError
from ..lowering import AbstractSystem, Params
from ..training import UDEResult


class Predictor(eqx.Module):
    """The model's values at every observation as a pure function of `θ`:
    an equinox module whose arrays are leaves and whose layout is static, so
    compiled functions of it are reused for every error bar of one fit."""

    system: AbstractSystem = eqx.field(static=True)
    options: SolveOptions = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)  # trainable, in θ's order
    free: tuple = eqx.field(static=True)  # per trajectory: trained entries
    blocks: tuple = eqx.field(static=True)  # per trajectory: observed indices
    params: Params
    y0s: tuple
    ts: tuple

    def __call__(self, theta: Float[Array, " k"]) -> tuple[Array, Bool[Array, ""]]:
        dtype = self.y0s[0].dtype
        values = dict(self.params.values)
        for i, name in enumerate(self.names):
            values[name] = theta[i].astype(dtype)
        params = Params(values, self.params.networks)
        out, ok = [], jnp.asarray(True)
        offset = len(self.names)
        for y0, free, blocks, ts in zip(
            self.y0s, self.free, self.blocks, self.ts, strict=True
        ):
            if free:
                y0 = y0.at[np.asarray(free)].set(
                    theta[offset : offset + len(free)].astype(dtype)
                )
                offset += len(free)
            solution = diffeqsolve(self.system, self.options, y0, params, ts=ts)
            ok = ok & (solution.result == dfx.RESULTS.successful)
            for index in blocks:
                out.append(solution.ys[:, np.asarray(index)].T.ravel())
        pred = jnp.concatenate(out)
        return pred, ok & jnp.all(jnp.isfinite(pred))


def _scale(values: np.ndarray) -> float:
    # The normalisation of a state's squared error in `SolveInLoop`'s loss (the
    # variance of its observations, floored); a test checks that the objective
    # here equals the fit's loss.
    return max(float(np.var(values)), 1e-3 * float(np.mean(values**2)), 1e-12)


class LeastSquares:
    """The loss of a fit by [`SolveInLoop`][symml.SolveInLoop] as weighted
    least squares in `θ` = (the trainable parameters, the trained initial
    entries of each trajectory): `loss(θ) = Σ_i w_i (ŷ_i(θ) − y_i)²`.

    **Attributes:**

    - `symbols`: the trainable parameters, the first entries of `θ`.
    - `labels`: a name per entry of `θ` (`c_U_0_0`, `x(0)`, `rho[3](0)`, and
      `x(0)#1` for the second trajectory).
    - `theta`: `θ` at the fit's parameters.
    - `y`: the observations, flat, shape `(m,)`.
    - `weights`: `w`, shape `(m,)`.
    - `state`: per observation, the index of its state in `state_names`.
    - `row`: per observation, the index of its (trajectory, time) row.
    - `state_names`: the states.
    - `trajectories`: per trajectory, `{state: slice of θ}` of its trained
      initial states.
    """

    def __init__(self, result):
        if not isinstance(result, UDEResult):
            raise UncertaintyError(
                f"Error bars of a fit need a fit that solves an ODE system (a "
                f"`UDEResult` from `symml.fit` of an ODE model or a discretised "
                f"PDE); got {type(result).__name__}."
            )
        model = result.model
        if model.unknowns:
            names = ", ".join(f"`{u.name}`" for u in model.unknowns)
            raise UncertaintyError(
                f"The fitted model still has the network(s) {names}: the error bars "
                "of thousands of weights that the data do not determine are not "
                "defined. Discover the terms and refit their coefficients first: "
                "`found = symml.discover(result)`, `refit = symml.fit("
                "found.trainable_model(), data)`, then the error bars of `refit`."
            )
        system = result.system
        self.system = system
        self.result = result
        self.state_names = system.state_names
        self.symbols = tuple(model.trainable_parameters)
        fit_initial = bool(getattr(result.method, "fit_initial", True))
        params = result.params
        theta = [float(params.values[str(p)]) for p in self.symbols]
        labels = [str(p) for p in self.symbols]
        frees, spans = [], []
        ys, weights, states, rows = [], [], [], []
        scale = {}
        for name in self.state_names:
            observed = [d.values[name].ravel() for d in result.data if name in d.values]
            if observed:
                scale[name] = _scale(np.concatenate(observed))
        counts = {name: 0 for name in scale}
        for d in result.data:
            for name, v in d.values.items():
                counts[name] += v.size
        row = 0
        for j, (d, start) in enumerate(
            zip(result.data, result.initial_states, strict=True)
        ):
            free, span = [], {}
            for i, name in enumerate(self.state_names):
                index = system.state_indices(name)
                if name in d.values:
                    values = d.values[name].reshape(d.t.size, -1)
                    ys.append(values)
                    # SolveInLoop: the mean over observed states of each
                    # state's mean squared error over its variance.
                    w = 1.0 / (counts[name] * scale[name] * len(scale))
                    weights.append(np.full(values.shape, w))
                    states.append(np.full(values.shape, i))
                    rows.append(
                        np.broadcast_to(
                            row + np.arange(d.t.size)[:, None], values.shape
                        )
                    )
                if name not in d.values or fit_initial:
                    free.append(index)
                    span[name] = slice(len(theta), len(theta) + index.size)
                    theta.extend(np.asarray(start)[index].tolist())
                    shape = system.state_shape(name)
                    suffix = "" if j == 0 else f"#{j}"
                    t0 = f"{float(d.t[0]):g}"
                    labels.extend(
                        [f"{name}({t0}){suffix}"]
                        if not shape
                        else [f"{name}[{k}]({t0}){suffix}" for k in range(index.size)]
                    )
            row += d.t.size
            frees.append(tuple(int(i) for f in free for i in f))
            spans.append(span)
        # Observations are laid out per trajectory, time-major within each
        # state block; the predictor produces them in the same order.
        blocks = tuple(
            tuple(
                tuple(int(i) for i in system.state_indices(name))
                for name in self.state_names
                if name in d.values
            )
            for d in result.data
        )
        dtype = result.initial_states[0].dtype
        self.dtype = dtype
        self.predictor = Predictor(
            system=system,
            options=dataclasses.replace(result.options, adjoint=dfx.ForwardMode()),
            names=tuple(str(p) for p in self.symbols),
            free=tuple(frees),
            blocks=blocks,
            params=params,
            y0s=tuple(jnp.asarray(s, dtype) for s in result.initial_states),
            ts=tuple(jnp.asarray(d.t, dtype) for d in result.data),
        )
        self.y = np.concatenate([np.ravel(v.T) for v in ys]).astype(float)
        self.weights = np.concatenate([np.ravel(w.T) for w in weights])
        self.state = np.concatenate([np.ravel(s.T) for s in states]).astype(int)
        self.row = np.concatenate([np.ravel(r.T) for r in rows]).astype(int)
        self.theta = np.asarray(theta)
        self.labels = tuple(labels)
        self.trajectories = tuple(spans)

    @property
    def k(self) -> int:
        return self.theta.size

    def predict(self, theta: Float[Array, " k"]) -> tuple[Array, Bool[Array, ""]]:
        """The model's values at every observation, flat, and whether every
        solve succeeded."""
        return self.predictor(theta)


def value_and_jacobian(fn, theta):
    """`fn(θ) -> (values, aux)` and its Jacobian `(m, k)` by one JVP per
    entry of `θ`, batched."""
    eye = jnp.eye(theta.size, dtype=theta.dtype)

    def push(v):
        return jax.jvp(fn, (theta,), (v,), has_aux=True)

    value, tangents, aux = jax.vmap(push, out_axes=(None, 0, None))(eye)
    return value, tangents.T, aux


def levenberg_marquardt(predict: Predictor, theta, y, weights, steps: int):
    """`steps` Levenberg–Marquardt iterations of `Σ w (ŷ(θ) − y)²` from `θ`,
    pure and `vmap`-able over `(θ, y, weights)`. Returns `(θ, loss, ok)`."""

    def loss(theta):
        pred, ok = predict(theta)
        value = jnp.sum(weights * (pred - y) ** 2)
        return jnp.where(ok, value, jnp.inf)

    def step(carry, _):
        theta, damping, current = carry
        pred, jac, _ = value_and_jacobian(predict, theta)
        r = pred - y
        a = jac.T @ (weights[:, None] * jac)
        g = jac.T @ (weights * r)
        # Marquardt's scaling: damping relative to each parameter's curvature,
        # floored so that a parameter the data barely see still moves.
        d = jnp.diag(a)
        d = jnp.maximum(d, 1e-12 * jnp.max(d))
        delta = -jnp.linalg.solve(a + damping * jnp.diag(d), g)
        trial = loss(theta + delta)
        better = trial < current
        return (
            jnp.where(better, theta + delta, theta),
            jnp.where(better, damping / 3, damping * 4),
            jnp.where(better, trial, current),
        ), None

    start = (theta, jnp.asarray(1e-3, theta.dtype), loss(theta))
    (theta, _, final), _ = jax.lax.scan(step, start, None, length=steps)
    return theta, final, jnp.isfinite(final)


@eqx.filter_jit
def jacobian_at(predict: Predictor, theta):
    """`(values, Jacobian, ok)` at `θ`, compiled once per predictor layout."""
    return value_and_jacobian(predict, theta)


@eqx.filter_jit
def refine(predict: Predictor, theta, y, weights, steps: int):
    """Levenberg–Marquardt from `θ` on one data set."""
    return levenberg_marquardt(predict, theta, y, weights, steps)


@eqx.filter_jit
def refit_batch(predict: Predictor, theta, ys, weights, steps: int):
    """Levenberg–Marquardt from `θ` on each row of `ys` (with its weights),
    under `vmap`: `(θ per row, ok per row)`."""

    def one(y, w):
        out, _, ok = levenberg_marquardt(predict, theta, y, w, steps)
        return out, ok

    return jax.vmap(one)(ys, weights)
