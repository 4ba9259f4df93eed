"""Dependency sets through a jaxpr: the sparsity interpreter and its rule registry.

The loop is the shared `symml._jaxpr.AbstractInterpreter`; a value is either
tracked (a [`DependencySets`][symml.sparsity.DependencySets]: it depends on the
input `x`) or a `_Value`. Values computable from the jaxpr's literals and
constants alone (index arrays, masks, stencil weights) are evaluated lazily,
only when a rule asks for them; values that depend on `x` or on the extra
arguments are never evaluated, so the pattern is global: it holds for every
value of `x` and of the extra arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.extend as jex
import numpy as np

from .._errors import SparsityError
from .._jaxpr import AbstractInterpreter, bind, is_float
from .._registry import Registry
from ._deps import DependencySets

__all__ = [
    "RuleContext",
    "propagate",
    "register_sparsity_rule",
    "sparsity_rules",
]

SparsityRule = Callable[["RuleContext"], Sequence[DependencySets | None]]

_SPARSITY: Registry[jex.core.Primitive, SparsityRule] = Registry(
    "sparsity rule",
    error=SparsityError,
    is_key=lambda key: isinstance(key, jex.core.Primitive),
    key_hint="a `jax.extend.core.Primitive` (see `jax.extend.core.primitives`)",
    register_name="symml.sparsity.register_sparsity_rule",
    key_name="primitive",
)


def sparsity_rules() -> Mapping[jex.core.Primitive, SparsityRule]:
    """A read-only view of the registry `{primitive: rule}`.

    Call-like primitives (`jit`, `custom_jvp_call`, ...) need no rule: the
    interpreter walks their inner jaxpr.
    """
    return _SPARSITY.view


def register_sparsity_rule(
    primitive: jex.core.Primitive, rule: SparsityRule | None = None
):
    """Register (or replace) the sparsity rule of a JAX primitive.

    A rule receives a [`RuleContext`][symml.sparsity.RuleContext] for one
    equation and returns one [`DependencySets`][symml.sparsity.DependencySets]
    (or `None`, meaning "independent of the input") per output of the
    equation. Build the result with the helpers of `symml.sparsity`:
    `take`, `left_multiply`, `union`, `with_self_pairs`, `with_cross_pairs`.

    **Arguments:**

    - `primitive`: a `jax.extend.core.Primitive`.
    - `rule`: the rule, a callable `rule(ctx) -> list`. Omit it to use
        `@register_sparsity_rule(primitive)` as a decorator.

    **Returns:**

    `rule` (or, without it, a decorator that registers and returns its
    argument).
    """
    return _SPARSITY.register(primitive, rule)


class _Value:
    """An untracked value: known, unknown, or computed from constants on demand."""

    __slots__ = ("_thunk", "_value", "_done")

    def __init__(self, value: np.ndarray | None = None, thunk=None):
        self._value = value
        self._thunk = thunk
        self._done = thunk is None

    def get(self) -> np.ndarray | None:
        if not self._done:
            self._value = self._thunk()
            self._done = True
        return self._value


_UNKNOWN = _Value()


class _Outputs:
    """The outputs of one untracked equation, evaluated together on demand."""

    __slots__ = ("eqn", "ins", "_values")

    def __init__(self, eqn, ins: list[_Value]):
        self.eqn = eqn
        self.ins = ins
        self._values: list | None = None

    def get(self, i: int) -> np.ndarray | None:
        if self._values is None:
            eqn = self.eqn
            ins = [v.get() for v in self.ins]
            if eqn.effects or any(v is None for v in ins):
                self._values = [None] * len(eqn.outvars)
            else:
                with jax.ensure_compile_time_eval():
                    self._values = [np.asarray(r) for r in bind(eqn, ins)]
        return self._values[i]


def _output_value(outputs: _Outputs, i: int) -> _Value:
    return _Value(thunk=lambda: outputs.get(i))


class RuleContext:
    """What a sparsity rule knows about the equation it handles.

    **Attributes:**

    - `eqn`: the `JaxprEqn` (its `params`, `invars` and `outvars`).
    - `deps`: one `DependencySets` or `None` per input.
    - `n`: the size of the input `x`.
    - `hessian`: whether second-order sets are tracked.
    """

    __slots__ = ("eqn", "deps", "n", "hessian", "_invals", "_interpreter")

    def __init__(self, eqn, invals: list, interpreter: _SparsityInterpreter):
        self.eqn = eqn
        self._invals = invals
        self._interpreter = interpreter
        self.deps = [v if isinstance(v, DependencySets) else None for v in invals]
        self.n = interpreter.n
        self.hessian = interpreter.hessian

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
        v = self._invals[i]
        return v.get() if isinstance(v, _Value) else None

    def in_value_fns(self) -> list[Callable[[], np.ndarray | None]]:
        """One thunk per input returning its concrete value (or `None`)."""
        return [v.get if isinstance(v, _Value) else _UNKNOWN.get for v in self._invals]

    def call(
        self,
        jaxpr: Any,
        deps: Sequence[DependencySets | None],
        value_fns: Sequence[Callable[[], np.ndarray | None]] | None = None,
    ) -> list[DependencySets | None]:
        """Propagate through a sub-jaxpr (a `Jaxpr` or `ClosedJaxpr`)."""
        if value_fns is None:
            value_fns = [_UNKNOWN.get] * len(deps)
        args = [
            d if d is not None else _Value(thunk=fn)
            for d, fn in zip(deps, value_fns, strict=True)
        ]
        outs = self._interpreter.run(jaxpr, args)
        return [o if isinstance(o, DependencySets) else None for o in outs]


class _SparsityInterpreter(AbstractInterpreter):
    tracked = DependencySets

    def __init__(self, rules: Mapping, n: int, hessian: bool):
        self.rules = rules
        self.n = n
        self.hessian = hessian

    def constant(self, value):
        return _Value(np.asarray(value))

    def untracked(self, eqn, invals):
        outputs = _Outputs(eqn, invals)
        return [_output_value(outputs, i) for i in range(len(eqn.outvars))]

    def no_float_outputs(self, eqn, invals):
        # Comparisons and integer casts of `x`: no dependency, unknown values.
        return [_UNKNOWN] * len(eqn.outvars)

    def apply(self, rule, eqn, invals):
        outs = list(rule(RuleContext(eqn, invals, self)))
        if len(outs) != len(eqn.outvars):
            raise SparsityError(
                f"The sparsity rule of `{eqn.primitive.name}` returned {len(outs)} "
                f"results for {len(eqn.outvars)} outputs; return one per output."
            )
        for i, (var, d) in enumerate(zip(eqn.outvars, outs, strict=True)):
            if d is None or not is_float(var.aval):
                outs[i] = _UNKNOWN
            elif d.size != math.prod(var.aval.shape):  # (`aval.size` is slower)
                raise SparsityError(
                    f"The sparsity rule of `{eqn.primitive.name}` returned sets "
                    f"for {d.size} elements for an output of shape "
                    f"{tuple(var.aval.shape)}; fix the rule."
                )
        return outs

    def missing_rule(self, eqn):
        return SparsityError(
            f"No sparsity rule for the JAX primitive `{eqn.primitive.name}`, "
            "which the function applies to a value that depends on `x`. "
            "Register one with `symml.sparsity.register_sparsity_rule("
            "primitive, rule)` (the primitive is `eqn.primitive` of the "
            "jaxpr, see `jax.make_jaxpr`), or rewrite the function without it."
        )


def propagate(
    jaxpr: Any,
    in_deps: Sequence[DependencySets | None],
    *,
    n: int,
    hessian: bool,
    rules: Mapping | None = None,
) -> list[DependencySets | None]:
    """Propagate dependency sets through `jaxpr` (a `Jaxpr` or `ClosedJaxpr`).

    **Arguments:**

    - `jaxpr`: the jaxpr.
    - `in_deps`: one `DependencySets` or `None` (unknown, independent of `x`)
        per input variable.
    - `n`: the size of the input `x`.
    - `hessian`: whether second-order sets are tracked.
    - `rules`: extra rules `{primitive: rule}` for this call, looked up first.

    **Returns:**

    One `DependencySets` or `None` per output variable.
    """
    interpreter = _SparsityInterpreter(_SPARSITY.extended(rules), n, hessian)
    args = [d if d is not None else _UNKNOWN for d in in_deps]
    outs = interpreter.run(jaxpr, args)
    return [o if isinstance(o, DependencySets) else None for o in outs]
