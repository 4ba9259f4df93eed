r"""Fitting a universal SDE to observed paths: the Euler likelihood of increments.

**Why this loss.** Between two observations $t_k < t_{k+1}$ of a path,
Euler–Maruyama says the increment is Gaussian,

$$X_{k+1} - X_k \sim \mathcal N\big(\mu(t_k, X_k)\,\Delta t_k,\;
  \sigma\sigma^\top(t_k, X_k)\,\Delta t_k\big),$$

so the negative log-likelihood of all observed increments,

$$\frac1K \sum_k \tfrac12 r_k^\top (\sigma\sigma^\top \Delta t_k)^{-1} r_k
  + \tfrac12 \ln\det(\sigma\sigma^\top \Delta t_k),
  \qquad r_k = X_{k+1} - X_k - \mu(t_k, X_k)\,\Delta t_k,$$

is the loss. It is the maximum-likelihood estimator of the Euler-discretised
model (consistent as $\Delta t \to 0$, with an $O(\Delta t)$ bias otherwise);
it needs no SDE solve inside the loss, so its cost is one network evaluation
per increment, and every observed state is a sample of the drift, so the
network learns the unknown term over the whole region the paths visit, which
is what discovery needs. A known diffusion weights each increment by its noise
level; an unknown term or trainable parameter in the diffusion is learned
through the log-determinant.

Moment matching (fitting ensemble means and variances over time) was the
alternative: it needs an SDE or moment solve inside every step and constrains a
handful of statistics per time, which many drifts share (the drift is not
identifiable as a function from them), so it is the weaker choice here.

Its limits: paths must be observed densely (`Δt` small against the drift's time
scale; the example uses 0.01) and measurement noise must be small against
$\sigma\sqrt{\Delta t}$ (it adds variance to every increment and correlates
neighbouring ones).
"""

import time
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DataError, SDEError
from ..dsl import Data
from ..dsl._sde import SDE
from ..lowering import Params, init_params
from ._lower import CompiledSDE
from ._train import train


class Increments(eqx.Module):
    """Observed increments, flattened over paths: the state `x` at `t` and the
    increment `dx` over the step `dt` that follows. `key` draws minibatches."""

    t: Float[Array, " K"]
    x: Float[Array, "K n"]
    dx: Float[Array, "K n"]
    dt: Float[Array, " K"]
    key: PRNGKeyArray


def _as_paths(data, state_names) -> list[tuple[np.ndarray, np.ndarray]]:
    """`data` as a list of `(t (T,), x (T, n))`, one per path."""
    if isinstance(data, Data):
        data = [data]
    if not isinstance(data, list | tuple) or not data:
        raise DataError(
            "`data` must be a `symml.Data` or a list of them, one per observed path; "
            f"got {type(data).__name__}."
        )
    out = []
    for i, d in enumerate(data):
        if not isinstance(d, Data):
            raise DataError(
                f"Entry {i} of `data` is {type(d).__name__}; expected a `symml.Data` "
                "(one per path)."
            )
        d.check_against(state_names, {n: () for n in state_names})
        missing = [n for n in state_names if n not in d.values]
        if missing:
            raise DataError(
                f"Path {i} does not observe {missing}; the likelihood of increments "
                "needs every state observed at every time."
            )
        out.append((d.t, np.stack([d.values[n] for n in state_names], axis=-1)))
    return out


@dataclass(frozen=True)
class EulerLikelihood:
    """Fit an [`SDE`][symml.SDE] by the Euler likelihood of observed
    increments (see the module's docstring for why).

    **Arguments:**

    - `batch_size`: increments per training step, drawn afresh each step
      (`None`: all of them every step).
    - `final_scale`: multiplies the initial last-layer weights of the unknown
      terms' networks, so that they start near zero.
    """

    batch_size: int | None = 8192
    final_scale: float = 0.1

    def prepare(self, model: SDE, data, *, key: PRNGKeyArray, dtype=None):
        """The loss, its initial trainable values and its static data.

        **Returns:** `(loss_fn, params, increments, system)`.
        """
        if not isinstance(model, SDE):
            raise SDEError(f"`fit_sde` fits a `symml.SDE`; got {type(model).__name__}.")
        system = CompiledSDE(model)
        dtype = jnp.zeros(()).dtype if dtype is None else jnp.dtype(dtype)
        paths = _as_paths(data, model.state_names)
        ts = np.concatenate([t[:-1] for t, _ in paths])
        xs = np.concatenate([x[:-1] for _, x in paths])
        dxs = np.concatenate([np.diff(x, axis=0) for _, x in paths])
        dts = np.concatenate([np.diff(t) for t, _ in paths])
        k_net, k_data = jr.split(key)
        static = Increments(
            t=jnp.asarray(ts, dtype),
            x=jnp.asarray(xs, dtype),
            dx=jnp.asarray(dxs, dtype),
            dt=jnp.asarray(dts, dtype),
            key=k_data,
        )
        params = init_params(
            model, key=k_net, dtype=dtype, final_scale=self.final_scale
        )
        batch = self.batch_size
        if batch is not None and batch >= ts.size:
            batch = None
        diagonal = model.noise == "diagonal"

        def nll(params: Params, t, x, dx, dt):
            mu = system(t, x, params)
            r = dx - mu * dt
            if diagonal:
                s2 = jnp.diagonal(system.diffusion(t, x, params)) ** 2 * dt
                return 0.5 * jnp.sum(r * r / s2 + jnp.log(s2))
            sigma = system.diffusion(t, x, params)
            cov = sigma @ sigma.T * dt
            chol = jnp.linalg.cholesky(cov)
            z = jax.scipy.linalg.solve_triangular(chol, r, lower=True)
            return 0.5 * jnp.sum(z * z) + jnp.sum(jnp.log(jnp.diagonal(chol)))

        def loss_fn(params: Params, static: Increments):
            if batch is None:
                t, x, dx, dt = static.t, static.x, static.dx, static.dt
            else:
                idx = jr.randint(static.key, (batch,), 0, static.t.shape[0])
                t, x, dx, dt = (
                    static.t[idx],
                    static.x[idx],
                    static.dx[idx],
                    static.dt[idx],
                )
            loss = jnp.mean(
                jax.vmap(nll, in_axes=(None, 0, 0, 0, 0))(params, t, x, dx, dt)
            )
            return loss, {"likelihood": loss}

        return loss_fn, params, static, system


