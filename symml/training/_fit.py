"""`fit`: train a model's unknown terms and trainable parameters."""

import math
import time
from typing import Any

import numpy as np

from .._errors import FitError
from ..dsl import FieldModel, Model, ODEModel, PDEModel
from ..lowering import AbstractSystem
from ..lowering._params import check_dtype
from ._checkpoint import Checkpointer, check_checkpointing, load
from ._collocation import Collocation, CollocationThenSolve
from ._loop import Phase, optimize
from ._method import AbstractFitMethod
from ._multistep import Multistep
from ._pinn import PhysicsInformed
from ._progress import Progress
from ._result import FitResult
from ._shard import check_mesh, for_mesh
from ._ude import SolveInLoop

# (model or system class, data class or None, method factory): the method
# `fit` uses when none is given; the first entry that matches wins.
_DEFAULT_METHODS: list[tuple[type, type | None, Any]] = [
    (ODEModel, object, SolveInLoop),
    (AbstractSystem, object, SolveInLoop),
    (FieldModel, type(None), PhysicsInformed),
]
_METHODS: dict[str, type[AbstractFitMethod]] = {
    "solve": SolveInLoop,
    "pinn": PhysicsInformed,
    "collocation": Collocation,
    "multistep": Multistep,
    "collocation+solve": CollocationThenSolve,
}


def register_fit_method(
    target: type, data: type | None, method: type[AbstractFitMethod], name=None
) -> None:
    """Make `method` the default of `fit` for models (or systems) of class
    `target` with data of class `data` (`None`: no data), and, with `name`,
    available as `fit(..., method=name)`."""
    if not (isinstance(method, type) and issubclass(method, AbstractFitMethod)):
        raise FitError(
            f"`method` must be a subclass of `AbstractFitMethod`; got {method!r}."
        )
    _DEFAULT_METHODS.insert(0, (target, type(None) if data is None else data, method))
    if name is not None:
        _METHODS[name] = method


def _method_for(target, data, method) -> AbstractFitMethod:
    if isinstance(method, AbstractFitMethod):
        return method
    if isinstance(method, str):
        if method not in _METHODS:
            raise FitError(
                f"`method={method!r}` is not known; use one of "
                f"{', '.join(map(repr, _METHODS))} or a method object such as "
                "`symml.SolveInLoop(...)`."
            )
        return _METHODS[method]()
    if method is not None:
        raise FitError(
            f"`method` must be a fit method such as `symml.SolveInLoop(...)` or "
            f"`symml.PhysicsInformed(...)`, or its name; got {method!r}."
        )
    for target_cls, data_cls, factory in _DEFAULT_METHODS:
        if isinstance(target, target_cls) and isinstance(data, data_cls):
            return factory()
    if isinstance(target, PDEModel):
        raise FitError(
            "A PDE model with states is fitted by the method of lines: discretise "
            "it first, `symml.fit(symml.discretize(model, {x: 64}), data)`."
        )
    if isinstance(target, FieldModel):
        raise FitError(
            "Physics-informed fits train on the model's residuals and conditions; "
            "observations of fields are not supported yet. Leave out `data`."
        )
    if isinstance(target, Model | AbstractSystem):
        raise FitError(
            f"No fit method takes {getattr(target, '_kind', type(target).__name__)} "
            f"with data of type {type(data).__name__}; pass `method=`."
        )
    raise FitError(
        f"`fit` needs a symml `Model` or a lowered system (such as a "
        f"`DiscretizedModel`); got {type(target).__name__}."
    )


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise FitError(
            f"`seed` must be an integer in [0, 2**32); got {seed!r} of type "
            f"{type(seed).__name__}."
        )
    if not 0 <= int(seed) < 2**32:
        raise FitError(f"`seed` must be an integer in [0, 2**32); got {seed}.")
    return int(seed)


