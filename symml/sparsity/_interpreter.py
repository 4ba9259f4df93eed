"""Propagation of dependency sets through a jaxpr, and the rule registry.

Every equation of the jaxpr is handled by the rule registered for its primitive
(see [`register_sparsity_rule`][symml.sparsity.register_sparsity_rule]). Values
that are computable from the jaxpr's literals and constants alone (index
arrays, masks, stencil weights) are evaluated lazily, only when a rule asks for
them; values that depend on the input `x` or on the extra arguments are never
evaluated, so the pattern is global: it holds for every value of `x` and of the
extra arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend as jex
import numpy as np

from .._errors import SparsityError
from ._deps import DependencySets

__all__ = ["RuleContext", "register_sparsity_rule", "propagate", "sparsity_rules"]

SparsityRule = Callable[["RuleContext"], Sequence[DependencySets | None]]

_RULES: dict[jex.core.Primitive, SparsityRule] = {}


def sparsity_rules() -> dict[jex.core.Primitive, SparsityRule]:
    """A copy of the registry `{primitive: rule}`.

    **Returns:**

    A new dict; changing it does not change the registry.
    """
    return dict(_RULES)


def register_sparsity_rule(primitive: jex.core.Primitive, rule: SparsityRule) -> None:
    """Register (or replace) the sparsity rule of a JAX primitive.

    A rule receives a [`RuleContext`][symml.sparsity.RuleContext] for one
    equation and returns one [`DependencySets`][symml.sparsity.DependencySets]
    (or `None`, meaning "independent of the input") per output of the
    equation. Build the result with the helpers of `symml.sparsity`:
    `take`, `left_multiply`, `union`, `with_self_pairs`, `with_cross_pairs`.

    **Arguments:**

    - `primitive`: a `jax.extend.core.Primitive`.
    - `rule`: the rule, a callable `rule(ctx) -> list`.

    **Returns:**

    Nothing.
    """
    if not isinstance(primitive, jex.core.Primitive):
        raise SparsityError(
            f"`primitive` must be a `jax.extend.core.Primitive`, got "
            f"{type(primitive).__name__}. Find it in `jax.extend.core.primitives`."
        )
    if not callable(rule):
        raise SparsityError(
            f"`rule` for primitive `{primitive.name}` must be callable, got "
            f"{type(rule).__name__}."
        )
    _RULES[primitive] = rule


def _is_float(aval: Any) -> bool:
    dtype = getattr(aval, "dtype", None)
    return dtype is not None and np.issubdtype(dtype, np.inexact)


class RuleContext:
    """What a sparsity rule knows about the equation it handles.

    **Attributes:**

    - `eqn`: the `JaxprEqn` (its `params`, `invars` and `outvars`).
    - `deps`: one `DependencySets` or `None` per input.
    - `n`: the size of the input `x`.
    - `hessian`: whether second-order sets are tracked.
    """

    __slots__ = ("eqn", "deps", "n", "hessian", "_value_fns")

    def __init__(self, eqn, deps, value_fns, n: int, hessian: bool):
        self.eqn = eqn
        self.deps = deps
        self.n = n
        self.hessian = hessian
        self._value_fns = value_fns

    @property
    def params(self) -> dict[str, Any]:
        return self.eqn.params

    def in_shape(self, i: int) -> tuple[int, ...]:
        return tuple(self.eqn.invars[i].aval.shape)

    def out_shape(self, i: int = 0) -> tuple[int, ...]:
        return tuple(self.eqn.outvars[i].aval.shape)

    def value(self, i: int) -> np.ndarray | None:
        """The concrete value of input `i` if it follows from constants alone,
        else `None`."""
        return self._value_fns[i]()

    def call(
        self,
        jaxpr: Any,
        deps: Sequence[DependencySets | None],
        value_fns: Sequence[Callable[[], np.ndarray | None]] | None = None,
    ) -> list[DependencySets | None]:
        """Propagate through a sub-jaxpr (a `Jaxpr` or `ClosedJaxpr`)."""
        if value_fns is None:
            value_fns = [_unknown] * len(deps)
        return propagate(jaxpr, deps, value_fns, n=self.n, hessian=self.hessian)

    def in_value_fns(self) -> list[Callable[[], np.ndarray | None]]:
        return list(self._value_fns)


def _unknown() -> None:
    return None


class _Values:
    """Lazy evaluation of the constant part of a jaxpr."""

    def __init__(self):
        self.known: dict[Any, np.ndarray | None] = {}
        self.thunks: dict[Any, Callable[[], np.ndarray | None]] = {}
        self.producers: dict[Any, Any] = {}

    def get(self, atom: Any) -> np.ndarray | None:
        if isinstance(atom, jex.core.Literal):
            return np.asarray(atom.val)
        if atom in self.known:
            return self.known[atom]
        if atom in self.thunks:
            value = self.thunks[atom]()
            self.known[atom] = value
            return value
        eqn = self.producers.get(atom)
        if eqn is None:
            return None
        ins = [self.get(v) for v in eqn.invars]
        outs: list[np.ndarray | None]
        if eqn.effects or any(v is None for v in ins):
            outs = [None] * len(eqn.outvars)
        else:
            with jax.ensure_compile_time_eval():
                res = eqn.primitive.bind(*ins, **eqn.params)
            if not eqn.primitive.multiple_results:
                res = [res]
            outs = [np.asarray(r) for r in res]
        for var, val in zip(eqn.outvars, outs, strict=True):
            self.known[var] = val
        return self.known[atom]

    def fn(self, atom: Any) -> Callable[[], np.ndarray | None]:
        return lambda: self.get(atom)


def propagate(
    jaxpr: Any,
    in_deps: Sequence[DependencySets | None],
    in_value_fns: Sequence[Callable[[], np.ndarray | None]],
    *,
    n: int,
    hessian: bool,
) -> list[DependencySets | None]:
    """Propagate dependency sets through `jaxpr` (a `Jaxpr` or `ClosedJaxpr`).

    **Arguments:**

    - `jaxpr`: the jaxpr.
    - `in_deps`: one `DependencySets` or `None` per input variable.
    - `in_value_fns`: one thunk per input variable returning its concrete value
        or `None` when it is not a constant.
    - `n`: the size of the input `x`.
    - `hessian`: whether second-order sets are tracked.

    **Returns:**

    One `DependencySets` or `None` per output variable.
    """
    if isinstance(jaxpr, jex.core.ClosedJaxpr):
        consts = jaxpr.consts
        jaxpr = jaxpr.jaxpr
    else:
        consts = ()
    values = _Values()
    deps: dict[Any, DependencySets | None] = {}
    for var, const in zip(jaxpr.constvars, consts, strict=True):
        values.known[var] = np.asarray(const)
    for var, d, fn in zip(jaxpr.invars, in_deps, in_value_fns, strict=True):
        deps[var] = d
        values.thunks[var] = fn

    def read(atom: Any) -> DependencySets | None:
        if isinstance(atom, jex.core.Literal):
            return None
        return deps.get(atom)

    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        if all(d is None for d in ins) or not any(
            _is_float(v.aval) for v in eqn.outvars
        ):
            for var in eqn.outvars:
                values.producers[var] = eqn
            continue
        rule = _RULES.get(eqn.primitive)
        if rule is None:
            raise SparsityError(
                f"No sparsity rule for the JAX primitive `{eqn.primitive.name}`, "
                "which the function applies to a value that depends on `x`. "
                "Register one with `symml.sparsity.register_sparsity_rule("
                f"primitive, rule)` (the primitive is `eqn.primitive` of the "
                "jaxpr, see `jax.make_jaxpr`), or rewrite the function without it."
            )
        ctx = RuleContext(
            eqn, ins, [values.fn(v) for v in eqn.invars], n=n, hessian=hessian
        )
        outs = list(rule(ctx))
        if len(outs) != len(eqn.outvars):
            raise SparsityError(
                f"The sparsity rule of `{eqn.primitive.name}` returned {len(outs)} "
                f"results for {len(eqn.outvars)} outputs; return one per output."
            )
        for var, d in zip(eqn.outvars, outs, strict=True):
            if not _is_float(var.aval):
                d = None
            deps[var] = d
            values.known[var] = None
            if d is not None and d.size != int(np.prod(var.aval.shape)):
                raise SparsityError(
                    f"The sparsity rule of `{eqn.primitive.name}` returned sets "
                    f"for {d.size} elements for an output of shape "
                    f"{tuple(var.aval.shape)}; fix the rule."
                )
    return [read(v) for v in jaxpr.outvars]
