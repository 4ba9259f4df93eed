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
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._errors import FitError
from .._files import write_bytes, write_text
from ._checks import positive_integer
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


def check_checkpointing(checkpoint, checkpoint_every, resume, what: str = "fit"):
    """`checkpoint`, `checkpoint_every` and `resume` of `fit` (or of what
    `what` names); returns `checkpoint_every` with its default."""
    if checkpoint_every is not None and checkpoint is None:
        raise FitError("`checkpoint_every` needs `checkpoint=` (a directory).")
    if checkpoint is not None:
        if checkpoint_every is None:
            checkpoint_every = 100
        checkpoint_every = positive_integer(checkpoint_every, "checkpoint_every", what)
    if resume is not None and checkpoint_every is None:
        raise FitError(
            f"`resume` needs the `checkpoint=` and `checkpoint_every=` of the {what} "
            "that wrote it, so the steps line up exactly."
        )
    return checkpoint_every


class CheckpointFiles:
    """A checkpoint directory (created): each checkpoint's arrays, then its
    metadata, then the pointer `latest.json`, each written atomically; the
    last two checkpoints kept."""

    def __init__(self, directory):
        self.directory = _directory(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FitError(
                f"Cannot create the checkpoint directory `{self.directory}`: "
                f"{e.strerror}."
            ) from None
        self._written: list[str] = []

    def write(self, state: LoopState, meta: dict) -> None:
        """Write `state`'s carry and static arrays with `meta` (the format,
        phase, step and arrays' file name added)."""
        stem = f"phase{state.phase}-step{state.step}"
        buffer = io.BytesIO()
        eqx.tree_serialise_leaves(buffer, (state.carry, state.static))
        write_bytes(self.directory / f"{stem}.eqx", buffer.getvalue(), error=FitError)
        meta = {
            "format": FORMAT,
            "phase": state.phase,
            "step": state.step,
            **meta,
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


class Checkpointer:
    """Writes checkpoints of one fit into `directory`, keeping the last two."""

    def __init__(self, directory, problem: Problem, phases: list[Phase]):
        self.files = CheckpointFiles(directory)
        self.directory = self.files.directory
        self.problem = problem
        self.phases = phases

    def __call__(self, state: LoopState) -> None:
        rng = self.problem.rng
        self.files.write(
            state,
            {
                "fingerprint": self.problem.fingerprint,
                "history": {
                    k: [float(v) for v in vs] for k, vs in state.history.items()
                },
                "rng": None if rng is None else rng.bit_generator.state,
            },
        )


@dataclass(frozen=True)
class Reader:
    """Who reads a checkpoint, for the messages: `what` ("fit"), the call
    that writes one (`fit`) and what its fingerprint covers."""

    what: str
    call: str
    covers: str


FIT = Reader("fit", "fit", "a different model, data, seed or options")


def read_meta(directory, reader: Reader = FIT) -> tuple[Path, dict]:
    """The checkpoint directory and the metadata of its latest checkpoint."""
    directory = _directory(directory)
    pointer = directory / "latest.json"
    if not pointer.is_file():
        raise FitError(
            f"`resume={str(directory)!r}` holds no checkpoint (no `latest.json`); "
            f"pass a directory written by `{reader.call}(..., checkpoint=...)`."
        )
    try:
        stem = json.loads(pointer.read_text())["checkpoint"]
        meta = json.loads((directory / f"{stem}.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FitError(
            f"The checkpoint in `{directory}` is unreadable ({e}); it may be from "
            f"an interrupted copy. Start the {reader.what} again without `resume=`."
        ) from None
    return directory, meta


def check_meta(
    directory: Path, meta: dict, problem: Problem, phases, reader: Reader = FIT
) -> int:
    """The checkpoint's phase, once its fingerprint is `problem`'s."""
    if meta.get("fingerprint") != problem.fingerprint:
        raise FitError(
            f"The checkpoint in `{directory}` belongs to another {reader.what} "
            f"({reader.covers}); resume with exactly the arguments of the "
            f"{reader.what} that wrote it."
        )
    phase = int(meta["phase"])
    if not 0 <= phase < len(phases):
        raise FitError(
            f"The checkpoint in `{directory}` names phase {phase}, which "
            f"this {reader.what} does not have."
        )
    return phase


def read_arrays(directory: Path, meta: dict, template, reader: Reader = FIT):
    """The checkpoint's `(carry, static)`, shaped as `template`, with every
    array a JAX array."""
    import jax

    try:
        with open(directory / meta["arrays"], "rb") as f:
            carry, static = eqx.tree_deserialise_leaves(f, template)
    except (OSError, ValueError, RuntimeError) as e:
        raise FitError(
            f"The checkpoint arrays in `{directory}` are unreadable or truncated "
            f"({type(e).__name__}); start the {reader.what} again without `resume=`."
        ) from None
    carry = jax.tree.map(lambda a: jnp.asarray(a) if eqx.is_array(a) else a, carry)
    return carry, static


def load(directory, problem: Problem, phases: list[Phase]) -> LoopState:
    """The `LoopState` saved in `directory` for this problem; restores the
    host's random generator in place."""
    directory, meta = read_meta(directory)
    if meta.get("format") != FORMAT:
        raise FitError(
            f"The checkpoint in `{directory}` has format {meta.get('format')!r}; this"
            f" version of symml reads format {FORMAT}. Start the fit again."
        )
    phase = check_meta(directory, meta, problem, phases)
    x_dynamic = eqx.filter(problem.trainable, eqx.is_array)
    template = (
        _new_carry(x_dynamic, phases[phase].optimizer, _loss_dtype(x_dynamic)),
        problem.static,
    )
    carry, static = read_arrays(directory, meta, template)
    if meta.get("rng") is not None and problem.rng is not None:
        problem.rng.bit_generator.state = meta["rng"]
    return LoopState(
        phase=phase,
        step=int(meta["step"]),
        carry=carry,
        history={k: list(v) for k, v in meta["history"].items()},
        static=static,
    )
