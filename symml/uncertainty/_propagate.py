"""`propagate`: the mean and covariance of a trajectory or an expression
whose parameters and initial states are uncertain."""

import abc
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import sympy as sp
from jaxtyping import Array, Float

from .._errors import SparsityError, UncertaintyError, UncertaintyWarning
from ..lowering import AbstractSystem, Params
from ..sparsity import color_columns, compressed_jacobian, jacobian_sparsity
from ._inputs import check_positive_int
from ._targets import ExpressionTarget, FunctionTarget, SystemTarget, Target

# Above this many outputs per time, Monte Carlo keeps only the variances (a
# full covariance per time would take T n² floats).
_MAX_COVARIANCE = 512


class Propagation:
    """What [`propagate`][symml.propagate] returns: the mean and spread of a
    trajectory (or of an expression's value) under uncertain inputs.

    **Attributes:**

    - `ts`: the save times, shape `(T,)`, for a trajectory; `None` for an
      expression.
    - `mean`: shape `(T, n)` for a trajectory (flat states, as
      `Solution.ys`), else the expression's shape. For linear propagation,
      the value at the inputs' mean.
    - `std`: the standard deviation, the same shape.
    - `labels`: the uncertain inputs, one per entry of the input vector.
    - `method`: the method, e.g. `Linear()` or `MonteCarlo(n_samples=10000,
      seed=0)`.
    - `n_samples`, `n_failed`: Monte Carlo only: the samples drawn and those
      whose evaluation failed (left out of the statistics).
    - `samples`: Monte Carlo with `keep_samples=True`: the outputs of each
      successful sample, shape `(N, *mean.shape)`; else `None`.
    - `compile_seconds`, `run_seconds`: time spent compiling and running.
    - `system`: the lowered system, for a trajectory.
    """

    def __init__(
        self,
        *,
        target: Target,
        mean: np.ndarray,
        std: np.ndarray,
        method: "AbstractPropagation",
        covariance: Callable[[], np.ndarray | None],
        compile_seconds: float,
        run_seconds: float,
        n_samples: int | None = None,
        n_failed: int = 0,
        samples: np.ndarray | None = None,
    ):
        self.ts = None if target.ts is None or target.system is None else target.ts
        self.system = target.system
        self.mean = mean
        self.std = std
        self.labels = target.inputs.labels
        self.method = method
        self.n_samples = n_samples
        self.n_failed = n_failed
        self.samples = samples
        self.compile_seconds = compile_seconds
        self.run_seconds = run_seconds
        self._covariance = covariance

    def covariance(self) -> np.ndarray:
        """The covariance of the outputs: shape `(T, n, n)` for a trajectory
        (between the states at each time), `(m, m)` for an expression with `m`
        outputs (flattened in C order)."""
        cov = self._covariance()
        if cov is None:
            raise UncertaintyError(
                f"Monte Carlo kept only the variances: the output has more than "
                f"{_MAX_COVARIANCE} entries per time. Use `std`, or `Linear()`, whose "
                "covariance is kept in factored form."
            )
        return cov

    def _state(self, state) -> tuple[np.ndarray, np.ndarray]:
        if self.system is None:
            raise UncertaintyError(
                "`state` applies to a trajectory; this propagation is of an "
                "expression. Use `mean` and `std`."
            )
        name = self.system._name(state)
        sl = self.system.state_slice(name)
        shape = (len(self.ts), *self.system.state_shape(name))
        return self.mean[:, sl].reshape(shape), self.std[:, sl].reshape(shape)

    def __getitem__(self, state) -> tuple[np.ndarray, np.ndarray]:
        """`(mean, std)` of one state (the state or its name), each of shape
        `(T, *state shape)`."""
        return self._state(state)

    def band(self, state=None, *, sigmas: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """`(mean - sigmas·std, mean + sigmas·std)` of one state (of the whole
        output with `state=None`)."""
        if isinstance(sigmas, bool) or not (
            isinstance(sigmas, int | float) and math.isfinite(sigmas) and sigmas > 0
        ):
            raise UncertaintyError(
                f"`sigmas` must be a positive number; got {sigmas!r}."
            )
        mean, std = (self.mean, self.std) if state is None else self._state(state)
        return mean - sigmas * std, mean + sigmas * std

    def to_dict(self) -> dict:
        """Plain JSON-serialisable data: times, mean, std, method, timings."""
        return {
            "method": repr(self.method),
            "inputs": list(self.labels),
            "ts": None if self.ts is None else np.asarray(self.ts).tolist(),
            "state_names": None
            if self.system is None
            else list(self.system.state_names),
            "mean": np.asarray(self.mean).tolist(),
            "std": np.asarray(self.std).tolist(),
            "n_samples": self.n_samples,
            "n_failed": self.n_failed,
            "compile_seconds": self.compile_seconds,
            "run_seconds": self.run_seconds,
        }

    def __repr__(self) -> str:
        return (
            f"Propagation({self.method!r}, mean {tuple(self.mean.shape)}, "
            f"{len(self.labels)} uncertain input(s))"
        )


def _compile(fn, *args):
    """`fn` compiled ahead of time for `args`, and the seconds it took."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def _run(compiled, *args, warm: bool = False):
    """`compiled(*args)` and the seconds it took; with `warm`, timed on a
    second call (the first after compilation pays for allocations)."""
    if warm:
        jax.block_until_ready(compiled(*args))
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - start


class AbstractPropagation(abc.ABC):
    """How uncertainty is propagated: [`Linear`][symml.Linear] or
    [`MonteCarlo`][symml.MonteCarlo]. Subclasses implement `run(target)`."""

    @abc.abstractmethod
    def run(self, target: Target) -> Propagation:
        """Propagate the inputs of `target` through it."""


@dataclass(frozen=True)
class Linear(AbstractPropagation):
    """First-order (linear) propagation, exact in the correlations of the
    inputs: with `y = f(θ)` and `θ ~ N(μ, Σ)`, the mean is `f(μ)` and the
    covariance `J Σ Jᵀ`, where `J = ∂f/∂θ` at `μ`.

    `J Σ Jᵀ` is computed as `(J L)(J L)ᵀ` with `Σ = L Lᵀ`: one forward-mode
    derivative (JVP) of the solve along each column of `L`, batched with
    `vmap`, so `r` JVPs for a covariance of rank `r` (one per independent
    input). For an expression or function, `sparse=True` (or `None` when it
    saves JVPs) detects the sparsity pattern of `J`, colours its columns and
    evaluates one JVP per colour instead (an expression evaluated pointwise on
    a grid of independent inputs needs one).

    Accurate while `f` is close to linear over a few standard deviations of
    the inputs; compare with [`MonteCarlo`][symml.MonteCarlo] when in doubt.

    **Arguments:**

    - `sparse`: `True`, `False`, or `None` (sparse when colouring needs fewer
      JVPs than the covariance's rank; expressions and functions only).
    """

    sparse: bool | None = None

    def __post_init__(self):
        if self.sparse not in (None, True, False):
            raise UncertaintyError(
                f"`sparse` of `Linear` must be True, False or None; got "
                f"{self.sparse!r}."
            )

    def run(self, target: Target) -> Propagation:
        mu = jnp.asarray(target.inputs.mean)
        factor = jnp.asarray(target.inputs.factor, mu.dtype)
        sparse = self.sparse
        if sparse and isinstance(target, SystemTarget):
            raise UncertaintyError(
                "`Linear(sparse=True)` applies to expressions and functions: the "
                "solution of an ODE depends on every input it is coupled to, so "
                "its Jacobian has no useful sparsity. Use `Linear()`."
            )
        pattern = colors = None
        if sparse is not False and not isinstance(target, SystemTarget):
            pattern, colors = _coloring(target, mu, required=bool(sparse))
            n_colors = 0 if colors is None else int(colors.max(initial=-1)) + 1
            if sparse is None and n_colors >= factor.shape[1]:
                pattern = None
        flat = lambda th: target(th)[0].ravel()  # noqa: E731

        if pattern is None:

            def compute(mu, factor):
                if factor.shape[1] == 0:  # every input certain
                    out, ok = target(mu)
                    return out, ok, jnp.zeros((0, out.size), out.dtype)

                def push(v):
                    return jax.jvp(target, (mu,), (v,), has_aux=True)

                # The value is computed once, not once per direction.
                out, tangents, ok = jax.vmap(push, out_axes=(None, 0, None))(factor.T)
                return out, ok, tangents.reshape(tangents.shape[0], -1)

            compiled, compile_seconds = _compile(compute, mu, factor)
            (out, ok, tangents), run_seconds = _run(compiled, mu, factor, warm=True)
            # Rows of (J L)ᵀ: covariance = Σ_r t_r t_rᵀ.
            weighted = np.asarray(tangents)
        else:

            def compute(mu):
                out, ok = target(mu)
                jac = compressed_jacobian(flat, mu, pattern, colors)
                return out, ok, jac.data

            compiled, compile_seconds = _compile(compute, mu)
            (out, ok, data), run_seconds = _run(compiled, mu, warm=True)
            coo = pattern.tocoo()
            order = np.lexsort((coo.col, coo.row))
            jac = np.zeros(pattern.shape)
            jac[coo.row[order], coo.col[order]] = np.asarray(data)
            weighted = (jac @ np.asarray(factor)).T
        if not bool(ok):
            target.check(mu)
        out = np.asarray(out)
        std = np.sqrt(np.sum(weighted**2, axis=0)).reshape(out.shape)
        per_time = target.system is not None

        def covariance():
            if per_time:
                w = weighted.reshape(weighted.shape[0], *out.shape)
                return np.einsum("rti,rtj->tij", w, w)
            return weighted.T @ weighted

        return Propagation(
            target=target,
            mean=out,
            std=std,
            method=self,
            covariance=covariance,
            compile_seconds=compile_seconds,
            run_seconds=run_seconds,
        )


def _coloring(target: Target, mu, *, required: bool):
    """The Jacobian pattern of an expression and a colouring of its columns,
    or `(None, None)` if the pattern cannot be detected and was not
    required."""
    try:
        pattern = jacobian_sparsity(lambda th: target(th)[0].ravel(), mu)
    except SparsityError as e:
        if required:
            raise UncertaintyError(
                f"`Linear(sparse=True)` could not detect the Jacobian's sparsity: "
                f"{e} Use `Linear()`."
            ) from None
        return None, None
    return pattern, color_columns(pattern)


@dataclass(frozen=True)
class MonteCarlo(AbstractPropagation):
    """Monte Carlo propagation: `n_samples` draws of the inputs from their
    normal distribution (seeded), evaluated in batches with `vmap`; the mean
    and covariance are the samples'. The reference for
    [`Linear`][symml.Linear], and the method for uncertainties too large for a
    linearisation. The statistical error of a standard deviation is about
    `std / sqrt(2 n_samples)`.

    Samples whose solve fails (a trajectory that blows up for extreme
    parameters) are left out and counted in `Propagation.n_failed`, with an
    [`UncertaintyWarning`][symml.UncertaintyWarning]; if more than half fail,
    an error.

    **Arguments:**

    - `n_samples`: the number of samples (>= 2).
    - `seed`: the seed of the draws; the same seed gives the same samples
      whatever the batch size.
    - `batch_size`: samples evaluated at once (memory grows with it).
    - `keep_samples`: keep every sample's output in `Propagation.samples`.
    """

    n_samples: int = 10_000
    seed: int = 0
    batch_size: int = 1000
    keep_samples: bool = False

    def __post_init__(self):
        check_positive_int(self.n_samples, "n_samples", "MonteCarlo", minimum=2)
        check_positive_int(self.seed, "seed", "MonteCarlo", minimum=0)
        check_positive_int(self.batch_size, "batch_size", "MonteCarlo")
        if not isinstance(self.keep_samples, bool):
            raise UncertaintyError(
                f"`keep_samples` of `MonteCarlo` must be True or False; got "
                f"{self.keep_samples!r}."
            )

    def run(self, target: Target) -> Propagation:
        mu = jnp.asarray(target.inputs.mean)
        factor = jnp.asarray(target.inputs.factor, mu.dtype)
        rank = factor.shape[1]
        normal = jr.normal(jr.PRNGKey(self.seed), (self.n_samples, rank), mu.dtype)
        batch = min(self.batch_size, self.n_samples)

        def evaluate(z):
            return jax.vmap(lambda zi: target(mu + factor @ zi))(z)

        nominal, ok = jax.jit(target)(mu)
        if not bool(ok):
            target.check(mu)
        nominal = np.asarray(nominal)
        shape = nominal.shape
        per_time = target.system is not None
        width = shape[-1] if per_time else nominal.size
        full = width <= _MAX_COVARIANCE
        compiled, compile_seconds = _compile(evaluate, normal[:batch])
        # Sums of deviations from the nominal output (not of raw values), so
        # that float64 sums of many samples do not cancel.
        s1 = np.zeros(shape)
        s2 = np.zeros(shape)
        cross = np.zeros((*shape[:-1], width, width) if per_time else (width, width))
        if not full:
            cross = None
        kept = [] if self.keep_samples else None
        n_ok = 0
        run_seconds = 0.0
        for start in range(0, self.n_samples, batch):
            z = normal[start : start + batch]
            size = z.shape[0]
            if size < batch:  # pad the last batch to the compiled shape
                z = jnp.concatenate([z, jnp.zeros((batch - size, rank), z.dtype)])
            (out, good), seconds = _run(compiled, z, warm=start == 0)
            run_seconds += seconds
            out = np.asarray(out)[:size]
            good = np.asarray(good)[:size]
            d = out[good] - nominal
            n_ok += int(good.sum())
            s1 += d.sum(axis=0)
            s2 += (d**2).sum(axis=0)
            if cross is not None:
                if per_time:
                    cross += np.einsum("bti,btj->tij", d, d)
                else:
                    flat = d.reshape(d.shape[0], -1)
                    cross += flat.T @ flat
            if kept is not None:
                kept.append(out[good])
        n_failed = self.n_samples - n_ok
        if n_ok < max(2, self.n_samples / 2):
            raise UncertaintyError(
                f"{n_failed} of {self.n_samples} Monte Carlo samples failed (their "
                "solve did not finish or was not finite): the inputs' spread reaches "
                "values where the model breaks down. Narrow the uncertainties, or "
                "check the model there."
            )
        if n_failed:
            warnings.warn(
                f"{n_failed} of {self.n_samples} Monte Carlo samples failed (their "
                "solve did not finish or was not finite) and are left out; the "
                "statistics describe the others.",
                UncertaintyWarning,
                stacklevel=3,
            )
        offset = s1 / n_ok
        mean = nominal + offset
        var = (s2 - n_ok * offset**2) / (n_ok - 1)
        std = np.sqrt(np.maximum(var, 0.0))

        def covariance():
            if cross is None:
                return None
            if per_time:
                c = cross - n_ok * np.einsum("ti,tj->tij", offset, offset)
            else:
                o = offset.ravel()
                c = cross - n_ok * np.outer(o, o)
            return c / (n_ok - 1)

        return Propagation(
            target=target,
            mean=mean,
            std=std,
            method=self,
            covariance=covariance,
            compile_seconds=compile_seconds,
            run_seconds=run_seconds,
            n_samples=self.n_samples,
            n_failed=n_failed,
            samples=None if kept is None else np.concatenate(kept),
        )


def propagate(
    target: "AbstractSystem | sp.Expr | Callable[..., Array]",
    uncertain: Mapping,
    *,
    method: AbstractPropagation | None = None,
    params: Params | None = None,
    y0: Float[Any, " n"] | Mapping | None = None,
    t_span: tuple[float, float] | None = None,
    saveat: Any = None,
    values: Mapping | None = None,
    solver: Any = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 100_000,
) -> Propagation:
    """Propagate uncertain parameters and initial states through a trajectory
    of a lowered system, or through an expression.

    **Arguments:**

    - `target`: a lowered system ([`lower`][symml.lower]'s
      [`CompiledRHS`][symml.CompiledRHS], a
      [`DiscretizedModel`][symml.DiscretizedModel], any
      [`AbstractSystem`][symml.AbstractSystem]), whose trajectory is
      propagated; a sympy expression of symbols; or a pure JAX function
      `f(**inputs) -> array` of the inputs by name.
    - `uncertain`: `{input: symml.Normal(mean, std)}` (or `(mean, std)`
      pairs): the model's parameters (fixed or trainable) and states (their
      initial values; an array over the grid for a state on a grid) for a
      system, the symbols for an expression, the keyword names for a
      function. A tuple of inputs as a key takes one joint `Normal` with a
      covariance: `{(alpha, beta): Normal([1.3, 0.9], covariance=C)}`.
    - `method`: [`Linear()`][symml.Linear] (the default) or
      [`MonteCarlo(...)`][symml.MonteCarlo].
    - `params`: for a system with networks or trainable parameters, their
      values (e.g. a fit result's `params`).
    - `y0`: the initial state of the certain states (flat, or `{state:
      value}`); by default the model's initial conditions. An uncertain
      state's mean replaces its entry.
    - `t_span`, `saveat`: as for [`solve`][symml.solve].
    - `values`: for an expression or function, `{symbol: value}` of its
      certain inputs.
    - `solver`, `rtol`, `atol`, `max_steps`: the solves (as for `solve`;
      implicit solvers use dense linear algebra here, since forward-mode
      derivatives do not pass through the sparse LU).

    **Returns:**

    A [`Propagation`][symml.Propagation]: `mean`, `std`, `covariance()`,
    `band(state, sigmas=...)`, and per-state `propagation[x] -> (mean, std)`;
    [`plot_band`][symml.plot_band] draws it.
    """
    method = Linear() if method is None else method
    if not isinstance(method, AbstractPropagation):
        raise UncertaintyError(
            f"`method` must be `symml.Linear()` or `symml.MonteCarlo(...)`; got "
            f"{method!r}."
        )
    if isinstance(target, AbstractSystem):
        built = SystemTarget(
            target,
            uncertain,
            params=params,
            y0=y0,
            t_span=t_span,
            saveat=saveat,
            solver=solver,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
        )
    else:
        given = {"params": params, "y0": y0, "t_span": t_span, "saveat": saveat}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise UncertaintyError(
                f"{', '.join(f'`{k}=`' for k in extra)} appl"
                f"{'ies' if len(extra) == 1 else 'y'} to a lowered system's "
                "trajectory; an expression or function takes its certain inputs "
                "in `values=`."
            )
        if isinstance(target, sp.Basic):
            if not isinstance(target, sp.Expr):
                raise UncertaintyError(
                    f"`target` must be a sympy expression (not {type(target).__name__})"
                    "; for an equation, propagate its right-hand side."
                )
            built = ExpressionTarget(target, uncertain, values)
        elif callable(target):
            built = FunctionTarget(target, uncertain, values)
        else:
            raise UncertaintyError(
                f"`propagate` takes a lowered system (`symml.lower`, "
                f"`symml.discretize`), a sympy expression or a JAX function; got "
                f"{type(target).__name__}."
            )
    return method.run(built)
