"""A solve-in-the-loop fit laid out as one batch of solves.

[`SolveInLoop`][symml.SolveInLoop] solves each trajectory (each shooting
segment of each trajectory) in a Python loop of its own. On a device mesh, and
for a case bootstrap, the same loss is computed from one `vmap`ped solve over
all `trajectories × segments` items: each item's times are padded to the
longest item's by repeating its last time, and a weight per observation row
(1 for a real row, 0 for padding, the number of draws in a bootstrap) keeps
the padding out of the loss. The items' axis is what a mesh splits. The loss
is the unbatched one to float rounding: the same per-state mean squared
errors over the same rows, the same continuity terms.
"""

import dataclasses
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._diffrax import SolveOptions, diffeqsolve
from .._errors import FitError
from ..lowering import AbstractSystem, Params
from ._checkpoint import fingerprint
from ._loop import Problem
from ._shard import Shard


class _Batch(eqx.Module):
    system: AbstractSystem = eqx.field(static=True)
    options: SolveOptions = eqx.field(static=True)
    names: tuple = eqx.field(static=True)
    free: tuple = eqx.field(static=True)  # trained initial entries (every trajectory)
    observed: tuple = eqx.field(static=True)  # observed flat indices
    owner: tuple = eqx.field(static=True)  # per observed column: its state
    state_of: tuple = eqx.field(static=True)  # flat index -> state
    segments: int = eqx.field(static=True)  # per trajectory
    continuity: float = eqx.field(static=True)
    regularize: Any = eqx.field(static=True)
    y0: jax.Array  # (N, n): each trajectory's fixed initial entries
    ts: jax.Array  # (M, L): each item's times, padded with its last
    ys: jax.Array  # (M, L, k): its observations, padded
    weight: jax.Array  # (M, L): per row, its weight in the loss
    end: jax.Array  # (M,): the index of the item's last time in `ts`
    scale: jax.Array
    units: dict
    penalties: tuple


def _with_units(params: Params, units: dict) -> Params:
    return Params({k: v * units[k] for k, v in params.values.items()}, params.networks)


def _loss(x, s: _Batch):
    n = len(s.names)
    params = _with_units(x.params, s.units)
    starts = s.y0
    if s.free:
        starts = starts.at[:, np.asarray(s.free)].set(x.initial)
    if s.segments > 1:
        starts = jnp.concatenate([starts[:, None], x.nodes], axis=1)
    starts = starts.reshape(-1, starts.shape[-1])

    def solve(y0, ts):
        if s.regularize is None:
            sol = diffeqsolve(s.system, s.options, y0, params, ts=ts)
            term = jnp.zeros((), s.scale.dtype)
        else:
            sol, term = s.regularize.solve(s.system, s.options, y0, params, ts)
        return sol.ys, sol.result != dfx.RESULTS.successful, term

    ys, failed, regularization = jax.vmap(solve)(starts, s.ts)
    failed = jnp.any(failed)
    observed = np.asarray(s.observed)
    owner = np.asarray(s.owner)
    err = s.weight[..., None] * (ys[..., observed] - s.ys) ** 2
    per_state = jax.ops.segment_sum(jnp.sum(err, axis=(0, 1)), owner, n)
    counts = jnp.sum(s.weight) * jnp.asarray(np.bincount(owner, minlength=n))
    seen = counts > 0
    terms = jnp.where(seen, per_state / jnp.maximum(counts, 1) / s.scale, 0.0)
    loss = jnp.sum(terms) / jnp.sum(seen)
    extra = {}
    if s.segments > 1:
        last = ys[jnp.arange(ys.shape[0]), s.end]
        last = last.reshape(-1, s.segments, last.shape[-1])[:, :-1]
        scale = s.scale[np.asarray(s.state_of)]
        gap = (last - x.nodes) ** 2 / scale
        extra["continuity"] = s.continuity * jnp.sum(jnp.mean(gap, axis=-1))
        loss = loss + extra["continuity"]
    for penalty in s.penalties:
        extra[penalty.name] = penalty(params)
        loss = loss + extra[penalty.name]
    if s.regularize is not None:
        extra[s.regularize.name] = jnp.sum(regularization)
        loss = loss + extra[s.regularize.name]
    loss = jnp.where(failed, jnp.inf, loss)
    return loss, {name: terms[i] for i, name in enumerate(s.names)} | extra | {
        "solver": jnp.where(failed, jnp.inf, 0.0)
    }