def _unknown_options(unknown: dict, method: AbstractFitMethod) -> FitError:
    names = sorted(unknown)
    owners = {}
    for name in names:
        for cls in (SolveInLoop, PhysicsInformed, *_METHODS.values()):
            if name in cls.options():
                owners.setdefault(name, cls.name)
                break
    if owners:
        name, owner = next(iter(owners.items()))
        return FitError(
            f"`{name}` is an option of the `{owner}` fit method, not of `fit`: pass "
            f"`method=symml.{owner}({name}=...)`."
        )
    valid = ", ".join(f"`{n}`" for n in _FIT_OPTIONS)
    return FitError(
        f"`fit` got unknown option(s) {', '.join(f'`{n}`' for n in names)}. Its "
        f"options are {valid}; the options of `{type(method).__name__}` are "
        f"{', '.join(f'`{n}`' for n in method.options())} (pass them in `method=`)."
    )


def _resolve_phases(
    method: AbstractFitMethod, phases, steps, learning_rate, lbfgs_steps
) -> list[Phase]:
    """The phases of a fit: `phases=` as given (checked), or the method's own
    from `steps`, `learning_rate` and `lbfgs_steps` (checked by the caller)."""
    if phases is None:
        return method.phases(steps, learning_rate, lbfgs_steps)
    if steps is not None or learning_rate is not None or lbfgs_steps is not None:
        raise FitError(
            "Give either `phases=` or `steps=`/`learning_rate=`/`lbfgs_steps=`, "
            "not both."
        )
    if not isinstance(phases, list | tuple) or not phases:
        raise FitError(
            "`phases` must be a non-empty list of phases such as "
            f"`[symml.adam(1000), symml.lbfgs(500)]`; got {phases!r}."
        )
    for i, p in enumerate(phases):
        if not isinstance(p, Phase):
            raise FitError(
                f"`phases` must be a list of `symml.adam(...)`/`symml.lbfgs(...)` "
                f"phases; item {i} is {type(p).__name__}."
            )
    return list(phases)


def _check_optimisation(steps, learning_rate, lbfgs_steps) -> None:
    """`fit`'s own shortcuts for the Adam and L-BFGS phases, checked under
    their own names (the phases would name their `steps`)."""
    for name, value in (("steps", steps), ("lbfgs_steps", lbfgs_steps)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or value < 0
        ):
            raise FitError(f"`{name}` must be an integer >= 0; got {value!r}.")
    if learning_rate is not None:
        try:
            rate = float(learning_rate)
        except (TypeError, ValueError):
            rate = math.nan
        if isinstance(learning_rate, bool) or not math.isfinite(rate) or rate <= 0:
            raise FitError(
                "`learning_rate` must be a finite positive number such as 1e-3; got "
                f"{learning_rate!r}."
            )


_FIT_OPTIONS = (
    "method",
    "seed",
    "steps",
    "learning_rate",
    "lbfgs_steps",
    "phases",
    "dtype",
    "init",
    "checkpoint",
    "checkpoint_every",
    "resume",
    "progress",
    "mesh",
)


