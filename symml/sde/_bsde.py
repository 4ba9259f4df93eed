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

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .._errors import LoweringError, SDEError
from ..dsl._sde import ParabolicPDE
from ..lowering import Compiler, Env
from ..nets import make_network
from ._matrix import MATRIX_RULES
from ._train import train


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
class DeepBSDE:
    """The deep BSDE method: its discretisation and networks.

    **Arguments:**

    - `time_steps`: the number `N` of Euler steps on `[0, T]`.
    - `batch_size`: paths per training step (fresh ones every step).
    - `hidden`: hidden widths of the gradient networks (default
      `(d + 10, d + 10)`, as in Han, Jentzen & E).
    - `activation`: their activation name.
    - `networks`: `"per_step"` (one network of `x` per time step, as in the
      paper) or `"shared"` (one network of `(t, x)`: fewer weights, for large
      `d`).
    - `u0`: the initial guess of `u(0, x0)`; by default the mean of `g(X_T)`
      over `pilot_paths` paths of the forward SDE (exact when `f = 0`).
    - `pilot_paths`: paths simulated once, before training, for `u0` and for
      the mean and spread of `X_t` at each step, which normalise the networks'
      inputs (in place of the paper's batch normalisation, which would make
      the loss depend on the batch).
    - `dtype`: of the networks and paths (default: JAX's default float).
    """

    time_steps: int = 20
    batch_size: int = 64
    hidden: tuple[int, ...] | None = None
    activation: str = "relu"
    networks: str = "per_step"
    u0: float | None = None
    pilot_paths: int = 4096
    final_scale: float = 1.0
    dtype: object = None

    def __post_init__(self):
        for name in ("time_steps", "batch_size", "pilot_paths"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SDEError(f"`{name}` is {value!r}; expected a positive integer.")
        if self.networks not in ("per_step", "shared"):
            raise SDEError(
                f"`networks` is {self.networks!r}; expected 'per_step' or 'shared'."
            )

    def prepare(self, pde: ParabolicPDE, *, key: PRNGKeyArray) -> "BSDEProblem":
        """The loss, its initial trainable values and its static data.

        **Returns:** a [`BSDEProblem`][symml.sde.BSDEProblem].
        """
        system = CompiledParabolicPDE(pde)
        dtype = jnp.zeros(()).dtype if self.dtype is None else jnp.dtype(self.dtype)
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


@dataclass(frozen=True)
class BSDEResult:
    """The result of a deep BSDE fit.

    **Attributes:**

    - `estimate`: the learned `u(0, x0)`.
    - `history`: `{"loss": ..., "estimate": ...}` per training step.
    - `params`: the trained [`BSDEParams`][symml.sde.BSDEParams].
    - `pde`, `method`, `wall_time` (seconds, compilation included).
    """

    estimate: float
    history: dict[str, np.ndarray]
    params: BSDEParams = field(repr=False)
    pde: ParabolicPDE = field(repr=False)
    method: DeepBSDE
    wall_time: float

    @property
    def final_loss(self) -> float:
        return float(self.history["loss"][-1])


def fit_bsde(
    pde: ParabolicPDE,
    method: DeepBSDE | None = None,
    *,
    steps: int = 4000,
    learning_rate=None,
    seed: int = 0,
    chunk: int = 100,
    callback: Callable | None = None,
) -> BSDEResult:
    """Solve a [`ParabolicPDE`][symml.ParabolicPDE] for `u(0, x0)` by the
    deep BSDE method.

    **Arguments:**

    - `pde`: the PDE.
    - `method`: a [`DeepBSDE`][symml.DeepBSDE] (default: `DeepBSDE()`).
    - `steps`: Adam steps, each on a fresh batch of paths.
    - `learning_rate`: a number or an optax schedule (default: cosine decay
      from 1e-2 to 1e-4 over `steps`).
    - `seed`: seeds the networks and the paths; the same seed gives the same
      result on the same machine.
    - `chunk`: steps run in one compiled loop between checks on the host.
    - `callback`: called as `callback(step, loss, estimate)` after each chunk.

    **Returns:** a [`BSDEResult`][symml.BSDEResult].

    **Raises:** [`FitError`][symml.FitError] if the loss goes non-finite,
    naming the step.
    """
    start = time.perf_counter()
    method = DeepBSDE() if method is None else method
    if not isinstance(method, DeepBSDE):
        raise SDEError(f"`method` is {method!r}; expected a `symml.DeepBSDE`.")
    if not isinstance(steps, int) or steps < 1:
        raise SDEError(f"`steps` is {steps!r}; expected a positive integer.")
    chunk = max(1, min(int(chunk), steps))
    problem = method.prepare(pde, key=jr.PRNGKey(seed))
    params, history = train(
        problem.loss_fn,
        problem.trainable,
        problem.static,
        steps=steps,
        learning_rate=learning_rate,
        chunk=chunk,
        watch=lambda p: p.u0,
        callback=callback,
        what="deep BSDE loss",
    )
    history = {"loss": history["loss"], "estimate": history["watch"]}
    return BSDEResult(
        estimate=float(params.u0),
        history=history,
        params=params,
        pde=pde,
        method=method,
        wall_time=time.perf_counter() - start,
    )
