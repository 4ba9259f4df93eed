"""Lowering: sympy → JAX.

Guarantees: [`lower`][symml.lower] turns a validated [`Model`][symml.Model] into
a pure function (no Python side effects, no global state) that works under
`jit`, `vmap` and `grad` in float32 and float64. Every sympy construct is
lowered by a rule found in a registry by class; a construct without a rule is a
[`LoweringError`][symml.LoweringError].
"""

from ._compile import Compiler as Compiler, Env as Env, compile_exprs as compile_exprs
from ._lower import CompiledRHS as CompiledRHS, lower as lower
from ._params import Params as Params, init_params as init_params
from ._rules import (
    ELEMENTWISE as ELEMENTWISE,
    RULES as RULES,
    lowering_rules as lowering_rules,
    register_function as register_function,
    register_rule as register_rule,
)
from ._solve import Solution as Solution, solve as solve
from ._system import AbstractSystem as AbstractSystem
