"""A derivative-matching fit (collocation, multistep) laid out as one batch
of rows.

[`Collocation`][symml.Collocation] and [`Multistep`][symml.Multistep] match,
for each row `i` of each trajectory, a weighted sum of right-hand-side
values to a target: `Σ_j β_j f(t_{i+j}, u_{i+j})` (derivative matching,
multistep formulas; `f` evaluated once per observation time) or
`Σ_q w_iq f(s_iq, u_iq)` (integral matching, at quadrature nodes). On a
device mesh, and for a case bootstrap, the same loss is computed from one
batch of rows over all trajectories: each row carries the times, states and
weights of its own points, so the rows are independent and their axis is
what a mesh splits. A multistep formula of `k` nonzero weights then
evaluates `f` `k` times per row instead of once per time. The rows are
padded to a multiple of the device count with copies of the last row of
zero weight (a weight per row also holds a bootstrap's draws), which keeps
the padding out of the loss: the same per-state mean squared residuals over
the same rows, to float rounding.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..lowering import AbstractSystem, Params
from ._checkpoint import fingerprint
from ._loop import Problem
from ._shard import Shard


class _Rows(eqx.Module):
    system: AbstractSystem = eqx.field(static=True)
    state_of: tuple = eqx.field(static=True)  # flat index -> state index
    names: tuple = eqx.field(static=True)
    ts: jax.Array  # (R, J): each row's window times
    us: jax.Array  # (R, J, n): its window states
    coef: jax.Array  # (R, J): the weight of each point in its row's sum
    targets: jax.Array  # (R, n)
    weight: jax.Array  # (R,): 1 for a row, 0 for padding, draws in a bootstrap
    scale: jax.Array
    units: dict


def _loss(x, s: _Rows):
    params = Params(
        {k: v * s.units[k] for k, v in x.params.values.items()}, x.params.networks
    )
    state_of = np.asarray(s.state_of)
    n_states = len(s.scale)
    fs = jax.vmap(jax.vmap(s.system, in_axes=(0, 0, None)), in_axes=(0, 0, None))(
        s.ts, s.us, params
    )
    combined = jnp.einsum("rj,rjn->rn", s.coef, fs)
    err = jnp.sum(s.weight[:, None] * (combined - s.targets) ** 2, axis=0)
    per_state = jax.ops.segment_sum(err, state_of, n_states)
    sizes = np.bincount(state_of, minlength=n_states)
    terms = per_state / (jnp.sum(s.weight) * sizes) / s.scale
    return jnp.mean(terms), {name: terms[i] for i, name in enumerate(s.names)}


def windowed(problem: Problem, n_devices: int, *, owner: str) -> Problem:
    """`problem` (a derivative-matching fit) as one batch of rows, padded to
    a multiple of `n_devices`."""
    s = problem.static
    # Integral matching: per trajectory, (rows, nodes) quadrature weights.
    quadrature = getattr(s, "weights", ())
    taps = [(j, float(b)) for j, b in enumerate(s.beta) if b != 0]
    ts, us, coef, targets = [], [], [], []
    for k, (t, u, target) in enumerate(zip(s.ts, s.us, s.targets, strict=True)):
        t, u, target = np.asarray(t), np.asarray(u), np.asarray(target)
        rows = target.shape[0]
        if quadrature:
            w = np.asarray(quadrature[k])
            ts.append(t.reshape(rows, w.shape[1]))
            us.append(u.reshape(rows, w.shape[1], -1))
            coef.append(w)
        else:
            ts.append(np.stack([t[j : j + rows] for j, _ in taps], axis=1))
            us.append(np.stack([u[j : j + rows] for j, _ in taps], axis=1))
            coef.append(np.tile([b for _, b in taps], (rows, 1)))
        targets.append(target)
    ts, us, coef, targets = (np.concatenate(a) for a in (ts, us, coef, targets))
    count = ts.shape[0]
    pad = -count % n_devices
    weight = np.r_[np.ones(count), np.zeros(pad)]
    ts, us, coef, targets = (
        np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
        for a in (ts, us, coef, targets)
    )
    dtype = s.scale.dtype
    static = _Rows(
        s.system,
        s.state_of,
        s.names,
        jnp.asarray(ts, dtype),
        jnp.asarray(us, dtype),
        jnp.asarray(coef, dtype),
        jnp.asarray(targets, dtype),
        jnp.asarray(weight, dtype),
        s.scale,
        s.units,
    )
    real = weight > 0

    def result(x, history, static_now):
        return problem.result(x, history, s)

    def resample(static_now: _Rows, rng) -> _Rows:
        # Every row, of every trajectory, drawn with replacement.
        draws = np.bincount(rng.integers(0, count, count), minlength=count)
        new = np.zeros(real.shape)
        new[real] = draws
        return dataclasses.replace(static_now, weight=jnp.asarray(new, dtype))

    what = f"rows of `{owner}` (padded with rows of zero weight)"
    spec = dataclasses.replace(
        static,
        ts=Shard(what),
        us=Shard(what),
        coef=Shard(what),
        targets=Shard(what),
        weight=Shard(what),
        scale=None,
        units=None,
    )
    return dataclasses.replace(
        problem,
        loss=_loss,
        static=static,
        result=result,
        fingerprint=fingerprint(problem.fingerprint, "windowed", ts.shape[0]),
        shard=spec,
        relayout=None,
        resample=resample,
    )
