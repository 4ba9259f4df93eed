"""Penalties: symbolic terms added to a UDE loss, e.g. ∫ (∂U/∂x)² dx."""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from .._errors import FitError
from ..dsl import Model
from ..lowering import Compiler, Env, Params
from ._method import non_negative_number, one_of, positive_integer
from ._sampling import SAMPLERS, sample_box


@dataclass(frozen=True)
class Penalty:
    """A term added to a UDE loss: `weight` × the mean of `expr` over points
    sampled in a box of states (a Monte Carlo estimate of its integral divided
    by the box's volume).

    **Arguments:**

    - `expr`: a sympy expression in the model's states, independent variable,
      parameters and unknown terms, including derivatives of unknowns with
      respect to their inputs: `U[0].diff(x)**2`.
    - `over`: `{state or independent variable: (lower, upper)}`, the box the
      points are drawn from; every state or variable in `expr` needs a range.
    - `weight`: its weight in the loss.
    - `points`: the number of sample points (drawn once, seeded by the fit's
      seed).
    - `sampling`: `"sobol"`, `"halton"`, `"uniform"` or `"grid"`.
    """

    expr: sp.Expr
    over: dict
    weight: float = 1.0
    points: int = 256
    sampling: str = "sobol"
    name: str = field(default="")

    def __post_init__(self):
        if not isinstance(self.expr, sp.Expr):
            raise FitError(
                f"`expr` of `Penalty` must be a sympy expression such as "
                f"`U[0].diff(x)**2`; got {self.expr!r} of type "
                f"{type(self.expr).__name__}."
            )
        if not isinstance(self.over, Mapping) or not self.over:
            raise FitError(
                "`over` of `Penalty` must be a dict `{state or variable: (lower, "
                f"upper)}}` giving the box to sample; got {self.over!r}."
            )
        for key, bounds in self.over.items():
            try:
                lo, hi = (float(b) for b in bounds)
            except (TypeError, ValueError):
                lo = hi = math.nan
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise FitError(
                    f"`over` of `Penalty` gives `{key}` the range {bounds!r}; give "
                    "`(lower, upper)` with finite lower < upper."
                )
        owner = "Penalty"
        non_negative_number(self.weight, "weight", owner)
        positive_integer(self.points, "points", owner)
        one_of(self.sampling, "sampling", owner, SAMPLERS)
        if not isinstance(self.name, str):
            raise FitError(f"`name` of `Penalty` must be a string; got {self.name!r}.")


class CompiledPenalty(eqx.Module):
    evaluate: object = eqx.field(static=True)
    requests: dict = eqx.field(static=True)
    symbols: tuple = eqx.field(static=True)  # bound at the points' columns
    trainable: tuple = eqx.field(static=True)
    weight: float = eqx.field(static=True)
    name: str = eqx.field(static=True)
    points: jax.Array

    def __call__(self, params: Params) -> jax.Array:
        values = {s: self.points[:, i] for i, s in enumerate(self.symbols)}
        values.update({p: params.values[str(p)] for p in self.trainable})
        value = self.evaluate(Env(values, params.networks, self.requests))
        return self.weight * jnp.mean(jnp.broadcast_to(value, self.points.shape[:1]))


def compile_penalty(
    penalty: Penalty, i: int, model: Model, derivatives, rng, dtype
) -> CompiledPenalty:
    if not isinstance(penalty, Penalty):
        raise FitError(
            f"`penalties` must be a list of `symml.Penalty`; item {i} is "
            f"{type(penalty).__name__}."
        )
    if penalty.sampling not in SAMPLERS:
        raise FitError(
            f"Penalty {i} has `sampling={penalty.sampling!r}`; use one of "
            f"{', '.join(SAMPLERS)}."
        )
    if not (np.isfinite(penalty.weight) and penalty.weight >= 0):
        raise FitError(f"Penalty {i} has weight {penalty.weight}; use a finite >= 0.")
    states = list(model.state_vector)
    dummies = {s: sp.Dummy(str(getattr(s, "func", s))) for s in states}
    expr = sp.sympify(penalty.expr).doit(deep=True)
    keys, bounds = [], []
    for var, (lo, hi) in penalty.over.items():
        if var not in dummies and var != model.independent:
            raise FitError(
                f"Penalty {i} samples over `{var}`, which is neither a state nor "
                f"the independent variable of the model; use one of "
                f"{', '.join(map(str, [*states, model.independent]))}."
            )
        keys.append(dummies.get(var, var))
        bounds.append((float(lo), float(hi)))
    expr = expr.xreplace(dummies)
    trainable = tuple(model.trainable_parameters)
    missing = (expr.free_symbols & (set(dummies.values()) | {model.independent})) - set(
        keys
    )
    if missing:
        raise FitError(
            f"Penalty {i} (`{penalty.expr}`) depends on "
            f"{', '.join(sorted(map(str, missing)))}, which `over=` gives no range; "
            "add a range for each."
        )
    compiler = Compiler(
        bound=[*keys, *trainable],
        constants=model.fixed_parameters,
        derivatives=derivatives,
    )
    evaluate = compiler(expr)
    points = jnp.asarray(
        sample_box(bounds, penalty.points, penalty.sampling, rng), dtype
    )
    return CompiledPenalty(
        evaluate,
        compiler.requests,
        tuple(keys),
        trainable,
        float(penalty.weight),
        penalty.name or f"penalty {i}",
        points,
    )
