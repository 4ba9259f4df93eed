"""Data parallelism: a fit's arrays split over the devices of a mesh, in one
process or in several.

A fit method's [`Problem`][symml.training._loop.Problem] says which arrays of
its `static` carry data points along their leading axis (`Problem.shard`, a
pytree prefix of `static` holding [`Shard`][] markers), or how to lay itself
out so that they do (`Problem.relayout`). With `fit(..., mesh=...)` the loop
places those arrays split over every device of the mesh and everything else
replicated, with `NamedSharding`, before it calls the compiled chunk; XLA
partitions the computation and reduces the gradient. Nothing else changes:
the loss, the optimiser and the loop are those of a fit on one device.

An ensemble's members are split over the devices along their leading axis,
and each device runs a program of its own on its members
([`PerDevice`][]): members never interact, so the devices never wait for
each other.

A lowered system with a grid (a [`DiscretizedModel`][symml.DiscretizedModel],
whose `decompose(mesh)` splits its states along the grid's first axis) is
divided the other way: its grid is split over the devices (domain
decomposition), everything the loop holds is replicated, and XLA exchanges
the points next to each cut for the stencils.

Several processes (`jax.distributed`) hold the same host arrays (sampling and
initialisation are seeded, so every process computes the same ones); each
places its own shards with `jax.make_array_from_callback`, and arrays go back
to the host through `process_allgather` (a collective every process takes
part in).
"""

import dataclasses
import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from .._errors import DiscretizeError, FitError


@dataclass(frozen=True)
class Shard:
    """In `Problem.shard`: the leaves below carry data points along their
    axis `axis` (the leading one by default); `what` names them in messages,
    with the option that sets their number (e.g. "collocation points
    (`points` of `PhysicsInformed`)").
    """

    what: str
    axis: int = 0


def device_mesh(devices=None, *, axis: str = "data") -> Mesh:
    """A one-axis mesh for data parallelism: `fit(..., mesh=device_mesh())`.

    **Arguments:**

    - `devices`: the devices to split the data over; all devices by default
      (`jax.devices()`: with `jax.distributed`, those of every process).
    - `axis`: the mesh axis's name.

    **Returns:** a `jax.sharding.Mesh` of shape `(len(devices),)`.
    """
    if devices is None:
        devices = jax.devices()
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise FitError(
            f"`devices` of `device_mesh` must be a non-empty list of JAX devices "
            f"such as `jax.devices()[:2]`; got {devices!r}."
        )
    if not isinstance(axis, str) or not axis:
        raise FitError(f"`axis` of `device_mesh` must be a name; got {axis!r}.")
    return Mesh(np.asarray(devices, dtype=object), (axis,), axis_types=(AxisType.Auto,))


def check_mesh(mesh, where: str = "fit") -> Mesh | None:
    """`mesh=` of `fit`: `None`/`False` (the default device), `True` (every
    device, of every process) or a `jax.sharding.Mesh`."""
    if mesh is None or mesh is False:
        return None
    if mesh is True:
        return device_mesh()
    if not isinstance(mesh, Mesh):
        raise FitError(
            f"`mesh` of `{where}` must be a `jax.sharding.Mesh` (e.g. "
            "`jax.make_mesh((jax.device_count(),), ('data',))`), `True` for "
            f"every device, or None; got {mesh!r}."
        )
    if mesh.devices.size < 1:
        raise FitError("`mesh` has no devices.")
    return auto(mesh)


def auto(mesh: Mesh) -> Mesh:
    """`mesh` with every axis of type `Auto`: XLA's partitioner places the
    intermediate values (`jax.make_mesh` makes `Explicit` axes by default,
    whose shardings are part of the types, which a fit's loss does not
    annotate)."""
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(
        mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim
    )


def mesh_size(mesh: Mesh) -> int:
    return int(mesh.devices.size)


def data_spec(mesh: Mesh) -> PartitionSpec:
    """The leading axis split over every axis of `mesh` (in their order)."""
    return PartitionSpec(tuple(mesh.axis_names))


def host(a) -> np.ndarray:
    """The whole value of `a` as a NumPy array, also when its shards live in
    other processes (then every process must call this together)."""
    if isinstance(a, jax.Array) and not (
        a.is_fully_addressable or a.is_fully_replicated
    ):
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)


def to_default_device(tree):
    """`tree` with every array gathered onto the default device, as a fit
    without a mesh would hold it (results are built from these)."""

    def move(a):
        if isinstance(a, jax.Array) and len(a.sharding.device_set) > 1:
            return jnp.asarray(host(a))
        return a

    return jax.tree.map(move, tree)


