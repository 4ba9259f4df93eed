r"""The deep BSDE method (Han, Jentzen & E, PNAS 2018) for a `ParabolicPDE`.

With $X$ the forward SDE $dX = \mu\,dt + \sigma\,dW$ from $x_0$, the solution
satisfies along its paths

$$u(t_{n+1}, X_{n+1}) = u(t_n, X_n) - f(t_n, X_n, u, \nabla u)\,\Delta t
  + \nabla u(t_n, X_n)^\top \sigma\,\Delta W_n .$$

The method makes $u(0, x_0)$ a trainable number and $\nabla u(t_n, \cdot)$ a
network per time step (or one network of $(t, x)$), rolls the recursion
forward along simulated paths and minimises $E|Y_N - g(X_N)|^2$; at the
minimum, $Y_0 = u(0, x_0)$.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .._errors import FitError, LoweringError
from ..dsl import ParabolicPDE
from ..lowering import Compiler, Env
from ..nets import make_network
from ..training import AbstractFitMethod, FitResult
from ..training._checkpoint import fingerprint
from ..training._loop import Phase, Problem
from ..training._method import (
    non_negative_number,
    one_of,
    positive_integer,
    positive_number,
    set_field,
)
from ._matrix import MATRIX_RULES


class CompiledParabolicPDE:
    """The terms of a [`ParabolicPDE`][symml.ParabolicPDE] as pure JAX
    functions of one point (vectors of shape `(d,)`), safe under `jit`,
    `vmap` and `grad`.

    **Attributes:** `pde`, `dim`, `n_noise`, `zero_drift`, `zero_nonlinearity`.
    """

    def __init__(self, pde: ParabolicPDE, rules=None):
        if not isinstance(pde, ParabolicPDE):
            raise LoweringError(
                f"Expected a `symml.ParabolicPDE`; got {type(pde).__name__}."
            )
        self.pde = pde
        self.dim = pde.dim
        self.n_noise = pde.n_noise
        self._grad = (
            pde.gradient
            if pde.gradient is not None
            else sp.MatrixSymbol("_unused_gradient", pde.dim, 1)
        )
        compiler = Compiler(
            bound=[pde.t, pde.x, pde.u, self._grad],
            constants=pde.parameters,
            rules={**MATRIX_RULES, **(rules or {})},
        )
        # Compiled without `doit()`: it would expand `DotProduct` into d terms.
        self._terminal = compiler(pde.terminal)
        self._nonlinearity = compiler(pde.nonlinearity)
        self._drift = compiler(pde.drift)
        self._diffusion = compiler(pde.diffusion)
        self._requests = compiler.requests
        self.zero_drift = pde.drift == sp.ZeroMatrix(pde.dim, 1)
        self.zero_nonlinearity = pde.nonlinearity == 0

    def _env(self, t, x, u=0.0, grad=None) -> Env:
        values = {self.pde.t: t, self.pde.x: x.reshape(-1, 1), self.pde.u: u}
        if grad is not None:
            values[self._grad] = grad.reshape(-1, 1)
        return Env(values, {}, self._requests)

    def terminal(self, x: Float[Array, " d"]) -> Scalar:
        """$g(x)$."""
        t_end = jnp.asarray(self.pde.horizon, x.dtype)
        return jnp.asarray(self._terminal(self._env(t_end, x)), x.dtype)

    def nonlinearity(self, t, x: Float[Array, " d"], u, grad: Float[Array, " d"]):
        """$f(t, x, u, \\nabla u)$."""
        return jnp.asarray(self._nonlinearity(self._env(t, x, u, grad)), x.dtype)

    def drift(self, t, x: Float[Array, " d"]) -> Float[Array, " d"]:
        """$\\mu(t, x)$."""
        if self.zero_drift:
            return jnp.zeros_like(x)
        return jnp.asarray(self._drift(self._env(t, x)), x.dtype).reshape(-1)

    def diffusion(self, t, x: Float[Array, " d"]) -> Float[Array, "d m"]:
        """$\\sigma(t, x)$ as a matrix."""
        s = jnp.asarray(self._diffusion(self._env(t, x)), x.dtype)
        if self.pde.scalar_diffusion:
            return s * jnp.eye(self.dim, dtype=x.dtype)
        return s

    def noise(self, t, x: Float[Array, " d"], dw: Float[Array, " m"]):
        """$\\sigma(t, x)\\,\\Delta W$, without forming $\\sigma$ when it is a
        scalar times the identity."""
        s = jnp.asarray(self._diffusion(self._env(t, x)), x.dtype)
        if self.pde.scalar_diffusion:
            return s * dw
        return s @ dw


@dataclass(frozen=True)
class DeepBSDE(AbstractFitMethod):
    """The deep BSDE method: its discretisation and networks. The default of
    [`fit`][symml.fit] for a [`ParabolicPDE`][symml.ParabolicPDE]:
    `symml.fit(pde, method=symml.DeepBSDE(...), steps=3000)`.

    Every training step draws fresh paths; the Adam phase's step size decays
    from `learning_rate` to a hundredth of it along a cosine, so that the
    estimate settles instead of jittering with each batch (the loss is
    stochastic, so there is no L-BFGS phase).

    **Arguments:**

    - `time_steps`: the number `N` of Euler steps on `[0, T]`.
    - `batch_size`: paths per training step (fresh ones every step).
    - `hidden`: hidden widths of the gradient network(s) (default
      `(d + 10, d + 10)`, as in Han, Jentzen & E).
    - `activation`: their activation name.
    - `networks`: `"shared"` (the default: one network of `(t, x)` for every
      step) or `"per_step"` (one network of `x` per step, as in the paper).
      The gradient is a small signal under the noise of `g(X_T)`: on the
      100-dimensional HJB equation, per-step networks fed 64 paths a step
      barely learn it in thousands of steps (the estimate then rests on
      `E g(X_T)`), while one shared network sees `N` times more samples per
      weight and learns it.
    - `u0`: the initial guess of `u(0, x0)`; by default the mean of `g(X_T)`
      over `pilot_paths` paths of the forward SDE (exact when `f = 0`).
    - `pilot_paths`: paths simulated once, before training, for `u0` and for
      the mean and spread of `X_t` at each step, which normalise the networks'
      inputs (in place of the paper's batch normalisation, which would make
      the loss depend on the batch).
    - `final_scale`: multiplies the initial last-layer weights.
    """

    name: ClassVar[str] = "DeepBSDE"
    default_steps: ClassVar[int] = 3000
    default_learning_rate: ClassVar[float] = 3e-3
    default_lbfgs_steps: ClassVar[int] = 0

    time_steps: int = 20
    batch_size: int = 256
    hidden: tuple[int, ...] | None = None
    activation: str = "relu"
    networks: str = "shared"
    u0: float | None = None
    pilot_paths: int = 4096
    final_scale: float = 1.0

    def __post_init__(self):
        for name in ("time_steps", "batch_size", "pilot_paths"):
            positive_integer(getattr(self, name), name, "DeepBSDE")
        one_of(self.networks, "networks", "DeepBSDE", ("shared", "per_step"))
        non_negative_number(self.final_scale, "final_scale", "DeepBSDE")
        if self.hidden is not None:
            set_field(
                self,
                "hidden",
                tuple(positive_integer(h, "hidden", "DeepBSDE") for h in self.hidden),
            )

    def phases(self, steps, learning_rate, lbfgs_steps) -> list[Phase]:
        if lbfgs_steps:
            raise FitError(
                "The deep BSDE loss draws new paths every step, so it has no "
                "L-BFGS phase; leave out `lbfgs_steps`."
            )
        steps = self.default_steps if steps is None else steps
        rate = self.default_learning_rate if learning_rate is None else learning_rate
        rate = positive_number(rate, "learning_rate", "DeepBSDE")
        schedule = optax.cosine_decay_schedule(rate, max(int(steps), 1), alpha=1e-2)
        return [Phase("adam", optax.adam(schedule), steps)]

    def prepare(self, target, data, *, seed: int, dtype, init) -> Problem:
        if not isinstance(target, ParabolicPDE):
            raise FitError(
                f"`DeepBSDE` solves a `symml.ParabolicPDE`; got "
                f"{type(target).__name__}."
            )
        if data is not None:
            raise FitError(
                "The deep BSDE method learns from simulated paths of the forward "
                "SDE, not from data; leave out `data`."
            )
        problem = self.problem(target, key=jr.PRNGKey(seed), dtype=dtype)
        trainable = init.params if init is not None else problem.trainable
        base = problem.static.key
        estimates: list[float] = []

        def between(phase, step, trainable, static):
            # Fresh paths for every step; u(0, x0) recorded as training goes.
            estimates.append(float(trainable.u0))
            return eqx.tree_at(lambda s: s.key, static, jr.fold_in(base, step))

        def result(params, history, static) -> "BSDEResult":
            return BSDEResult(
                model=target,
                params=params,
                history=history,
                wall_time=0.0,
                method=self,
                seed=seed,
                estimates=np.asarray(estimates),
                system=problem.system,
            )

        return Problem(
            loss=problem.loss_fn,
            trainable=trainable,
            static=problem.static,
            result=result,
            between=between,
            period=1,
            fingerprint=fingerprint(
                "DeepBSDE", target, self, seed, np.dtype(dtype).name
            ),
        )

    def problem(self, pde: ParabolicPDE, *, key: PRNGKeyArray, dtype=None):
        """The loss, its initial trainable values and its static data, for
        use outside [`fit`][symml.fit] (e.g. to time the loss).

        **Returns:** a [`BSDEProblem`][symml.sde.BSDEProblem].
        """
        system = CompiledParabolicPDE(pde)
        dtype = jnp.zeros(()).dtype if dtype is None else jnp.dtype(dtype)
        d, n = system.dim, self.time_steps
        times = jnp.linspace(0.0, pde.horizon, n + 1, dtype=dtype)
        x0 = jnp.asarray(pde.x0, dtype)
        k_pilot, k_nets, k_grad0, k_train = jr.split(key, 4)
        static = BSDEStatic(
            key=k_train,
            times=times,
            x0=x0,
            shift=jnp.zeros((n, d), dtype),
            scale=jnp.ones((n, d), dtype),
            out_scale=jnp.ones((), dtype),
        )
        xs, _, x_end = _paths(system, static, k_pilot, self.pilot_paths, dtype)
        if self.networks == "per_step":
            # Each step's network sees its own X_t standardised. (Step 0
            # starts from x0 itself, so its gradient is a plain vector.)
            shift = xs.mean(axis=1)
            scale = xs.std(axis=1)
        else:
            # One network for all times sees x on one common scale, so that
            # how ∇u changes with the size of x stays visible to it.
            pooled = xs[1:] if n > 1 else xs
            shift = jnp.broadcast_to(pooled.mean(axis=(0, 1)), (n, d))
            scale = jnp.broadcast_to(pooled.std(axis=(0, 1)), (n, d))
        scale = jnp.maximum(scale, 1e-6 * jnp.ones((), dtype))
        g_end = jax.vmap(system.terminal)(x_end)
        u0 = jnp.mean(g_end) if self.u0 is None else jnp.asarray(self.u0, dtype)
        # The networks' outputs are in units of the typical size of one entry
        # of ∇u: with f = 0, Var g(X_T) = E ∫ |σᵀ∇u|² dt, so that size is about
        # sd(g(X_T)) / (|σ| √(T m)). Gradients are often small (here 1e-2);
        # networks that start at that scale learn them to a few digits instead
        # of drowning them in the noise of O(1) updates.
        sigma = system.diffusion(static.times[0], static.x0)
        sigma_rms = jnp.sqrt(jnp.sum(sigma * sigma) / system.n_noise)
        out_scale = jnp.std(g_end) / (
            jnp.maximum(sigma_rms, 1e-12) * jnp.sqrt(pde.horizon * system.n_noise)
        )
        out_scale = jnp.where(out_scale > 0, out_scale, jnp.ones((), dtype))
        static = eqx.tree_at(
            lambda s: (s.shift, s.scale, s.out_scale),
            static,
            (shift, scale, out_scale.astype(dtype)),
        )
        hidden = (d + 10, d + 10) if self.hidden is None else tuple(self.hidden)
        if self.networks == "per_step":
            keys = jr.split(k_nets, max(n - 1, 1))
            nets = eqx.filter_vmap(
                lambda k: make_network(
                    d,
                    d,
                    hidden,
                    self.activation,
                    key=k,
                    dtype=dtype,
                    final_scale=self.final_scale,
                )
            )(keys)
        else:
            nets = make_network(
                d + 1,
                d,
                hidden,
                self.activation,
                key=k_nets,
                dtype=dtype,
                final_scale=self.final_scale,
            )
        grad0 = jr.uniform(k_grad0, (d,), dtype, -0.1, 0.1)
        trainable = BSDEParams(u0=jnp.asarray(u0, dtype), grad0=grad0, networks=nets)
        shared = self.networks == "shared"

        def loss_fn(params: BSDEParams, static: BSDEStatic):
            y_end, g_end = _rollout(system, params, static, self.batch_size, shared)
            loss = jnp.mean((y_end - g_end) ** 2)
            return loss, {"terminal": loss}

        return BSDEProblem(
            loss_fn=loss_fn, trainable=trainable, static=static, system=system
        )


class BSDEParams(eqx.Module):
    """What the deep BSDE method learns: `u0` = u(0, x0), `grad0` = ∇u(0, x0)
    and the gradient networks (stacked over time steps, or one of `(t, x)`);
    `grad0` and the networks' outputs are in units of `BSDEStatic.out_scale`."""

    u0: Float[Array, ""]
    grad0: Float[Array, " d"]
    networks: eqx.Module


