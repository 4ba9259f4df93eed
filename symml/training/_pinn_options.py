"""Training options of physics-informed fits that are objects of their own:
causal weighting in time and residual-based adaptive sampling."""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from jaxtyping import Array, Float, Int

from .._errors import FitError
from ._checks import non_negative_number
from ._method import positive_integer, positive_number
from ._sampling import SAMPLERS


@dataclass(frozen=True)
class Causal:
    """Causal weighting in time (Wang, Sankaran & Perdikaris 2022): the time
    axis is cut into `chunks` equal slices and the residual loss of slice `i`
    is weighted by `exp(−ε Σ_{j<i} L_j)`, the losses `L_j` of the earlier
    slices (held constant in the gradient). A slice counts only once the
    slices before it are solved, so the network cannot fit a wrong late-time
    solution first, the failure of vanilla training on Allen–Cahn or
    Kuramoto–Sivashinsky.

    **Arguments:**

    - `epsilon`: the causality parameter ε, or an increasing schedule
      `(1e-2, 1e-1, 1, 10, 100)`: the fit moves to the next value once every
      slice's weight exceeds `tolerance` (checked every `check_every` Adam
      steps).
    - `chunks`: the number of time slices.
    - `variable`: the time variable (default: the variable named `t`, else
      the model's first variable).
    - `tolerance`, `check_every`: see `epsilon`.
    """

    epsilon: float | tuple[float, ...] = 1.0
    chunks: int = 32
    variable: sp.Symbol | str | None = None
    tolerance: float = 0.99
    check_every: int = 100

    def __post_init__(self):
        schedule = (
            self.epsilon if isinstance(self.epsilon, tuple | list) else (self.epsilon,)
        )
        if not schedule:
            raise FitError("`epsilon` of `Causal` is an empty schedule; give values.")
        values = tuple(positive_number(e, "epsilon", "Causal") for e in schedule)
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise FitError(
                f"`epsilon` of `Causal` must increase (a schedule from weak to "
                f"strong causality); got {values}."
            )
        object.__setattr__(self, "epsilon", values if len(values) > 1 else values[0])
        positive_integer(self.chunks, "chunks", "Causal")
        positive_integer(self.check_every, "check_every", "Causal")
        t = float(positive_number(self.tolerance, "tolerance", "Causal"))
        if t >= 1:
            raise FitError(
                f"`tolerance` of `Causal` must be in (0, 1), a weight every slice "
                f"must exceed; got {self.tolerance!r}."
            )
        if self.variable is not None and not isinstance(self.variable, str | sp.Symbol):
            raise FitError(
                f"`variable` of `Causal` must be the time variable (a Symbol) or its "
                f"name; got {self.variable!r}."
            )

    @property
    def schedule(self) -> tuple[float, ...]:
        return self.epsilon if isinstance(self.epsilon, tuple) else (self.epsilon,)

    def time_index(self, variables: tuple) -> int:
        """The position of the time variable among the model's `variables`."""
        names = [str(v) for v in variables]
        if self.variable is None:
            return names.index("t") if "t" in names else 0
        name = str(self.variable)
        if name not in names:
            raise FitError(
                f"`variable={name}` of `Causal` is not a variable of the model; its "
                f"variables are {', '.join(names)}."
            )
        return names.index(name)


def causal_weights(
    slice_losses: Float[Array, " chunks"], epsilon: Float[Array, ""]
) -> Float[Array, " chunks"]:
    """`w_i = exp(−ε Σ_{j<i} L_j)`, held constant in the gradient (the weights
    steer the optimisation, they are not optimised)."""
    before = jnp.cumsum(slice_losses) - slice_losses
    return jax.lax.stop_gradient(jnp.exp(-epsilon * before))


def slice_index(
    t: Float[Array, " n"], lower: float, upper: float, chunks: int
) -> Int[Array, " n"]:
    """The time slice of each point: `chunks` equal slices of [lower, upper]."""
    position = (t - lower) / (upper - lower) * chunks
    return jnp.clip(jnp.floor(position).astype(jnp.int32), 0, chunks - 1)


def slice_means(
    values: Float[Array, " n"], index: Int[Array, " n"], chunks: int
) -> Float[Array, " chunks"]:
    """The mean of `values` in each slice (0 for an empty slice)."""
    sums = jax.ops.segment_sum(values, index, chunks)
    counts = jax.ops.segment_sum(jnp.ones_like(values), index, chunks)
    return sums / jnp.maximum(counts, 1)


@dataclass(frozen=True)
class RAD:
    """Residual-based adaptive distribution of collocation points (Wu, Zhu,
    Tan, Kartha & Lu 2023): every `resample_every` steps the equations'
    points are redrawn from `candidates × points` candidates with probability
    `∝ |r|^k / mean |r|^k + c`, where `r` is the residual. Points gather where
    the residual is large (fronts, boundary layers) while `c` keeps a uniform
    share everywhere. Pass it as `sampling=` of
    [`PhysicsInformed`][symml.PhysicsInformed].

    **Arguments:**

    - `k`: sharpness (`k = 0` is uniform; 1 to 2 are usual).
    - `c`: the uniform share (`c = 0`: purely by residual; 1 is usual).
    - `candidates`: candidates per point drawn.
    - `base`: the sampler of candidates and of the first points (`"sobol"`,
      `"halton"` or `"uniform"`).
    """

    k: float = 1.0
    c: float = 1.0
    candidates: int = 8
    base: str = "sobol"

    def __post_init__(self):
        non_negative_number(self.k, "k", "RAD")
        non_negative_number(self.c, "c", "RAD")
        if float(self.k) == 0 and float(self.c) == 0:
            raise FitError("`RAD` with `k=0` and `c=0` gives no density; raise `c`.")
        positive_integer(self.candidates, "candidates", "RAD")
        if self.candidates < 2:
            raise FitError(
                f"`candidates` of `RAD` must be at least 2 (it draws points out of "
                f"that many candidates each); got {self.candidates}."
            )
        allowed = [s for s in SAMPLERS if s != "grid"]
        if self.base not in allowed:
            raise FitError(
                f"`base={self.base!r}` of `RAD` is not known; use one of "
                f"{', '.join(map(repr, allowed))}."
            )


def check_hard(value) -> bool | tuple:
    if isinstance(value, bool):
        return value
    if isinstance(value, list | tuple) and all(
        isinstance(c, sp.Equality | int | np.integer) and not isinstance(c, bool)
        for c in value
    ):
        return tuple(value)
    raise FitError(
        f"`hard_conditions` of `PhysicsInformed` must be True (impose every "
        f"condition the geometry allows), False, or a list of the model's "
        f"conditions (or their indices); got {value!r}."
    )
