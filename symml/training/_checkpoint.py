"""Checkpoints: the whole state of a fit, written atomically, and resuming.

A checkpoint is two files written atomically, `step-<k>.eqx` (the arrays:
parameters, optimiser state, collocation points and weights, serialised with
`equinox.tree_serialise_leaves`) and `step-<k>.json` (the phase, the step, the
loss history, the host's random generator and a fingerprint of the problem),
and then a pointer `latest.json` naming them, replaced in one step. A fit killed
at any moment leaves the last complete checkpoint readable; resuming it gives
the same result, bit for bit, as a fit that was never interrupted.
"""

import hashlib
import io
import json
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._errors import FitError
from .._files import write_bytes, write_text
from ._loop import LoopState, Phase, Problem, _loss_dtype, _new_carry

FORMAT = 1


def fingerprint(*parts) -> str:
    """A short hash of the problem's description (model, data, options), so a
    checkpoint is never resumed into another problem."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(part.tobytes())
            digest.update(str(part.shape).encode())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()[:16]


def _directory(path) -> Path:
    try:
        path = Path(path)
    except TypeError:
        raise FitError(
            f"`checkpoint` must be a directory name; got {path!r}."
        ) from None
    if path.exists() and not path.is_dir():
        raise FitError(f"`checkpoint={str(path)!r}` is a file; give a directory.")
    return path


class Checkpointer:
    """Writes checkpoints of one fit into `directory`, keeping the last two."""

    def __init__(self, directory, problem: Problem, phases: list[Phase]):
        self.directory = _directory(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FitError(
                f"Cannot create the checkpoint directory `{self.directory}`: "
                f"{e.strerror}."
            ) from None
        self.problem = problem
        self.phases = phases
        self._written: list[str] = []

    def __call__(self, state: LoopState) -> None:
        stem = f"phase{state.phase}-step{state.step}"
        buffer = io.BytesIO()
        eqx.tree_serialise_leaves(buffer, (state.carry, state.static))
        write_bytes(self.directory / f"{stem}.eqx", buffer.getvalue(), error=FitError)
        rng = self.problem.rng
        meta = {
            "format": FORMAT,
            "fingerprint": self.problem.fingerprint,
            "phase": state.phase,
            "step": state.step,
            "history": {k: [float(v) for v in vs] for k, vs in state.history.items()},
            "rng": None if rng is None else rng.bit_generator.state,
            "arrays": f"{stem}.eqx",
        }
        write_text(self.directory / f"{stem}.json", json.dumps(meta), error=FitError)
        write_text(
            self.directory / "latest.json",
            json.dumps({"checkpoint": stem}),
            error=FitError,
        )
        self._written.append(stem)
        for old in self._written[:-2]:
            for suffix in (".eqx", ".json"):
                (self.directory / f"{old}{suffix}").unlink(missing_ok=True)
        self._written = self._written[-2:]


def load(directory, problem: Problem, phases: list[Phase]) -> LoopState:
    """The `LoopState` saved in `directory` for this problem; restores the
    host's random generator in place."""
    directory = _directory(directory)
    pointer = directory / "latest.json"
    if not pointer.is_file():
        raise FitError(
            f"`resume={str(directory)!r}` holds no checkpoint (no `latest.json`); "
            "pass a directory written by `fit(..., checkpoint=...)`."
        )
    try:
        stem = json.loads(pointer.read_text())["checkpoint"]
        meta = json.loads((directory / f"{stem}.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FitError(
            f"The checkpoint in `{directory}` is unreadable ({e}); it may be from "
            "an interrupted copy. Start the fit again without `resume=`."
        ) from None
    if meta.get("format") != FORMAT:
        raise FitError(
            f"The checkpoint in `{directory}` has format {meta.get('format')!r}; this"
            f" version of symml reads format {FORMAT}. Start the fit again."
        )
    if meta.get("fingerprint") != problem.fingerprint:
        raise FitError(
            f"The checkpoint in `{directory}` belongs to another fit (a different "
            "model, data, seed or options); resume with exactly the arguments of "
            "the fit that wrote it."
        )
    phase = int(meta["phase"])
    if not 0 <= phase < len(phases):
        raise FitError(
            f"The checkpoint in `{directory}` names phase {phase}, which "
            "this fit does not have."
        )
    import jax

    x_dynamic = eqx.filter(problem.trainable, eqx.is_array)
    template = (
        _new_carry(x_dynamic, phases[phase].optimizer, _loss_dtype(x_dynamic)),
        problem.static,
    )
    try:
        with open(directory / meta["arrays"], "rb") as f:
            carry, static = eqx.tree_deserialise_leaves(f, template)
    except (OSError, ValueError, RuntimeError) as e:
        raise FitError(
            f"The checkpoint arrays in `{directory}` are unreadable or truncated "
            f"({type(e).__name__}); start the fit again without `resume=`."
        ) from None
    carry = jax.tree.map(lambda a: jnp.asarray(a) if eqx.is_array(a) else a, carry)
    if meta.get("rng") is not None and problem.rng is not None:
        problem.rng.bit_generator.state = meta["rng"]
    return LoopState(
        phase=phase,
        step=int(meta["step"]),
        carry=carry,
        history={k: list(v) for k, v in meta["history"].items()},
        static=static,
    )