class BSDEStatic(eqx.Module):
    """What the loss reads besides the trainable values: the key of the
    current batch of paths, the time grid, `x0`, the normalisation of the
    networks' inputs at each step (`shift`, `scale`) and the unit of their
    outputs (`out_scale`)."""

    key: PRNGKeyArray
    times: Float[Array, " N+1"]
    x0: Float[Array, " d"]
    shift: Float[Array, "N d"]
    scale: Float[Array, "N d"]
    out_scale: Float[Array, ""]


@dataclass(frozen=True)
class BSDEProblem:
    """A prepared deep BSDE fit: `loss_fn(trainable, static) -> (loss,
    {term: value})`, the initial `trainable` values, the `static` data (a new
    `static.key` gives a new batch of paths) and the lowered `system`."""

    loss_fn: Callable
    trainable: BSDEParams
    static: BSDEStatic
    system: CompiledParabolicPDE


def _paths(system, static: BSDEStatic, key, batch: int, dtype):
    """Euler–Maruyama paths of the forward SDE: `X_n` for n < N, shape
    `(N, batch, d)`, the increments `σ ΔW_n` (same shape) and `X_N`."""
    times = static.times
    n = times.shape[0] - 1
    dt = times[1] - times[0]
    dw = jnp.sqrt(dt) * jr.normal(key, (n, batch, system.n_noise), dtype)

    def step(x, inputs):
        t, dw_n = inputs
        noise = jax.vmap(system.noise, in_axes=(None, 0, 0))(t, x, dw_n)
        drift = (
            0.0
            if system.zero_drift
            else jax.vmap(system.drift, in_axes=(None, 0))(t, x) * dt
        )
        return x + drift + noise, (x, noise)

    x_start = jnp.broadcast_to(static.x0, (batch, static.x0.shape[0]))
    x_end, (xs, noise) = jax.lax.scan(step, x_start, (times[:-1], dw))
    return xs, noise, x_end