def _put(a, sharding: NamedSharding):
    if isinstance(a, jax.Array) and a.sharding.is_equivalent_to(sharding, a.ndim):
        return a
    value = host(a)
    if jax.process_count() == 1:
        return jax.device_put(value, sharding)
    return jax.make_array_from_callback(value.shape, sharding, lambda i: value[i])


def _is_spec_leaf(x) -> bool:
    return x is None or isinstance(x, Shard)


class Placement:
    """Where the loop puts its arrays on `mesh`.

    Data-parallel (`members=False`): `static`'s leaves marked by `spec` are
    split along their leading axis, everything else (the parameters, the
    optimiser's state) is replicated. Ensembles (`members=True`): every
    array's leading axis is the member axis, split over the mesh.
    """

    def __init__(self, mesh: Mesh, spec: Any = None, *, members: bool = False):
        mesh = auto(mesh)
        self.mesh = mesh
        self.members = members
        self.spec = spec
        self.split = NamedSharding(mesh, data_spec(mesh))
        self.replicated = NamedSharding(mesh, PartitionSpec())

    def _along(self, axis: int) -> NamedSharding:
        if axis == 0:
            return self.split
        return NamedSharding(
            self.mesh, PartitionSpec(*([None] * axis), tuple(self.mesh.axis_names))
        )

    def _all(self, tree, sharding):
        return jax.tree.map(lambda a: _put(a, sharding) if eqx.is_array(a) else a, tree)

    def carry(self, carry):
        return self._all(carry, self.split if self.members else self.replicated)

    def static(self, static):
        if self.members:
            return self._all(static, self.split)
        if self.spec is None:
            return self._all(static, self.replicated)

        def place(mark, subtree):
            if isinstance(mark, Shard):
                return self._all(subtree, self._along(mark.axis))
            return self._all(subtree, self.replicated)

        return jax.tree.map(place, self.spec, static, is_leaf=_is_spec_leaf)

    def scalar(self, value):
        return _put(jnp.asarray(value), self.replicated)

    def constrain_carry(self, carry):
        """Inside the compiled chunk: the carry leaves it as it came in
        (replicated, or split by member), so the next call sees the
        shardings of this one (no recompilation)."""
        sharding = self.split if self.members else self.replicated
        return jax.tree.map(
            lambda a: (
                jax.lax.with_sharding_constraint(a, sharding) if eqx.is_array(a) else a
            ),
            carry,
        )


class PerDevice:
    """An ensemble's chunk run as one program per device, each on the
    members it holds, each device's program called from a thread of its own
    (so that they run at the same time), and joined back into arrays split
    along the member axis.

    Members never interact, so nothing needs partitioning; one program
    partitioned over the devices would instead run each member's adaptive
    solve in a while loop whose stopping test is shared by all of them, and
    so synchronise every device at every solver step. (`jax.shard_map`, and
    `jax.pmap` built on it, would give one program per device too, but
    equinox's closure-converted loops in diffrax's solves reject the
    sharding that `shard_map` attaches to their arguments.)

    Each device compiles the program for itself on the first call.
    """

    def __init__(self, compiled, placement: Placement):
        self.compiled = compiled
        self.placement = placement
        self.devices = [
            d
            for d in placement.mesh.devices.flat
            if d.process_index == jax.process_index()
        ]
        self._warm = False

    def __call__(self, carry, static, n_active):
        dynamic, rest = eqx.partition((carry, static, n_active), eqx.is_array)
        leaves, treedef = jax.tree.flatten(dynamic)
        pieces = [_local_shards(a) for a in leaves]

        def run(d):
            local = jax.tree.unflatten(treedef, [p[d] for p in pieces])
            return jax.block_until_ready(self.compiled(*eqx.combine(local, rest)))

        if not self._warm:
            # The first call traces the program once, then compiles it for
            # each device.
            outputs = [run(d) for d in self.devices]
            self._warm = True
        else:
            outputs = list(_pool().map(run, self.devices))
        carry = jax.tree.map(
            lambda *parts: _join(parts, 0, self.placement.split),
            *[c for c, _ in outputs],
        )
        losses = _join([ls for _, ls in outputs], 1, self.placement._along(1))
        return carry, losses


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(jax.local_device_count(), "symml-device")


def _local_shards(a: jax.Array) -> dict:
    return {s.device: s.data for s in a.addressable_shards}


def _join(parts, axis: int, sharding: NamedSharding) -> jax.Array:
    """One array split over the mesh from each device's part (no copy)."""
    shape = list(parts[0].shape)
    shape[axis] *= sharding.mesh.devices.size
    return jax.make_array_from_single_device_arrays(tuple(shape), sharding, parts)