def fit(
    model: Model | AbstractSystem,
    data=None,
    *,
    method: AbstractFitMethod | str | None = None,
    seed: int = 0,
    steps: int | None = None,
    learning_rate: float | None = None,
    lbfgs_steps: int | None = None,
    phases: list[Phase] | None = None,
    dtype=None,
    init: FitResult | None = None,
    checkpoint=None,
    checkpoint_every: int | None = None,
    resume=None,
    progress: bool | None = None,
    mesh=None,
    **unknown,
) -> FitResult:
    """Train a model's unknown terms and trainable parameters.

    **Arguments:**

    - `model`: an [`ODEModel`][symml.ODEModel] (fitted as a universal
      differential equation, with an ODE solve inside the loss), a lowered
      system such as a [`DiscretizedModel`][symml.DiscretizedModel] (a PDE by
      the method of lines, fitted the same way), or a
      [`FieldModel`][symml.FieldModel] (a physics-informed network, trained on
      its residuals).
    - `data`: a [`Data`][symml.Data] or a list of them (one per trajectory);
      none for a physics-informed fit.
    - `method`: how to fit, with its options: [`SolveInLoop`][symml.SolveInLoop]
      (the default with data: solver, tolerances, multiple shooting,
      penalties, initial states) or
      [`PhysicsInformed`][symml.PhysicsInformed] (the default for field
      models: derivative scheme, collocation points, weights),
      [`Collocation`][symml.Collocation] and
      [`Multistep`][symml.Multistep] (no solve: derivatives estimated from
      the data, or a multistep formula on them),
      [`CollocationThenSolve`][symml.CollocationThenSolve] (collocation, then
      the solve in the loop from its result); or a name (`"solve"`, `"pinn"`,
      `"collocation"`, `"multistep"`, `"collocation+solve"`).
    - `seed`: seeds the networks' initial weights and any sampling; the same
      seed gives the same result on the same machine.
    - `steps`, `learning_rate`: the Adam phase; `lbfgs_steps`: the L-BFGS
      phase that follows (defaults depend on the method).
      `phases=[symml.adam(...), symml.lbfgs(...)]` replaces all three.
    - `dtype`: the parameters' dtype (default: JAX's default float).
    - `init`: a previous fit result of the same model to start from (its
      parameters and initial states).
    - `checkpoint`: a directory to write the fit's whole state to every
      `checkpoint_every` steps (atomically; the last two are kept).
    - `resume`: a checkpoint directory to continue from; the result is the
      same, bit for bit, as an uninterrupted fit with the same arguments.
    - `progress`: show a progress line (default: only on a terminal).
    - `mesh`: split the data over several devices (data parallelism): a
      `jax.sharding.Mesh` (its devices, in all its axes, share the data), or
      `True` for every device (`jax.devices()`, of every process under
      `jax.distributed`). The parameters are replicated and XLA reduces the
      gradient; the collocation, boundary and observation points of a
      physics-informed fit, the trajectories × shooting segments of a
      solve in the loop and the rows of a collocation or multistep fit are
      what is split; a discretised PDE's grid is split along its first
      spatial axis instead (domain decomposition). The number of points (of
      solves, of grid points along that axis) must be a multiple of the
      number of devices (observations and rows are padded with zero
      weight). The result is that of the same fit on one
      device, to the rounding of the reductions. See the
      [scaling guide](../scaling.md).

    **Returns:** a [`FitResult`][symml.FitResult]: a
    [`UDEResult`][symml.UDEResult] or a [`PINNResult`][symml.PINNResult].

    **Raises:** [`FitError`][symml.FitError] for a bad option, and when the
    loss goes non-finite: `error.result` then holds the last good parameters.
    """
    if not isinstance(model, Model | AbstractSystem):
        raise FitError(
            f"`fit` needs a symml `Model` or a lowered system (such as a "
            f"`DiscretizedModel`); got {type(model).__name__}."
        )
    chosen = _method_for(model, data, method)
    if unknown:
        raise _unknown_options(unknown, chosen)
    seed = _check_seed(seed)
    dtype = check_dtype(dtype, "fit", FitError)
    _check_optimisation(steps, learning_rate, lbfgs_steps)
    mesh = check_mesh(mesh)
    if progress is not None and not isinstance(progress, bool):
        raise FitError(
            f"`progress` must be True, False or None (shown on a terminal only); "
            f"got {progress!r}."
        )
    if init is not None:
        if not isinstance(init, FitResult):
            raise FitError(
                f"`init` must be a previous fit result; got {type(init).__name__}."
            )
        if init.model is not getattr(model, "model", model):
            raise FitError(
                "`init` is a fit of another model; start from a fit of this model "
                "(the same `Model` object)."
            )
    phases = _resolve_phases(chosen, phases, steps, learning_rate, lbfgs_steps)
    checkpoint_every = check_checkpointing(checkpoint, checkpoint_every, resume)
    # The clock starts before `prepare`: a method may fit in it (the
    # collocation stage of `"collocation+solve"`).
    start = time.perf_counter()
    problem = chosen.prepare(model, data, seed=seed, dtype=dtype, init=init)
    if mesh is not None:
        problem = for_mesh(problem, mesh, chosen.name)
    state = load(resume, problem, phases) if resume is not None else None
    writer = (
        Checkpointer(checkpoint, problem, phases) if checkpoint is not None else None
    )
    trainable, history, static = optimize(
        problem,
        phases,
        progress=Progress(progress),
        checkpoint=writer,
        checkpoint_every=checkpoint_every,
        state=state,
        mesh=mesh,
    )
    result = problem.result(trainable, history, static)
    return result._with_time(time.perf_counter() - start)
