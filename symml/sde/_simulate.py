"""`simulate`: ensembles of SDE paths with diffrax, seeded, batched with `vmap`."""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import SDEError
from ..dsl import SDE
from ..lowering import Params
from ..lowering._params import check_key
from ._lower import CompiledSDE, lower_sde


@dataclass(frozen=True)
class SolverSpec:
    """A diffrax SDE solver known by name.

    **Fields:**

    - `make`: builds the solver.
    - `calculus`: `"ito"` or `"stratonovich"`, the solution it converges to
      (the drift is converted when it differs from the SDE's).
    - `requires`: `"any"`, `"additive"` (the diffusion must not depend on the
      state) or `"commutative"` (the noise must be commutative).
    """

    make: Callable[[], dfx.AbstractSolver]
    calculus: str
    requires: str = "any"


SOLVERS: dict[str, SolverSpec] = {
    "euler_maruyama": SolverSpec(dfx.Euler, "ito"),
    "milstein": SolverSpec(dfx.ItoMilstein, "ito", "commutative"),
    "heun": SolverSpec(dfx.Heun, "stratonovich"),
    "euler_heun": SolverSpec(dfx.EulerHeun, "stratonovich"),
    "midpoint": SolverSpec(dfx.Midpoint, "stratonovich"),
    "reversible_heun": SolverSpec(dfx.ReversibleHeun, "stratonovich"),
    "stratonovich_milstein": SolverSpec(
        dfx.StratonovichMilstein, "stratonovich", "commutative"
    ),
    "sea": SolverSpec(dfx.SEA, "stratonovich", "additive"),
    "sra1": SolverSpec(dfx.SRA1, "stratonovich", "additive"),
    "shark": SolverSpec(dfx.ShARK, "stratonovich", "additive"),
    "general_shark": SolverSpec(dfx.GeneralShARK, "stratonovich"),
    "slow_rk": SolverSpec(dfx.SlowRK, "stratonovich"),
    "spark": SolverSpec(dfx.SPaRK, "stratonovich"),
}
# Common other names.
SOLVERS["euler"] = SOLVERS["euler_maruyama"]
SOLVERS["em"] = SOLVERS["euler_maruyama"]


def _levy_area(solver: dfx.AbstractSolver) -> type:
    """The Lévy area the Brownian path must generate for `solver`."""
    need = getattr(solver, "minimal_levy_area", dfx.BrownianIncrement)
    for concrete in (
        dfx.BrownianIncrement,
        dfx.SpaceTimeLevyArea,
        dfx.SpaceTimeTimeLevyArea,
    ):
        if issubclass(concrete, need):
            return concrete
    return dfx.SpaceTimeTimeLevyArea


def get_solver(name: str, model: SDE) -> tuple[dfx.AbstractSolver, str]:
    """The diffrax solver called `name` and the calculus of its solutions,
    checked against what `model`'s noise allows."""
    spec = SOLVERS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise SDEError(
            f"`solver` is {name!r}; expected one of {', '.join(sorted(SOLVERS))}."
        )
    if spec.requires == "additive" and not model.additive:
        raise SDEError(
            f"The solver {name!r} is for additive noise (a diffusion that does not "
            f"depend on the states), but the diffusion {list(model.diffusion)} does; "
            "use 'euler_maruyama', 'milstein', 'heun' or 'general_shark'."
        )
    if spec.requires == "commutative" and not model.commutative():
        raise SDEError(
            f"The solver {name!r} needs commutative noise, and the noise of this SDE "
            "is not provably commutative (general noise, or unknown terms in the "
            "diffusion); use 'euler_maruyama' or 'heun'."
        )
    return spec.make(), spec.calculus


def _initial_states(y0, system: CompiledSDE, paths: int, dtype) -> Array:
    if isinstance(y0, Mapping):
        y0 = system.flatten(y0)
    y0 = jnp.asarray(y0, dtype)
    if y0.shape == (system.n,):
        return jnp.broadcast_to(y0, (paths, system.n))
    if y0.shape == (paths, system.n):
        return y0
    raise SDEError(
        f"`y0` has shape {y0.shape}; expected ({system.n},) (one state for every "
        f"path) or ({paths}, {system.n}) (one per path), states in the order "
        f"{list(system.state_names)}."
    )


@eqx.filter_jit
def _solve(
    system, params, y0s, ts, keys, solver, calculus, dt, tol, brownian, levy, max_steps
):
    shape = jax.ShapeDtypeStruct((system.n_noise,), y0s.dtype)

    def one(y0, key):
        if brownian == "virtual":
            path = dfx.VirtualBrownianTree(
                ts[0], ts[-1], tol=tol, shape=shape, key=key, levy_area=levy
            )
        else:
            path = dfx.UnsafeBrownianPath(shape=shape, key=key, levy_area=levy)
        sol = dfx.diffeqsolve(
            system.terms(path, calculus=calculus),
            solver,
            ts[0],
            ts[-1],
            dt,
            y0,
            args=params,
            saveat=dfx.SaveAt(ts=ts),
            max_steps=max_steps,
            # diffrax's default adjoint replays the path backwards, which an
            # `UnsafeBrownianPath` cannot do; direct differentiation can.
            adjoint=(
                dfx.RecursiveCheckpointAdjoint()
                if brownian == "virtual"
                else dfx.DirectAdjoint()
            ),
            throw=False,
        )
        return sol.ys

    return jax.vmap(one)(y0s, keys)


