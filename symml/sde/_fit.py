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
through the log-determinant. (With general noise, $\sigma\sigma^\top$ must be
invertible: at least as many Brownian motions as states, acting on all of
them.)

Moment matching (fitting ensemble means and variances over time) was the
alternative: it needs an SDE or moment solve inside every step and constrains a
handful of statistics per time, which many drifts share (the drift is not
identifiable as a function from them), so it is the weaker choice here.

Its limits: paths must be observed densely (`Δt` small against the drift's time
scale; the example uses 0.01) and measurement noise must be small against
$\sigma\sqrt{\Delta t}$ (it adds variance to every increment and correlates
neighbouring ones).
"""

from dataclasses import dataclass, field
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import DataError, FitError
from ..dsl import SDE, Data
from ..lowering import Params
from ..training import AbstractFitMethod, FitResult
from ..training._checkpoint import fingerprint
from ..training._loop import Phase, Problem, adam, lbfgs
from ..training._method import non_negative_number, positive_integer, set_field
from ._lower import CompiledSDE


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
        for name, values in d.values.items():
            if name not in state_names:
                raise DataError(
                    f"The data observe `{name}`, which is not a state of the model; "
                    f"its states are {', '.join(state_names)}."
                )
            if values.shape[1:] != ():
                raise DataError(
                    f"Each observation of `{name}` in path {i} has shape "
                    f"{values.shape[1:]}; the states of an SDE are scalars."
                )
        missing = [n for n in state_names if n not in d.values]
        if missing:
            raise DataError(
                f"Path {i} does not observe {missing}; the likelihood of increments "
                "needs every state observed at every time."
            )
        out.append((d.t, np.stack([d.values[n] for n in state_names], axis=-1)))
    return out


def _nll(system: CompiledSDE, params: Params, t, x, dx, dt):
    """The negative log-likelihood of one increment (without the constant)."""
    mu = system(t, x, params)
    r = dx - mu * dt
    if system.noise == "diagonal":
        s2 = jnp.diagonal(system.diffusion(t, x, params)) ** 2 * dt
        return 0.5 * jnp.sum(r * r / s2 + jnp.log(s2))
    sigma = system.diffusion(t, x, params)
    chol = jnp.linalg.cholesky(sigma @ sigma.T * dt)
    z = jax.scipy.linalg.solve_triangular(chol, r, lower=True)
    return 0.5 * jnp.sum(z * z) + jnp.sum(jnp.log(jnp.diagonal(chol)))


@dataclass(frozen=True)
class EulerLikelihood(AbstractFitMethod):
    """Fit an [`SDE`][symml.SDE] to observed paths by the Euler likelihood of
    their increments (see `symml.sde._fit` for why this loss): the default of
    [`fit`][symml.fit] for an `SDE` with data.

    **Arguments:**

    - `batch_size`: increments per Adam step, drawn afresh every step; `None`
      (the default) uses all of them, which makes the loss deterministic so
      that an L-BFGS phase can follow.
    - `final_scale`: multiplies the initial last-layer weights of the unknown
      terms' networks, so that they start near zero.
    """

    name: ClassVar[str] = "EulerLikelihood"
    default_steps: ClassVar[int] = 2000
    default_learning_rate: ClassVar[float] = 3e-3
    default_lbfgs_steps: ClassVar[int] = 200
    batch_size: int | None = None
    final_scale: float = 0.1

    def __post_init__(self):
        owner = "EulerLikelihood"
        set_field(
            self,
            "batch_size",
            positive_integer(self.batch_size, "batch_size", owner, allow_none=True),
        )
        set_field(
            self,
            "final_scale",
            non_negative_number(self.final_scale, "final_scale", owner),
        )

    def phases(self, steps, learning_rate, lbfgs_steps) -> list[Phase]:
        if self.batch_size is None:
            return super().phases(steps, learning_rate, lbfgs_steps)
        if lbfgs_steps:
            raise FitError(
                "`lbfgs_steps` needs a deterministic loss; with minibatches "
                "(`EulerLikelihood(batch_size=...)`) fit with Adam only."
            )
        return [
            adam(
                self.default_steps if steps is None else steps,
                self.default_learning_rate if learning_rate is None else learning_rate,
                clip=self.clip,
            ),
            lbfgs(0),
        ]

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        if isinstance(target, CompiledSDE):
            system, model = target, target.model
        elif isinstance(target, SDE):
            system, model = CompiledSDE(target), target
        else:
            raise FitError(
                f"`EulerLikelihood` fits a `symml.SDE`; got {type(target).__name__}."
            )
        paths = _as_paths(data, model.state_names)
        ts = np.concatenate([t[:-1] for t, _ in paths])
        xs = np.concatenate([x[:-1] for _, x in paths])
        dxs = np.concatenate([np.diff(x, axis=0) for _, x in paths])
        dts = np.concatenate([np.diff(t) for t, _ in paths])
        k_net, k_data = jr.split(jr.PRNGKey(seed))
        static = Increments(
            t=jnp.asarray(ts, dtype),
            x=jnp.asarray(xs, dtype),
            dx=jnp.asarray(dxs, dtype),
            dt=jnp.asarray(dts, dtype),
            key=k_data,
        )
        params = (
            init.params
            if init is not None
            else system.init_params(
                key=k_net, dtype=dtype, final_scale=self.final_scale
            )
        )
        batch = self.batch_size
        if batch is not None and batch >= ts.size:
            batch = None

        def loss(params: Params, static: Increments):
            t, x, dx, dt = static.t, static.x, static.dx, static.dt
            if batch is not None:
                idx = jr.randint(static.key, (batch,), 0, t.shape[0])
                t, x, dx, dt = t[idx], x[idx], dx[idx], dt[idx]
            nll = jax.vmap(_nll, in_axes=(None, None, 0, 0, 0, 0))
            value = jnp.mean(nll(system, params, t, x, dx, dt))
            return value, {"likelihood": value}

        def between(phase, step, trainable, static):
            # A new minibatch for every step.
            return eqx.tree_at(lambda s: s.key, static, jr.fold_in(k_data, step))

        def result(params, history, static) -> "SDEFitResult":
            return SDEFitResult(
                model=model,
                params=params,
                history=history,
                wall_time=0.0,
                method=self,
                seed=seed,
                system=system,
                states=np.asarray(static.x),
                times=np.asarray(static.t),
            )

        return Problem(
            loss=loss,
            trainable=params,
            static=static,
            result=result,
            between=between if batch is not None else None,
            period=1 if batch is not None else None,
            fingerprint=fingerprint(
                "EulerLikelihood",
                model,
                self,
                seed,
                np.dtype(dtype).name,
                xs,
                dxs,
                dts,
            ),
        )


@dataclass(frozen=True, eq=False)
class SDEFitResult(FitResult):
    """A fitted SDE: see [`FitResult`][symml.FitResult] for the common
    attributes (`history` is `{"adam": ..., "lbfgs": ...}` of the negative
    log-likelihood per increment).

    **Attributes:** `system` (the [`CompiledSDE`][symml.CompiledSDE]),
    `states` and `times` (the observed states the increments start from).
    """

    system: CompiledSDE = None
    states: np.ndarray = field(default=None, repr=False)
    times: np.ndarray = field(default=None, repr=False)

    def unknown_samples(
        self, n: int = 2000, *, seed: int = 0
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """`{name: (X, Y)}`: each unknown's network inputs `X` and outputs `Y` at
        `n` observed states drawn without replacement (all if fewer): the
        region the data cover."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
            raise FitError(f"`n` must be an integer >= 2; got {n!r}.")
        rng = np.random.default_rng(seed)
        k = self.times.size
        idx = np.sort(rng.choice(k, size=min(int(n), k), replace=False))
        values = jax.jit(jax.vmap(self.system.unknown_values, in_axes=(0, 0, None)))(
            jnp.asarray(self.times[idx]), jnp.asarray(self.states[idx]), self.params
        )
        return {
            name: (
                np.asarray(a).reshape(-1, a.shape[-1]),
                np.asarray(b).reshape(-1, b.shape[-1]),
            )
            for name, (a, b) in values.items()
        }