def batched(problem: Problem, n_devices: int) -> Problem:
    """`problem` (of `SolveInLoop`) as one batch of `trajectories × segments`
    solves, whose axis a mesh of `n_devices` splits."""
    s = problem.static
    if len(set(s.free)) > 1 or len(set(s.observed)) > 1:
        raise FitError(
            "On a device mesh (and in a bootstrap) the trajectories are solved as "
            "one batch, so each must observe the same states and train the same "
            "initial values; split the data into fits of trajectories alike, or "
            "leave out `mesh=`."
        )
    n_traj = len(s.ts)
    bounds = s.segments if s.segments else tuple((0, len(t) - 1) for t in s.ts)
    n_seg = len(bounds[0]) - 1
    items = []
    for j in range(n_traj):
        b = bounds[j]
        for k in range(n_seg):
            lo, hi = b[k], b[k + 1]
            stop = hi + 1 if k == n_seg - 1 else hi
            items.append((j, lo, hi, stop))
    length = max(hi - lo + 1 for _, lo, hi, _ in items)
    dtype = s.scale.dtype
    ts, ys, weight, end = [], [], [], []
    for j, lo, hi, stop in items:
        t = np.asarray(s.ts[j][lo : hi + 1])
        pad = length - t.size
        ts.append(np.concatenate([t, np.repeat(t[-1:], pad)]))
        y = np.asarray(s.ys[j][lo:stop])
        rows = length - y.shape[0]
        ys.append(np.concatenate([y, np.repeat(y[-1:], rows, axis=0)]))
        weight.append(np.r_[np.ones(y.shape[0]), np.zeros(rows)])
        end.append(hi - lo)
    nodes = problem.trainable.nodes
    what = (
        f"solves ({n_traj} trajectories × {n_seg} segment(s): more trajectories, or "
        "`shooting` of `SolveInLoop`)"
    )
    static = _Batch(
        s.system,
        s.options,
        s.names,
        s.free[0],
        s.observed[0],
        s.owner[0],
        s.state_of,
        n_seg,
        s.continuity,
        s.regularize,
        jnp.stack(s.y0),
        jnp.asarray(np.stack(ts), dtype),
        jnp.asarray(np.stack(ys), dtype),
        jnp.asarray(np.stack(weight), dtype),
        jnp.asarray(end, jnp.int32),
        s.scale,
        s.units,
        s.penalties,
    )
    trainable = problem.trainable
    trainable = type(trainable)(
        trainable.params,
        jnp.stack(trainable.initial),
        jnp.stack(nodes) if nodes else (),
    )
    real = np.asarray(static.weight) > 0

    def result(x, history, static_now):
        unbatched = type(x)(
            x.params,
            tuple(x.initial),
            tuple(x.nodes) if n_seg > 1 else (),
        )
        return problem.result(unbatched, history, s)

    def resample(static_now: _Batch, rng) -> _Batch:
        # Every observation row, of every trajectory, drawn with replacement.
        count = int(real.sum())
        draws = np.bincount(rng.integers(0, count, count), minlength=count)
        weight = np.zeros(real.shape)
        weight[real] = draws
        return dataclasses.replace(static_now, weight=jnp.asarray(weight, dtype))

    spec = dataclasses.replace(
        static,
        y0=None,
        ts=Shard(what),
        ys=Shard(what),
        weight=Shard(what),
        end=Shard(what),
        scale=None,
        units=None,
        penalties=None,
    )
    return dataclasses.replace(
        problem,
        loss=_loss,
        trainable=trainable,
        static=static,
        result=result,
        fingerprint=fingerprint(problem.fingerprint, "batched"),
        shard=spec,
        relayout=None,
        resample=resample,
    )