def _gradients(params: BSDEParams, static: BSDEStatic, xs, shared: bool):
    """∇u at each step and path, shape `(N, batch, d)`."""
    batch = xs.shape[1]
    first = jnp.broadcast_to(params.grad0, (1, batch, xs.shape[2]))
    if xs.shape[0] == 1:
        return static.out_scale * first
    z = (xs[1:] - static.shift[1:, None]) / static.scale[1:, None]
    if shared:
        t = jnp.broadcast_to(
            static.times[1:-1, None, None] / static.times[-1], (*z.shape[:2], 1)
        )
        rest = jax.vmap(jax.vmap(params.networks))(jnp.concatenate([t, z], -1))
    else:
        rest = eqx.filter_vmap(lambda net, zn: jax.vmap(net)(zn))(params.networks, z)
    return static.out_scale * jnp.concatenate([first, rest], axis=0)


def _rollout(system, params: BSDEParams, static: BSDEStatic, batch: int, shared: bool):
    """`(Y_N, g(X_N))` over a batch of paths drawn from `static.key`."""
    dtype = params.u0.dtype
    xs, noise, x_end = _paths(system, static, static.key, batch, dtype)
    grads = _gradients(params, static, xs, shared)
    dt = static.times[1] - static.times[0]

    def step(y, inputs):
        t, x, grad, noise_n = inputs
        y_next = y + jnp.sum(grad * noise_n, axis=-1)
        if not system.zero_nonlinearity:
            f = jax.vmap(system.nonlinearity, in_axes=(None, 0, 0, 0))(t, x, y, grad)
            y_next = y_next - f * dt
        return y_next, None

    y_start = jnp.broadcast_to(params.u0, (batch,))
    y_end, _ = jax.lax.scan(step, y_start, (static.times[:-1], xs, grads, noise))
    return y_end, jax.vmap(system.terminal)(x_end)


@dataclass(frozen=True, eq=False)
class BSDEResult(FitResult):
    """The result of a deep BSDE fit: see [`FitResult`][symml.FitResult] for
    the common attributes (`model` is the `ParabolicPDE`, `params` the
    trained [`BSDEParams`][symml.sde.BSDEParams], `history["adam"]` the loss
    per step).

    **Attributes:**

    - `estimate`: the learned `u(0, x0)`.
    - `estimates`: `u(0, x0)` before each training step of this run.
    - `system`: the lowered [`CompiledParabolicPDE`][symml.sde.CompiledParabolicPDE].
    """

    estimates: np.ndarray = field(default=None, repr=False)
    system: CompiledParabolicPDE = field(default=None, repr=False)

    @property
    def estimate(self) -> float:
        return float(self.params.u0)

    def unknown_samples(self, n: int = 200) -> dict:
        """`{}`: the PDE has no unknown terms (the solution itself is learned)."""
        return {}