def simulate(
    sde: SDE | CompiledSDE,
    ts,
    y0,
    *,
    key: PRNGKeyArray,
    params: Params | None = None,
    paths: int = 1,
    solver: str = "euler_maruyama",
    dt: float | None = None,
    brownian: str = "virtual",
    tol: float | None = None,
    dtype=None,
) -> Float[Array, "paths T n"]:
    """Simulate an ensemble of paths of an SDE.

    Path `i` has its own Brownian motion, drawn from
    `jax.random.fold_in(key, i)`: the same key gives the same paths, and path
    `i` does not depend on how many paths are drawn. Paths are batched with `jax.vmap`.

    **Arguments:**

    - `sde`: an [`SDE`][symml.SDE] or a [`CompiledSDE`][symml.CompiledSDE].
    - `ts`: the times to save at, increasing; the paths start at `ts[0]`.
    - `y0`: the initial state: shape `(n,)` for every path, `(paths, n)`
      one per path, or `{state: value}`.
    - `key`: the PRNG key of the Brownian motions.
    - `params`: the [`Params`][symml.Params] (needed when the SDE has
      unknown terms or trainable parameters; by default those of
      `lower_sde`).
    - `paths`: the number of paths.
    - `solver`: a name in `symml.sde.SOLVERS`: `"euler_maruyama"` (Itô,
      strong order 0.5, weak order 1), `"milstein"` (Itô, commutative noise,
      strong order 1), `"heun"`, `"euler_heun"`, `"midpoint"`,
      `"reversible_heun"`, `"stratonovich_milstein"`, the stochastic
      Runge–Kutta methods `"shark"`, `"sra1"`, `"sea"` (additive noise),
      `"general_shark"`, `"slow_rk"`, `"spark"`. A solver of the other
      calculus than the SDE's gets the drift converted symbolically, so every
      solver converges to the same process.
    - `dt`: the fixed step; by default a tenth of the smallest spacing of
      `ts`. The strong error of Euler–Maruyama is of order `dt^0.5`: choose it
      for your accuracy.
    - `brownian`: `"virtual"` (diffrax's `VirtualBrownianTree`: the same path
      whatever `dt`, so results at two step sizes are coupled) or `"unsafe"`
      (`UnsafeBrownianPath`: fresh increments per step, faster, not
      reproducible across step sizes).
    - `tol`: the resolution of the virtual Brownian tree (default `dt / 2`);
      keep it fixed to compare step sizes on the same paths.
    - `dtype`: the dtype of the states (default: that of `y0`, or JAX's
      default float).

    **Returns:**

    An array of shape `(paths, len(ts), n)`, states in the order of
    `state_names`.
    """
    if isinstance(sde, SDE):
        system, default = lower_sde(sde, key=jr.PRNGKey(0), dtype=dtype)
    elif isinstance(sde, CompiledSDE):
        system, default = sde, None
    else:
        raise SDEError(
            f"`simulate` takes a `symml.SDE` or a `CompiledSDE`; got "
            f"{type(sde).__name__}."
        )
    if params is None:
        if system.model.unknowns or system.model.trainable_parameters:
            raise SDEError(
                "The SDE has unknown terms or trainable parameters; pass their "
                "values as `params=` (e.g. a fit result's `params`)."
            )
        params = (
            default
            if default is not None
            else system.init_params(key=jr.PRNGKey(0), dtype=dtype)
        )
    if not isinstance(paths, int | np.integer) or paths < 1:
        raise SDEError(f"`paths` is {paths!r}; expected a positive integer.")
    ts_np = np.asarray(ts, dtype=float)
    if ts_np.ndim != 1 or ts_np.size < 2 or not np.all(np.diff(ts_np) > 0):
        raise SDEError(
            f"`ts` must be at least two strictly increasing times; got shape "
            f"{ts_np.shape}."
        )
    if dt is None:
        dt = float(np.min(np.diff(ts_np))) / 10
    if not (isinstance(dt, int | float) and math.isfinite(dt) and dt > 0):
        raise SDEError(f"`dt` is {dt!r}; expected a positive step.")
    if brownian not in ("virtual", "unsafe"):
        raise SDEError(f"`brownian` is {brownian!r}; expected 'virtual' or 'unsafe'.")
    tol = dt / 2 if tol is None else float(tol)
    solver_obj, calculus = get_solver(solver, system.model)
    if dtype is None:
        dtype = jnp.asarray(y0).dtype if not isinstance(y0, Mapping) else None
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.zeros(()).dtype
    y0s = _initial_states(y0, system, int(paths), dtype)
    # At least 4096 and a power of two, with `dt` and `tol` passed as arrays,
    # so that simulations at several step sizes share one compilation (the
    # bound costs nothing at run time: the solve stops at `ts[-1]`).
    needed = math.ceil((ts_np[-1] - ts_np[0]) / dt) + 2
    max_steps = max(4096, 2 ** math.ceil(math.log2(needed)))
    check_key(key, "simulate", SDEError)
    keys = jax.vmap(lambda i: jr.fold_in(key, i))(jnp.arange(int(paths)))
    return _solve(
        system,
        params,
        y0s,
        jnp.asarray(ts_np, dtype),
        keys,
        solver_obj,
        calculus,
        jnp.asarray(dt, dtype),
        jnp.asarray(tol, dtype),
        brownian,
        _levy_area(solver_obj),
        max_steps,
    )
