"""Ensembles: many fits of one model, stepping side by side.

Each member is the fit `fit(model, data, seed=s)` would run: its method
prepares it from its own seed (initial weights, collocation points) and,
with `bootstrap=True`, from its own resample of the data. The members'
arrays are stacked along a leading axis and the shared loop `vmap`s one
step over them (`Problem.members`); each member keeps its own optimiser
state, convergence and failure. On a mesh the members are split over the
devices, each device stepping its own with no communication.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from .._errors import FitError
from ..dsl import Model
from ..lowering import AbstractSystem
from ..lowering._params import check_dtype
from ._checkpoint import (
    FORMAT,
    CheckpointFiles,
    Reader,
    check_checkpointing,
    check_meta,
    fingerprint,
    read_arrays,
    read_meta,
)
from ._fit import _check_optimisation, _check_seed, _method_for, _resolve_phases
from ._loop import LoopState, Phase, Problem, _loss_dtype, _new_members, optimize
from ._method import AbstractFitMethod
from ._progress import Progress
from ._result import FitResult
from ._shard import check_mesh, mesh_size, to_default_device

# Seeds the bootstrap's draws apart from everything else a seed drives.
_BOOTSTRAP = 19


@dataclass(frozen=True, eq=False)
class EnsembleResult:
    """The members of an ensemble fit.

    **Attributes:**

    - `results`: one [`FitResult`][symml.FitResult] per member, in the order
      of `seeds` (each the same as `fit(..., seed=s)` would return, to float
      rounding, without `bootstrap`).
    - `seeds`: the members' seeds.
    - `failures`: `{member index: message}` for members whose loss went
      non-finite; they hold their last good parameters and are left out of
      `succeeded`.
    - `bootstrap`: whether each member fitted its own resample of the data.
    - `wall_time`: seconds spent fitting the whole ensemble.

    `len(ensemble)`, `ensemble[k]` and iteration go over `results`.
    """

    results: tuple
    seeds: tuple
    failures: dict = field(default_factory=dict)
    bootstrap: bool = False
    wall_time: float = 0.0

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, k) -> FitResult:
        return self.results[k]

    def __iter__(self):
        return iter(self.results)

    @property
    def succeeded(self) -> tuple:
        """The results of the members that did not fail."""
        return tuple(r for k, r in enumerate(self.results) if k not in self.failures)

    @property
    def final_losses(self) -> np.ndarray:
        """Each member's loss at its parameters."""
        return np.array([r.final_loss for r in self.results])

    def parameter_values(self) -> dict[sp.Symbol, np.ndarray]:
        """`{symbol: values}`: each trainable parameter over the members that
        did not fail (their spread is an error bar)."""
        rows = [r.parameter_values() for r in self.succeeded]
        if not rows:
            return {}
        return {p: np.array([row[p] for row in rows]) for p in rows[0]}

    def __repr__(self) -> str:
        losses = self.final_losses
        ok = [k for k in range(len(self)) if k not in self.failures]
        spread = (
            f", final loss median {np.median(losses[ok]):.3g}"
            if ok and np.all(np.isfinite(losses[ok]))
            else ""
        )
        return (
            f"EnsembleResult({len(self)} members, {len(self.failures)} failed"
            f"{', bootstrap' if self.bootstrap else ''}{spread})"
        )


def _check_seeds(seeds) -> tuple[int, ...]:
    if isinstance(seeds, int | np.integer) or not isinstance(seeds, Iterable):
        raise FitError(
            f"`seeds` must be a list of integers, one per member, such as "
            f"`range(32)`; got {seeds!r}."
        )
    out = tuple(_check_seed(s) for s in seeds)
    if not out:
        raise FitError("`seeds` is empty; give one seed per member.")
    if len(set(out)) != len(out):
        raise FitError(
            "`seeds` repeats a seed, which would fit the same member twice; give "
            "distinct seeds."
        )
    return out


def _stack(trees: list, what: str):
    """One pytree with every array leaf stacked along a new leading axis (the
    structure and the non-array leaves of the first)."""
    first, treedef = jax.tree.flatten(trees[0])
    columns = [jax.tree.leaves(t) for t in trees]
    if any(len(c) != len(first) for c in columns):
        raise FitError(
            f"The members' {what} differ in structure, so they cannot step side by "
            "side; a fit method's layout must not depend on the seed."
        )
    out = []
    for i, leaf in enumerate(first):
        if not eqx.is_array(leaf):
            out.append(leaf)
            continue
        column = [c[i] for c in columns]
        if any(a.shape != leaf.shape for a in column):
            raise FitError(
                f"The members' {what} differ in shape, so they cannot step side by "
                "side; a fit method's layout must not depend on the seed."
            )
        out.append(jnp.stack(column))
    return jax.tree.unflatten(treedef, out)