@dataclass(frozen=True)
class SDEFitResult:
    """A fitted SDE.

    **Attributes:**

    - `model`: the fitted [`SDE`][symml.SDE].
    - `system`: its [`CompiledSDE`][symml.CompiledSDE].
    - `params`: the trained [`Params`][symml.Params].
    - `history`: `{"likelihood": loss per step}`.
    - `wall_time`: seconds spent fitting (compilation included).
    """

    model: SDE
    system: CompiledSDE = field(repr=False)
    params: Params = field(repr=False)
    history: dict[str, np.ndarray]
    wall_time: float
    _states: np.ndarray = field(repr=False)
    _times: np.ndarray = field(repr=False)

    @property
    def final_loss(self) -> float:
        return float(self.history["likelihood"][-1])

    def parameter_values(self) -> dict[sp.Symbol, float]:
        """`{symbol: trained value}` of the SDE's trainable parameters."""
        return {
            p: float(self.params.values[str(p)])
            for p in self.model.trainable_parameters
        }

    def unknown_samples(
        self, n: int = 2000, *, seed: int = 0
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """`{name: (X, Y)}`: each unknown's network inputs `X` and outputs `Y` at
        `n` observed states drawn without replacement (all if fewer), the
        region the data cover."""
        rng = np.random.default_rng(seed)
        k = self._times.size
        idx = np.sort(rng.choice(k, size=min(n, k), replace=False))
        t = jnp.asarray(self._times[idx])
        x = jnp.asarray(self._states[idx])
        values = jax.jit(jax.vmap(self.system.unknown_values, in_axes=(0, 0, None)))(
            t, x, self.params
        )
        return {name: (np.asarray(a), np.asarray(b)) for name, (a, b) in values.items()}


def fit_sde(
    model: SDE,
    data,
    method: EulerLikelihood | None = None,
    *,
    steps: int = 2000,
    learning_rate=None,
    seed: int = 0,
    chunk: int = 100,
    dtype=None,
    callback=None,
) -> SDEFitResult:
    """Fit the unknown terms and trainable parameters of an
    [`SDE`][symml.SDE] to observed paths.

    **Arguments:**

    - `model`: the SDE.
    - `data`: a list of [`Data`][symml.Data], one per path, every state
      observed at every time (times may differ between paths).
    - `method`: an [`EulerLikelihood`][symml.EulerLikelihood] (the default).
    - `steps`: Adam steps; `learning_rate` a number or optax schedule
      (default: cosine decay from 1e-2 to 1e-4).
    - `seed`: seeds the networks and the minibatches.
    - `chunk`: steps per compiled call; `callback(step, loss, _)` after each.

    **Returns:** an [`SDEFitResult`][symml.SDEFitResult], which
    [`discover`][symml.discover] takes as it is.
    """
    start = time.perf_counter()
    method = EulerLikelihood() if method is None else method
    if not isinstance(method, EulerLikelihood):
        raise SDEError(f"`method` is {method!r}; expected a `symml.EulerLikelihood`.")
    if not isinstance(steps, int) or steps < 1:
        raise SDEError(f"`steps` is {steps!r}; expected a positive integer.")
    loss_fn, params, static, system = method.prepare(
        model, data, key=jr.PRNGKey(seed), dtype=dtype
    )
    params, history = train(
        loss_fn,
        params,
        static,
        steps=steps,
        learning_rate=learning_rate,
        chunk=chunk,
        callback=callback,
        what="likelihood of the increments",
    )
    return SDEFitResult(
        model=model,
        system=system,
        params=params,
        history={"likelihood": history["loss"]},
        wall_time=time.perf_counter() - start,
        _states=np.asarray(static.x),
        _times=np.asarray(static.t),
    )
