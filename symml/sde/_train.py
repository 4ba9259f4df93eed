"""Adam in compiled chunks, for losses that draw a fresh sample every step.

The loss has the shape every symml fit uses, `loss_fn(trainable, static) ->
(loss, {term: value})`; `static.key` is replaced by `fold_in(key, step)`
before each step, so each step sees new paths (or a new minibatch) while the
loss stays a pure function of its arguments. A chunk of steps runs inside one
`lax.scan`: no Python work per step.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from .._errors import FitError


def learning_rate_schedule(learning_rate, steps: int):
    """A number or an optax schedule as given; `None` is the default: cosine
    decay from 1e-2 to 1e-4 over `steps`, large steps while far from the
    solution, then small ones so that the estimate settles instead of
    jittering with each sample."""
    if learning_rate is None:
        return optax.cosine_decay_schedule(1e-2, max(steps, 1), alpha=1e-2)
    if callable(learning_rate):
        return learning_rate
    return float(learning_rate)


def train(
    loss_fn: Callable,
    trainable,
    static,
    *,
    steps: int,
    learning_rate=None,
    chunk: int = 100,
    watch: Callable | None = None,
    callback: Callable | None = None,
    what: str = "loss",
):
    """Minimise `loss_fn` with Adam, `chunk` steps per compiled call.

    **Arguments:**

    - `loss_fn`, `trainable`, `static`: as above; `static` must have a `key`.
    - `steps`, `learning_rate`: see
      [`learning_rate_schedule`][symml.sde._train.learning_rate_schedule].
    - `watch`: `watch(trainable) -> scalar` recorded at every step (e.g. the
      estimate of u(0, x0)).
    - `callback`: called as `callback(step, loss, watched)` after each chunk.
    - `what`: the name of the loss in error messages.

    **Returns:** `(trainable, {"loss": losses, "watch": watched})`.

    **Raises:** [`FitError`][symml.FitError] naming the step and the loss
    terms if the loss goes non-finite; the parameters are those of the last
    good chunk.
    """
    optimizer = optax.adam(learning_rate_schedule(learning_rate, steps))
    state = optimizer.init(eqx.filter(trainable, eqx.is_inexact_array))
    base_key = static.key
    watch = (lambda p: jnp.zeros(())) if watch is None else watch

    @eqx.filter_jit
    def run(params, state, first, n):
        def body(carry, i):
            params, state = carry
            s = eqx.tree_at(lambda s: s.key, static, jr.fold_in(base_key, i))
            (loss, terms), grad = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
                params, s
            )
            updates, state = optimizer.update(grad, state, params)
            params = eqx.apply_updates(params, updates)
            return (params, state), (loss, terms, watch(params))

        (params, state), (losses, terms, watched) = jax.lax.scan(
            body, (params, state), first + jnp.arange(n)
        )
        return params, state, losses, terms, watched

    chunk = max(1, min(int(chunk), steps))
    losses, watched = [], []
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        # `done` as an array: a Python int would be static and recompile.
        new, new_state, loss, terms, seen = run(trainable, state, jnp.asarray(done), n)
        loss = np.asarray(loss)
        bad = ~np.isfinite(loss)
        if bad.any():
            i = int(np.argmax(bad))
            names = [k for k, v in terms.items() if not np.isfinite(np.asarray(v)[i])]
            raise FitError(
                f"The {what} went non-finite at step {done + i} (term(s) "
                f"{', '.join(f'`{k}`' for k in names) or 'none: the gradient'}). "
                "Try a smaller learning rate."
            )
        losses.append(loss)
        watched.append(np.asarray(seen))
        trainable, state = new, new_state
        done += n
        if callback is not None:
            callback(done, float(loss[-1]), float(watched[-1][-1]))
    return trainable, {"loss": np.concatenate(losses), "watch": np.concatenate(watched)}
