"""The four registries (lowering, Taylor, sparsity, activations) share one
shape, and the jaxpr rule tables resolve every primitive they name."""

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import symml
from symml._errors import DerivativeError, LoweringError, ModelError, SparsityError
from symml._jaxpr import CALL_PRIMITIVES, find_primitive
from symml.derivatives import (
    TAYLOR_RULES,
    Taylor,
    register_taylor_rule,
    taylor_coefficients,
    taylor_rules,
)
from symml.lowering import RULES
from symml.lowering._rules import lowering_rules
from symml.nets import (
    ACTIVATIONS,
    Activation,
    activations,
    get_activation,
    register_activation,
)
from symml.sparsity import (
    jacobian_sparsity,
    register_sparsity_rule,
    sparsity_rules,
)

jax.config.update("jax_enable_x64", True)


def _new_primitive(name: str) -> jex.core.Primitive:
    prim = jex.core.Primitive(name)
    prim.def_impl(lambda x: x)
    prim.def_abstract_eval(lambda x: x)
    return prim


# ------------------------------------------------------- primitive lookup


@pytest.mark.parametrize("error", [SparsityError, DerivativeError])
def test_missing_primitive_fails_loudly(error):
    # The typo that once skipped a sparsity rule silently.
    with pytest.raises(error, match=r"no primitive `copy_p_p`.*Fix the name"):
        find_primitive("copy_p_p", error=error)


def test_alternative_spellings():
    assert find_primitive("pjit_p_of_no_jax", "jit_p").name == "jit"
    assert find_primitive("stack_p").name == "stack"  # only in `jax._src`


def _names(source: str) -> set[str]:
    """Every `"..._p"` string in a rule module's registrations."""
    import re

    return set(re.findall(r'"([a-z0-9_]+_p)"', source))


@pytest.mark.parametrize(
    "module, table",
    [
        ("symml.sparsity._rules", sparsity_rules),
        ("symml.derivatives._taylor_rules", taylor_rules),
    ],
)
def test_every_named_primitive_has_its_rule(module, table):
    import importlib
    import inspect

    names = _names(inspect.getsource(importlib.import_module(module)))
    assert len(names) > 20
    rules = table()
    for name in names:
        assert find_primitive(name) in rules, f"`{name}` has no rule"


def test_formerly_skipped_sparsity_rules_are_present():
    # Call-like primitives are walked by the shared interpreter.
    handled = {p.name for p in [*sparsity_rules(), *CALL_PRIMITIVES]}
    for name in ["copy", "add_any", "jit", "remat2", "custom_vjp_call", "call"]:
        assert name in handled


@pytest.mark.parametrize(
    "run, error, hint",
    [
        (
            lambda f: jacobian_sparsity(f, jnp.zeros(3)),
            SparsityError,
            "register_sparsity_rule",
        ),
        (
            lambda f: Taylor().derivatives(f, jnp.array([0.5]), ((1,),)),
            DerivativeError,
            "register_taylor_rule",
        ),
    ],
)
def test_missing_rule_names_the_primitive(run, error, hint):
    prim = _new_primitive("mystery_registry_op")

    def f(x):
        # Inside `jit`: the shared interpreter walks call primitives first.
        return jax.jit(lambda y: prim.bind(jnp.sin(y)))(x)

    with pytest.raises(error, match=f"`mystery_registry_op`.*{hint}"):
        run(f)


# ------------------------------------------------- one registration shape


def test_jaxpr_registries_decorate_validate_and_extend_per_call():
    prim = _new_primitive("double_op")

    @register_sparsity_rule(prim)
    def identity_rule(ctx):
        return [ctx.deps[0]]

    @register_taylor_rule(prim)
    def taylor_rule(x):
        return x.map(lambda c: 2 * c)

    assert sparsity_rules()[prim] is identity_rule
    assert TAYLOR_RULES[prim] is taylor_rule is taylor_rules()[prim]
    out = taylor_coefficients(lambda z: prim.bind(z), jnp.ones(1), np.eye(1), 1)
    np.testing.assert_allclose(out[1], [[2.0]])

    # Per-call rules take precedence and leave the table unchanged.
    def reversed_rule(ctx):
        return [symml.sparsity.take(ctx.deps[0], np.arange(3)[::-1])]

    pattern = jacobian_sparsity(
        lambda x: prim.bind(x), jnp.zeros(3), rules={prim: reversed_rule}
    )
    np.testing.assert_array_equal(pattern.toarray(), np.eye(3, dtype=bool)[::-1])
    pattern = jacobian_sparsity(lambda x: prim.bind(x), jnp.zeros(3))
    np.testing.assert_array_equal(pattern.toarray(), np.eye(3, dtype=bool))
    assert sparsity_rules()[prim] is identity_rule

    for view in [sparsity_rules(), TAYLOR_RULES, RULES, ACTIVATIONS]:
        with pytest.raises(TypeError):
            view["x"] = None


@pytest.mark.parametrize(
    "register, error, key_match",
    [
        (register_sparsity_rule, SparsityError, "`primitive` must be"),
        (register_taylor_rule, DerivativeError, "`primitive` must be"),
        (symml.register_rule, LoweringError, "`cls` must be a sympy class"),
        (symml.register_function, LoweringError, "`cls` must be a sympy class"),
        (register_activation, ModelError, "`name` must be a name"),
    ],
)
def test_registration_validates_key_and_rule(register, error, key_match):
    with pytest.raises(error, match=key_match):
        register(42, lambda *a: None)
    good_key = {
        SparsityError: _new_primitive("k1"),
        DerivativeError: _new_primitive("k2"),
        LoweringError: type("kfun", (sp.Function,), {}),
        ModelError: "k_act",
    }[error]
    with pytest.raises(error, match="must be callable"):
        register(good_key, 3.0)
    with pytest.raises(error, match="must be callable"):
        register(good_key)(3.0)


def test_per_call_rules_are_validated():
    with pytest.raises(SparsityError, match="`primitive` must be"):
        jacobian_sparsity(jnp.sin, jnp.zeros(2), rules={"sin": lambda ctx: []})


def test_lowering_registry_decorators():
    class halve(sp.Function):
        pass

    @symml.register_function(halve)
    def half(z):
        return z / 2

    assert half(4.0) == 2.0
    assert halve in lowering_rules() and halve in RULES


def test_activation_registry():
    @register_activation("twice_act", smooth_orders=1)
    def twice(z):
        return 2 * z

    act = get_activation("twice_act")
    assert act.fn is twice and act.smooth_orders == 1
    assert activations()["twice_act"] is act
    same = register_activation(Activation("third_act", lambda z: z / 3))
    assert get_activation("third_act") is same
    with pytest.raises(ModelError, match="cannot be registered as 'other'"):
        register_activation("other", same)