def _member(tree, k: int):
    return jax.tree.map(lambda a: a[k] if eqx.is_array(a) else a, tree)


def _between(problems: list[Problem]):
    """The host's work between chunks, member by member (each with its own
    random generator)."""

    def between(phase, step, x, static):
        x, static = to_default_device((x, static))
        updated = [
            p.between(phase, step, _member(x, k), _member(static, k))
            for k, p in enumerate(problems)
        ]
        return _stack(updated, "resampled arrays")

    return between


class _EnsembleCheckpointer:
    """Writes checkpoints of an ensemble as `fit` does (`_checkpoint.py`),
    with each member's history, the failed members and each member's host
    random generator."""

    def __init__(self, directory, problem: Problem, problems: list[Problem]):
        self.files = CheckpointFiles(directory)
        self.problem = problem
        self.problems = problems

    def __call__(self, state: LoopState) -> None:
        self.files.write(
            state,
            {
                "fingerprint": self.problem.fingerprint,
                "members": len(self.problems),
                "history": {
                    k: [[float(v) for v in per] for per in vs]
                    for k, vs in state.history.items()
                },
                "failures": {str(k): m for k, m in state.failures.items()},
                "rng": [
                    None if p.rng is None else p.rng.bit_generator.state
                    for p in self.problems
                ],
            },
        )


_ENSEMBLE = Reader(
    "ensemble", "fit_ensemble", "a different model, data, seeds, bootstrap or options"
)


def _load(directory, problem: Problem, problems: list[Problem], phases) -> LoopState:
    """The `LoopState` of an ensemble saved in `directory`; restores each
    member's host random generator in place."""
    directory, meta = read_meta(directory, _ENSEMBLE)
    if meta.get("format") != FORMAT or "members" not in meta:
        raise FitError(
            f"The checkpoint in `{directory}` is not an ensemble's of format "
            f"{FORMAT} (a single fit's is resumed by `fit(..., resume=...)`); "
            "start the ensemble again."
        )
    phase = check_meta(directory, meta, problem, phases, _ENSEMBLE)
    x_dynamic = eqx.filter(problem.trainable, eqx.is_array)
    template = (
        _new_members(None, x_dynamic, phases[phase].optimizer, _loss_dtype(x_dynamic)),
        problem.static,
    )
    carry, static = read_arrays(directory, meta, template, _ENSEMBLE)
    for p, state in zip(problems, meta["rng"], strict=True):
        if state is not None and p.rng is not None:
            p.rng.bit_generator.state = state
    return LoopState(
        phase=phase,
        step=int(meta["step"]),
        carry=carry,
        history={k: [list(per) for per in v] for k, v in meta["history"].items()},
        static=static,
        failures={int(k): m for k, m in meta["failures"].items()},
    )