def check_divisible(problem, mesh: Mesh) -> None:
    """A clear error when a data axis does not split evenly over `mesh`."""
    n = mesh_size(mesh)

    def check(mark, subtree):
        if not isinstance(mark, Shard):
            return
        for a in jax.tree.leaves(subtree):
            if not eqx.is_array(a):
                continue
            size = a.shape[mark.axis] if a.ndim > mark.axis else 1
            if size % n:
                raise FitError(
                    f"The {size} {mark.what} do not split evenly over the {n} "
                    f"devices of `mesh`; use a multiple of {n}, such as "
                    f"{math.ceil(size / n) * n}."
                )

    jax.tree.map(check, problem.shard, problem.static, is_leaf=_is_spec_leaf)


def decompose_grid(problem, mesh: Mesh):
    """`problem` with the grid of its system split over `mesh` (domain
    decomposition), or None when its system has no grid to split.

    The arrays the loop holds are replicated (`shard` is None); the system's
    right-hand side keeps its states split along the grid's first axis.
    """
    system = getattr(problem.static, "system", None)
    decompose = getattr(system, "decompose", None)
    if decompose is None:
        return None
    try:
        split = decompose(mesh)
    except DiscretizeError as e:
        raise FitError(str(e)) from None
    static = dataclasses.replace(problem.static, system=split)
    return dataclasses.replace(problem, static=static, shard=None, relayout=None)


def for_mesh(problem, mesh: Mesh, method_name: str):
    """`problem` laid out for `mesh`, checked: a discretised PDE's grid split
    over the devices, or else the data split (data parallelism)."""
    decomposed = decompose_grid(problem, mesh)
    if decomposed is not None:
        return decomposed
    n = mesh_size(mesh)
    if problem.relayout is not None:
        problem = problem.relayout(n)
    if problem.shard is None:
        raise FitError(
            f"The `{method_name}` fit method declares no data to split over "
            "devices, so it cannot run on a `mesh`; leave out `mesh=` (or fit an "
            "ensemble of it with `symml.fit_ensemble(..., mesh=...)`)."
        )
    check_divisible(problem, mesh)
    return problem


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> tuple[int, int]:
    """Join this process to a multi-process fit (`jax.distributed`); call it
    first thing in the script, before any other JAX call.

    Each argument not given is read from the environment:
    `JAX_COORDINATOR_ADDRESS` (`host:port` of process 0),
    `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`; where those are unset, JAX
    detects SLURM (`srun`), Open MPI (`mpirun`) and Kubernetes indexed jobs.
    Every process then runs the same script: `fit(..., mesh=True)` splits the
    data over the devices of all of them, every process returns the same
    result, and only process 0 (`jax.process_index() == 0`) writes
    checkpoints (and should write results).

    **Arguments:**

    - `coordinator_address`: `"host:port"` of process 0.
    - `num_processes`: how many processes take part.
    - `process_id`: this process's index, from 0.

    **Returns:** `(process_id, num_processes)`.
    """
    env = os.environ
    if coordinator_address is None:
        coordinator_address = env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in env:
        num_processes = _env_int("JAX_NUM_PROCESSES", minimum=1)
    if process_id is None and "JAX_PROCESS_ID" in env:
        process_id = _env_int("JAX_PROCESS_ID", minimum=0)
    for name, value, minimum in (
        ("num_processes", num_processes, 1),
        ("process_id", process_id, 0),
    ):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or value < minimum
        ):
            raise FitError(
                f"`{name}` of `initialize_distributed` must be an integer >= "
                f"{minimum}; got {value!r}."
            )
    if (
        num_processes is not None
        and process_id is not None
        and not process_id < num_processes
    ):
        raise FitError(
            f"`process_id={process_id}` must be smaller than "
            f"`num_processes={num_processes}` (processes are numbered from 0)."
        )
    if coordinator_address is not None and (
        not isinstance(coordinator_address, str) or ":" not in coordinator_address
    ):
        raise FitError(
            "`coordinator_address` must be 'host:port' of process 0, such as "
            f"'10.0.0.1:1234'; got {coordinator_address!r}."
        )
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=None if num_processes is None else int(num_processes),
            process_id=None if process_id is None else int(process_id),
        )
    except (ValueError, TypeError, RuntimeError) as e:
        raise FitError(
            f"`jax.distributed` could not start ({e}). Call "
            "`initialize_distributed` once, before any other JAX call, with the "
            "coordinator's address, the number of processes and this process's "
            "id (as arguments or in JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, "
            "JAX_PROCESS_ID), or launch under SLURM, Open MPI or Kubernetes."
        ) from None
    return jax.process_index(), jax.process_count()


def _env_int(name: str, *, minimum: int) -> int:
    text = os.environ[name]
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise FitError(
            f"The environment variable {name} must be an integer >= {minimum}; "
            f"got {text!r}."
        )
    return value
