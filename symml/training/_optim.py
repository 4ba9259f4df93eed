"""The optimisation loop shared by every kind of fit.

Each phase (Adam, L-BFGS, ...) runs jitted steps and checks on the host that
the loss and the gradient are finite after every step; a non-finite value
stops the fit with a [`FitError`][symml.FitError] that names the step and the
loss term that went bad and carries the last good parameters.
"""

from collections.abc import Callable
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._errors import FitError
from ._progress import Progress


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
      steps falls below it (L-BFGS only; `0` disables).
    """

    name: str
    optimizer: optax.GradientTransformation
    steps: int
    line_search: bool = False
    tolerance: float = 0.0


def adam(steps: int, learning_rate: float = 3e-3, clip: float | None = 10.0) -> Phase:
    """Adam with global-norm gradient clipping (a safe first phase)."""
    opt = optax.adam(learning_rate)
    if clip is not None:
        opt = optax.chain(optax.clip_by_global_norm(clip), opt)
    return Phase("adam", opt, steps)


def lbfgs(steps: int, memory_size: int = 20, tolerance: float = 1e-10) -> Phase:
    """optax's L-BFGS with a zoom line search (a fast second phase)."""
    return Phase(
        "lbfgs",
        optax.lbfgs(memory_size=memory_size),
        steps,
        line_search=True,
        tolerance=tolerance,
    )


def _strongly_typed(tree):
    """`tree` with every array's weak type made strong.

    `opt.init` and parameters made from Python numbers hold weakly typed
    arrays; a step's outputs are strongly typed, so without this the jitted
    step compiles twice, once for each (an L-BFGS step around an ODE solve
    takes 30 s to compile on 2 cores).
    """
    return jax.tree.map(
        lambda a: jnp.asarray(a, a.dtype) if eqx.is_array(a) else a, tree
    )


def _describe(terms: dict) -> str:
    bad = [k for k, v in terms.items() if not np.all(np.isfinite(np.asarray(v)))]
    if bad:
        return "the term(s) " + ", ".join(f"`{k}`" for k in bad) + " went non-finite"
    return "every loss term was finite but the gradient was not"


def run_phases(
    loss_fn: Callable,
    trainable,
    static,
    phases: list[Phase],
    *,
    progress: Progress,
    on_failure: Callable,
    update: Callable | None = None,
    start: dict | None = None,
):
    """Run each phase in turn on `loss_fn(trainable, static) -> (loss, terms)`.

    `static` is passed to the jitted steps as an argument: its arrays (data,
    collocation points, loss weights) can change between steps without
    recompiling. `update(phase, step, trainable, static) -> static`, if given,
    is called before every step of a phase without line search (resampling,
    adaptive weights); phases with a line search see a fixed loss.

    **Returns:** `(trainable, history)` with `history = {phase name: losses}`.
    """
    history = dict(start or {})
    for phase in phases:
        if phase.steps <= 0:
            continue
        opt = phase.optimizer
        trainable = _strongly_typed(trainable)
        state = _strongly_typed(opt.init(trainable))
        losses = list(history.get(phase.name, []))

        if phase.line_search:

            @eqx.filter_jit
            def step(x, state, static, opt=opt):
                def value(y):
                    return loss_fn(y, static)[0]

                loss, grad = optax.value_and_grad_from_state(value)(x, state=state)
                updates, state = opt.update(
                    grad, state, x, value=loss, grad=grad, value_fn=value
                )
                ok = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grad))
                return optax.apply_updates(x, updates), state, loss, {}, ok

        else:

            @eqx.filter_jit
            def step(x, state, static, opt=opt):
                (loss, terms), grad = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
                    x, static
                )
                updates, state = opt.update(grad, state, x)
                ok = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grad))
                return optax.apply_updates(x, updates), state, loss, terms, ok

        for i in range(phase.steps):
            if update is not None and not phase.line_search:
                static = update(phase.name, i, trainable, static)
            new, new_state, loss, terms, ok = step(trainable, state, static)
            loss = float(loss)
            if not bool(ok):
                if not terms:
                    terms = loss_fn(trainable, static)[1]
                history[phase.name] = np.asarray(losses)
                progress.close()
                raise on_failure(
                    FitError(
                        f"The fit went non-finite at step {i} of the `{phase.name}` "
                        f"phase (loss {loss}): {_describe(terms)}. The parameters "
                        "before that step are kept in `error.result`. Try a smaller "
                        "learning rate, tighter solver tolerances or an implicit "
                        "solver for a stiff model."
                    ),
                    trainable,
                    history,
                )
            losses.append(loss)
            trainable, state = new, new_state
            progress.update(phase.name, i + 1, phase.steps, loss)
            if (
                phase.tolerance
                and len(losses) > 10
                and abs(losses[-11] - loss) <= phase.tolerance * max(abs(loss), 1e-30)
            ):
                break
        history[phase.name] = np.asarray(losses)
    progress.close()
    return trainable, history