def fit_ensemble(
    model: Model | AbstractSystem,
    data=None,
    *,
    seeds: Iterable[int] = range(8),
    bootstrap: bool = False,
    method: AbstractFitMethod | str | None = None,
    steps: int | None = None,
    learning_rate: float | None = None,
    lbfgs_steps: int | None = None,
    phases: list[Phase] | None = None,
    dtype=None,
    mesh=None,
    checkpoint=None,
    checkpoint_every: int | None = None,
    resume=None,
    progress: bool | None = None,
) -> EnsembleResult:
    """Fit an ensemble: one member per seed, all stepping side by side in one
    compiled loop (`vmap`), optionally each on its own bootstrap resample of
    the data, and split over the devices of a mesh.

    **Arguments:**

    - `model`, `data`, `method`, `steps`, `learning_rate`, `lbfgs_steps`,
      `phases`, `dtype`, `progress`: as for [`fit`][symml.fit].
    - `seeds`: one seed per member (distinct integers); each member starts as
      `fit(..., seed=s)` does (its initial weights, its collocation points).
    - `bootstrap`: `True` to fit each member to a case resample of the data
      (observations drawn with replacement, seeded by the member's seed): the
      spread of the members is then an error bar of the fit. For a solve in
      the loop the observation rows of all trajectories are resampled; for a
      physics-informed fit, the observed points of each data set.
    - `mesh`: a `jax.sharding.Mesh` (or `True` for every device) to split the
      members over; their number must be a multiple of the number of devices.
    - `checkpoint`, `checkpoint_every`, `resume`: as for [`fit`][symml.fit]:
      the whole ensemble's state (every member's parameters, optimiser state,
      history, failure and random generator) written atomically to a
      directory every `checkpoint_every` steps, by process 0 only; resuming
      gives the same members, bit for bit, as an uninterrupted ensemble with
      the same arguments.

    **Returns:** an [`EnsembleResult`][symml.EnsembleResult]: a result per
    member, and which members failed (a member whose loss goes non-finite
    stops with its last good parameters; the others go on).

    **Raises:** [`FitError`][symml.FitError] for a bad option, or when no
    member could take a single finite step.
    """
    if not isinstance(model, Model | AbstractSystem):
        raise FitError(
            f"`fit_ensemble` needs a symml `Model` or a lowered system (such as a "
            f"`DiscretizedModel`); got {type(model).__name__}."
        )
    if not isinstance(bootstrap, bool):
        raise FitError(f"`bootstrap` must be True or False; got {bootstrap!r}.")
    seeds = _check_seeds(seeds)
    chosen = _method_for(model, data, method)
    _check_optimisation(steps, learning_rate, lbfgs_steps)
    phases = _resolve_phases(chosen, phases, steps, learning_rate, lbfgs_steps)
    dtype = check_dtype(dtype, "fit_ensemble", FitError)
    mesh = check_mesh(mesh, "fit_ensemble")
    checkpoint_every = check_checkpointing(
        checkpoint, checkpoint_every, resume, "ensemble"
    )
    if mesh is not None and len(seeds) % mesh_size(mesh):
        n = mesh_size(mesh)
        raise FitError(
            f"The {len(seeds)} members (`seeds`) do not split evenly over the {n} "
            f"devices of `mesh`; use a multiple of {n} members, such as "
            f"{-(-len(seeds) // n) * n}."
        )
    start = time.perf_counter()
    problems = []
    for seed in seeds:
        problem = chosen.prepare(model, data, seed=seed, dtype=dtype, init=None)
        if bootstrap:
            if problem.resample is None and problem.relayout is not None:
                problem = problem.relayout(1)
            if problem.resample is None:
                raise FitError(
                    f"The `{chosen.name}` fit method cannot resample its data, so "
                    "`bootstrap=True` is not available with it; leave it out to "
                    "fit an ensemble over seeds."
                )
            rng = np.random.default_rng([seed, _BOOTSTRAP])
            problem = replace(problem, static=problem.resample(problem.static, rng))
        problems.append(problem)
    first = problems[0]
    stacked = Problem(
        loss=first.loss,
        trainable=_stack([p.trainable for p in problems], "parameters"),
        static=_stack([p.static for p in problems], "data"),
        result=first.result,
        between=_between(problems) if first.between is not None else None,
        period=first.period,
        members=len(problems),
        fingerprint=fingerprint(
            "ensemble", bootstrap, *[p.fingerprint for p in problems]
        ),
    )
    state = _load(resume, stacked, problems, phases) if resume is not None else None
    writer = (
        _EnsembleCheckpointer(checkpoint, stacked, problems)
        if checkpoint is not None
        else None
    )
    trainable, (histories, failures), static = optimize(
        stacked,
        phases,
        progress=Progress(progress),
        checkpoint=writer,
        checkpoint_every=checkpoint_every,
        state=state,
        mesh=mesh,
    )
    if len(failures) == len(problems) and not any(
        len(h) for hist in histories for h in hist.values()
    ):
        raise FitError(
            "The loss of every member is non-finite at its initial parameters; "
            "check the data and the model's parameter values."
        )
    elapsed = time.perf_counter() - start
    results = tuple(
        p.result(_member(trainable, k), histories[k], _member(static, k))._with_time(
            elapsed
        )
        for k, p in enumerate(problems)
    )
    return EnsembleResult(
        results=results,
        seeds=seeds,
        failures=dict(sorted(failures.items())),
        bootstrap=bootstrap,
        wall_time=elapsed,
    )
