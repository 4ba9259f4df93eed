"""The optimisation loop shared by every kind of fit.

Steps run in compiled chunks: one `lax.scan` over up to `CHUNK` steps per call,
so the Python overhead and the allocator churn of one call per step disappear.
Inside a chunk every step checks that the loss and the gradient are finite; a
non-finite step stops the chunk with the parameters of the last finite step
kept aside, and the host raises a [`FitError`][symml.FitError] carrying them.
Between chunks the host resamples collocation points, adapts loss weights,
reports progress and writes checkpoints. The parameters a fit returns are the
last ones whose loss was evaluated and finite, and `history[...][-1]` is that
loss.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._errors import FitError
from ._checks import positive_integer, positive_number
from ._progress import Progress
from ._shard import PerDevice, Placement, host, to_default_device

# The most steps one compiled call runs; more per call saves host round trips,
# fewer reports progress (and can stop) sooner.
CHUNK = 50
_RING = 11  # losses kept for the early-stopping test over 10 steps

# `_LAST`: converged in the last phase; one more step evaluates the loss of
# the last update (its own update is discarded), then `_CONVERGED`.
_RUNNING, _CONVERGED, _FAILED, _LAST = 0, 1, 2, 3


def _check_steps(steps, where: str) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise FitError(f"`steps` of `{where}` must be an integer >= 0; got {steps!r}.")
    return int(steps)


@dataclass(frozen=True)
class Phase:
    """One stage of optimisation.

    **Arguments:**

    - `name`: shown in progress and in the loss history (`"adam"`, `"lbfgs"`).
    - `optimizer`: an optax gradient transformation.
    - `steps`: the number of steps.
    - `line_search`: `True` for optax's L-BFGS, whose update needs the value,
      the gradient and the loss function.
    - `tolerance`: stop early when the relative change of the loss over 10
      steps falls below it (`0` disables).
    """

    name: str
    optimizer: optax.GradientTransformation
    steps: int
    line_search: bool = False
    tolerance: float = 0.0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise FitError(
                f"`name` of a `Phase` must be a non-empty string; got {self.name!r}."
            )
        if not isinstance(self.optimizer, optax.GradientTransformation):
            raise FitError(
                f"`optimizer` of the phase {self.name!r} must be an optax gradient "
                f"transformation such as `optax.adam(1e-3)`; got {self.optimizer!r}."
            )
        _check_steps(self.steps, f"Phase({self.name!r})")
        if (
            isinstance(self.tolerance, bool)
            or not np.isfinite(self.tolerance)
            or self.tolerance < 0
        ):
            raise FitError(
                f"`tolerance` of the phase {self.name!r} must be a finite number >= "
                f"0; got {self.tolerance!r}."
            )


def adam(steps: int, learning_rate: float = 3e-3, clip: float | None = 10.0) -> Phase:
    """Adam with global-norm gradient clipping (a safe first phase).

    **Arguments:**

    - `steps`: the number of steps.
    - `learning_rate`: Adam's step size.
    - `clip`: the largest global gradient norm (`None`: no clipping).
    """
    steps = _check_steps(steps, "adam")
    learning_rate = positive_number(learning_rate, "learning_rate", "adam")
    opt = optax.adam(learning_rate)
    if clip is not None:
        opt = optax.chain(
            optax.clip_by_global_norm(positive_number(clip, "clip", "adam")), opt
        )
    return Phase("adam", opt, steps)


def lbfgs(steps: int, memory_size: int = 20, tolerance: float = 1e-10) -> Phase:
    """optax's L-BFGS with a zoom line search (a fast second phase).

    **Arguments:**

    - `steps`: the most steps.
    - `memory_size`: the number of past gradients kept.
    - `tolerance`: stop when the loss changes by less than this fraction over
      10 steps.
    """
    steps = _check_steps(steps, "lbfgs")
    memory_size = positive_integer(memory_size, "memory_size", "lbfgs")
    return Phase(
        "lbfgs",
        optax.lbfgs(memory_size=memory_size),
        steps,
        line_search=True,
        tolerance=tolerance,
    )


@dataclass
class Problem:
    """What a fit method hands the loop.

    - `loss`: `loss(trainable, static) -> (scalar, {term: scalar})`, pure.
    - `trainable`: the initial pytree of what is optimised.
    - `static`: arrays the loss reads that the host may change between chunks
      (collocation points, loss weights); structure fixed.
    - `result`: `result(trainable, history, static) -> FitResult`, the one
      place a method builds its result (also for a failed fit).
    - `between`: `between(phase, step, trainable, static) -> static`, run by the
      host before step `step` of a phase without line search when `step` is a
      multiple of `period`.
    - `rng`: the host's random generator (resampling); saved in checkpoints.
    - `shard`: for `fit(..., mesh=...)`, a pytree prefix of `static` marking
      with `Shard(...)` the leaves whose leading axis carries data points
      (split over the devices), `None` elsewhere (replicated); see
      `_shard.py`.
    - `relayout`: `relayout(n_devices) -> Problem`, the same problem laid out
      with such a data axis (for methods whose own layout has none).
    - `resample`: `resample(static, rng) -> static`, `static` with the data
      drawn with replacement (a case bootstrap, for ensembles).
    - `members`: an ensemble's number of members: every array of `trainable`
      and `static` then has a leading member axis, `loss` is one member's,
      and the loop runs the members side by side (`_ensemble.py`). `loss`
      must depend on the seed only through `trainable` and `static`.
    """

    loss: Callable
    trainable: Any
    static: Any
    result: Callable
    between: Callable | None = None
    period: int | None = None
    rng: np.random.Generator | None = None
    fingerprint: str = ""
    extra: dict = field(default_factory=dict)
    shard: Any = None
    relayout: Callable | None = None
    resample: Callable | None = None
    members: int | None = None


class _Carry(eqx.Module):
    x: Any  # the parameters about to be evaluated
    state: Any  # the optimiser's state
    last_good: Any  # the last parameters whose loss was finite
    ring: jax.Array  # the last losses, for the early-stopping test
    count: jax.Array  # losses recorded in this phase
    status: jax.Array


def _strongly_typed(tree):
    """`tree` with every array's weak type made strong.

    `opt.init` and parameters made from Python numbers hold weakly typed
    arrays; a step's outputs are strongly typed, so without this the jitted
    chunk compiles twice, once for each (an L-BFGS step around an ODE solve
    takes 30 s to compile on 2 cores).
    """
    return jax.tree.map(
        lambda a: jnp.asarray(a, a.dtype) if eqx.is_array(a) else a, tree
    )


def _loss_dtype(tree):
    leaves = [x for x in jax.tree.leaves(tree) if eqx.is_inexact_array(x)]
    return jnp.result_type(*leaves) if leaves else jnp.zeros(()).dtype


def _make_chunk(
    loss_fn: Callable, phase: Phase, x_static, *, final: bool, members: bool
):
    """The chunk of one phase: `(carry, static, n_active) -> (carry, losses)`,
    running the first `n_active` of `CHUNK` steps (`final`: the last phase,
    whose convergence takes one more step). With `members`, every array has
    a leading member axis and each member steps on its own (its own
    optimiser state, clipping, line search, convergence and failure)."""
    opt = phase.optimizer
    tolerance = float(phase.tolerance)

    def loss_of(x_dynamic, static):
        return loss_fn(eqx.combine(x_dynamic, x_static), static)

    def step(c: _Carry, static):
        if phase.line_search:

            def value(y):
                return loss_of(y, static)[0]

            loss, grad = optax.value_and_grad_from_state(value)(c.x, state=c.state)
            updates, state = opt.update(
                grad, c.state, c.x, value=loss, grad=grad, value_fn=value
            )
        else:
            (loss, _), grad = eqx.filter_value_and_grad(loss_of, has_aux=True)(
                c.x, static
            )
            updates, state = opt.update(grad, c.state, c.x)
        ok = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grad))
        loss = loss.astype(c.ring.dtype)
        ring = c.ring.at[c.count % _RING].set(loss)
        before = ring[(c.count - (_RING - 1)) % _RING]
        converged = (
            (tolerance > 0)
            & (c.count >= _RING - 1)
            & (jnp.abs(before - loss) <= tolerance * jnp.maximum(jnp.abs(loss), 1e-30))
        )
        if final:
            status = jnp.where(
                c.status == _LAST,
                _CONVERGED,
                jnp.where(converged, _LAST, _RUNNING),
            )
        else:
            status = jnp.where(converged, _CONVERGED, _RUNNING)
        good = _Carry(
            optax.apply_updates(c.x, updates),
            state,
            c.x,
            ring,
            c.count + 1,
            status.astype(c.status.dtype),
        )
        bad = eqx.tree_at(lambda k: k.status, c, jnp.asarray(_FAILED, c.status.dtype))
        new = jax.tree.map(lambda g, b: jnp.where(ok, g, b), good, bad)
        return new, loss

    def skip(c: _Carry):
        return c, jnp.full(c.ring.shape[:-1], jnp.nan, c.ring.dtype)

    def member(c: _Carry, static):
        active = (c.status == _RUNNING) | (c.status == _LAST)
        return jax.lax.cond(active, lambda c: step(c, static), skip, c)

    if members:
        member = eqx.filter_vmap(member)

    def chunk(carry: _Carry, static, n_active):
        # The step count is the same for every member: past it, no member
        # computes (under `vmap` a condition on the members' status runs both
        # branches).
        def body(c, i):
            return jax.lax.cond(i < n_active, lambda c: member(c, static), skip, c)

        return jax.lax.scan(body, carry, jnp.arange(CHUNK))

    return chunk


def _compile(chunk: Callable, placement):
    """`chunk` compiled; on a mesh, data-parallel: partitioned by XLA (the
    parameters replicated, the data split); for an ensemble, one program per
    device stepping the members it holds (`_shard.PerDevice`: every array
    split along the member axis, which no step mixes)."""
    if placement is None:
        return eqx.filter_jit(chunk)
    if placement.members:
        return PerDevice(eqx.filter_jit(chunk), placement)

    def placed(carry, static, n_active):
        carry, losses = chunk(carry, static, n_active)
        return placement.constrain_carry(carry), losses

    return eqx.filter_jit(placed)


def _new_carry(x_dynamic, opt, dtype) -> _Carry:
    return _strongly_typed(
        _Carry(
            x_dynamic,
            opt.init(x_dynamic),
            x_dynamic,
            jnp.full(_RING, jnp.nan, dtype),
            jnp.asarray(0, jnp.int32),
            jnp.asarray(_RUNNING, jnp.int32),
        )
    )


def _describe(terms: dict) -> str:
    bad = [k for k, v in terms.items() if not np.all(np.isfinite(np.asarray(v)))]
    if bad:
        return "the term(s) " + ", ".join(f"`{k}`" for k in bad) + " went non-finite"
    return "every loss term was finite but the gradient was not"


@dataclass
class LoopState:
    """Where a fit stands: enough to resume it (see `_checkpoint.py`)."""

    phase: int = 0  # index into the phases
    step: int = 0  # steps done in that phase
    carry: Any = None  # the phase's `_Carry` (dynamic part), or None at its start
    history: dict = field(default_factory=dict)
    static: Any = None
    elapsed: float = 0.0  # seconds of fitting before a resume
    failures: dict = field(default_factory=dict)  # an ensemble's failed members


def optimize(
    problem: Problem,
    phases: list[Phase],
    *,
    progress: Progress,
    checkpoint: Callable[[LoopState], None] | None = None,
    checkpoint_every: int | None = None,
    state: LoopState | None = None,
    mesh=None,
):
    """Run `phases` on `problem`.

    With `mesh` (a `jax.sharding.Mesh`), the arrays are placed on its devices
    (`_shard.py`): `problem.shard`'s data split and the rest replicated, or an
    ensemble's members split; what is returned is gathered back on the
    default device.

    **Returns:** `(trainable, history, static)`; the trainable parameters are
    the last ones whose loss was evaluated and finite, `history[name][-1]` of
    the last phase that ran is their loss. With `problem.members`, `trainable`
    and `static` are stacked and `history` is `(histories, failures)`: one
    history per member, and `{member: message}` for the members whose loss
    went non-finite (they keep their last good parameters; the others go on).

    **Raises:** [`FitError`][symml.FitError] on a non-finite step (of a single
    fit), with `error.result` built by `problem.result` from the last good
    parameters.
    """
    active = [i for i, p in enumerate(phases) if p.steps > 0]
    if not active:
        raise FitError(
            "The fit has no optimisation steps (every phase has `steps=0`); give "
            "`steps=` or `lbfgs_steps=` a positive number, or `phases=[...]` with "
            "steps."
        )
    members = problem.members
    placement = (
        None
        if mesh is None
        else Placement(mesh, problem.shard, members=members is not None)
    )
    x_dynamic, x_static = eqx.partition(problem.trainable, eqx.is_array)
    dtype = _loss_dtype(x_dynamic)
    state = LoopState(static=problem.static) if state is None else state
    static = state.static
    history = {k: list(v) for k, v in state.history.items()}
    failures: dict[int, str] = dict(state.failures)

    def fail(message: str, carry: _Carry, name: str, terms_at) -> FitError:
        progress.close()
        good = eqx.combine(carry.last_good, x_static)
        error = FitError(message)
        error.result = problem.result(
            _gathered(good, placement), _arrays(history), _gathered(static, placement)
        )
        if terms_at is not None:
            error.terms = terms_at
        return error

    carry = None
    chunk = None
    last = active[-1]
    for index in active:
        if index < state.phase:
            continue
        phase = phases[index]
        chunk = _compile(
            _make_chunk(
                problem.loss,
                phase,
                x_static,
                final=index == last,
                members=members is not None,
            ),
            placement,
        )
        if index == state.phase and state.carry is not None:
            carry = state.carry
            step = state.step
        elif members is None:
            start = x_dynamic if carry is None else carry.x
            carry = _new_carry(start, phase.optimizer, dtype)
            step = 0
        else:
            carry = _new_members(carry, x_dynamic, phase.optimizer, dtype)
            step = 0
        if members is None:
            losses = history.setdefault(phase.name, [])
        else:
            losses = history.setdefault(phase.name, [[] for _ in range(members)])
        # A final extra step evaluates the loss of the last update; its own
        # update is discarded (`last_good` is kept).
        total = phase.steps + (1 if index == last else 0)
        progress.start(phase.name, phase.steps, min(step, phase.steps))
        status = host(carry.status).reshape(-1)
        while step < total:
            if (
                problem.between is not None
                and not phase.line_search
                # The step after convergence evaluates the last update on the
                # data it was made with.
                and not np.any(status == _LAST)
                and problem.period
                and step % problem.period == 0
                and step < phase.steps
            ):
                x = eqx.combine(carry.x, x_static)
                static = problem.between(phase.name, step, x, static)
            n = min(CHUNK, total - step)
            if problem.period and not phase.line_search:
                n = min(n, problem.period - step % problem.period)
            if checkpoint_every:
                n = min(n, checkpoint_every - step % checkpoint_every)
            n_active = jnp.asarray(n, jnp.int32)
            if placement is not None:
                carry = placement.carry(carry)
                static = placement.static(static)
                n_active = placement.scalar(n_active)
            before = host(carry.count).reshape(-1)
            carry, chunk_losses = chunk(carry, static, n_active)
            done = host(carry.count).reshape(-1) - before
            chunk_losses = host(chunk_losses).reshape(CHUNK, -1)
            if members is None:
                losses.extend(float(v) for v in chunk_losses[: done[0], 0])
            else:
                for k in range(members):
                    losses[k].extend(float(v) for v in chunk_losses[: done[k], k])
            step += n
            status = host(carry.status).reshape(-1)
            latest = _latest(losses, members)
            if latest is not None:
                progress.update(phase.name, min(step, phase.steps), phase.steps, latest)
            if members is not None:
                for k in np.flatnonzero(status == _FAILED):
                    if int(k) not in failures:
                        failures[int(k)] = (
                            f"The loss went non-finite at step {len(losses[k]) + 1} "
                            f"of the `{phase.name}` phase; the member keeps its "
                            "last good parameters."
                        )
            elif status[0] == _FAILED:
                bad_step = len(losses)
                x_bad = eqx.combine(carry.x, x_static)
                terms = problem.loss(x_bad, static)[1]
                if not any(history.get(p.name) for p in phases):
                    raise fail(
                        f"The loss is non-finite at the initial parameters ("
                        f"{_describe(terms)}). Check the data and the model's "
                        "parameter values, or give initial values closer to the "
                        "data.",
                        carry,
                        phase.name,
                        terms,
                    )
                raise fail(
                    f"The fit went non-finite at step {bad_step} of the "
                    f"`{phase.name}` phase: {_describe(terms)}. The last good "
                    "parameters are kept in `error.result` (their loss is "
                    f"{_last_loss(history):.6g}). Try a smaller learning rate, "
                    "tighter solver tolerances or an implicit solver for a stiff "
                    "model.",
                    carry,
                    phase.name,
                    terms,
                )
            if not np.any((status == _RUNNING) | (status == _LAST)):
                break
            due = checkpoint_every and step % checkpoint_every == 0
            if checkpoint is not None and due and step < total:
                # Gathered by every process together; written by process 0.
                saved_carry, saved_static = _gathered((carry, static), placement)
                if jax.process_index() == 0:
                    saved = (
                        _arrays(history)
                        if members is None
                        else {k: [list(v) for v in per] for k, per in history.items()}
                    )
                    checkpoint(
                        LoopState(
                            index,
                            step,
                            saved_carry,
                            saved,
                            saved_static,
                            failures=dict(failures),
                        )
                    )
    progress.close()
    trainable, static = _gathered(
        (eqx.combine(carry.last_good, x_static), static), placement
    )
    if members is None:
        return trainable, _arrays(history), static
    histories = [
        {name: np.asarray(per[k], dtype=float) for name, per in history.items()}
        for k in range(members)
    ]
    return trainable, (histories, failures), static


def _gathered(tree, placement):
    return tree if placement is None else to_default_device(tree)


def _new_members(carry, x_dynamic, optimizer, dtype) -> _Carry:
    """Each member's carry at the start of a phase: from where the last phase
    left it, or, for a member that failed, from its last good parameters and
    still stopped."""
    if carry is None:
        start, failed = x_dynamic, None
    else:
        failed = carry.status == _FAILED

        def pick(good, x):
            shape = (-1,) + (1,) * (x.ndim - 1)
            return jnp.where(failed.reshape(shape), good, x)

        start = jax.tree.map(pick, carry.last_good, carry.x)
    new = eqx.filter_vmap(lambda x: _new_carry(x, optimizer, dtype))(start)
    if failed is not None:
        status = jnp.where(failed, _FAILED, _RUNNING).astype(new.status.dtype)
        new = eqx.tree_at(lambda c: c.status, new, status)
    return new


def _latest(losses, members) -> float | None:
    if members is None:
        return losses[-1] if losses else None
    last = [per[-1] for per in losses if per]
    return float(np.median(last)) if last else None


def _last_loss(history: dict) -> float:
    for losses in reversed(list(history.values())):
        if len(losses):
            return float(losses[-1])
    return float("nan")


def _arrays(history: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in history.items()}
