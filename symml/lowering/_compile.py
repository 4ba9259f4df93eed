"""Compile a sympy expression into a tree of JAX evaluators.

Compilation walks the sympy tree once; evaluation runs plain Python closures
over `jax.numpy`, so a compiled function costs no sympy work per call and
traces to the same operations a hand-written function would.
"""

import warnings
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import sympy as sp

from .._errors import (
    DerivativeError,
    LoweringError,
    SymmlError,
    ZeroDerivativeWarning,
)
from ..dsl import FieldFunction, UnknownOutput
from ._rules import _LOWERING, Evaluator, find_rule, register_rule

MultiIndex = tuple[int, ...]


class Env:
    """The values an evaluation sees: bound symbols, networks and a per-call
    cache so each network is evaluated once per distinct input, shared by all
    its outputs and derivatives."""

    __slots__ = ("values", "networks", "requests", "cache")

    def __init__(self, values, networks, requests):
        self.values = values
        self.networks = networks
        self.requests = requests
        self.cache = {}

    def child(self, extra_values) -> "Env":
        return Env({**self.values, **extra_values}, self.networks, self.requests)

    def network_outputs(self, key, args: list[Evaluator]) -> dict:
        out = self.cache.get(key)
        if out is None:
            out = self.cache[key] = self._evaluate_network(key, args)
        return out

    def _evaluate_network(self, key, args):
        name, _, scheme = key
        net = self.networks[name]
        indices = sorted(self.requests[key])
        values = [jnp.asarray(a(self)) for a in args]
        shape = jnp.broadcast_shapes(*(v.shape for v in values))
        dtype = jnp.result_type(*values, *jax.tree_util.tree_leaves(net))
        points = jnp.stack(
            [jnp.broadcast_to(v, shape).astype(dtype) for v in values], axis=-1
        ).reshape(-1, len(values))
        if not shape and indices == [(0,) * len(values)]:
            # One point (an ODE right-hand side): a plain call, no batching.
            return {indices[0]: net(points[0])}
        if indices == [(0,) * len(values)]:
            results = (jax.vmap(net)(points),)
        else:
            results = jax.vmap(lambda p: scheme.derivatives(net, p, tuple(indices)))(
                points
            )
        return {
            mi: r.reshape(*shape, r.shape[-1])
            for mi, r in zip(indices, results, strict=True)
        }


def state_compiler(model, scheme=None, rules=None):
    """`(time, states, trainable, compiler)` for a right-hand side of the
    states of `model`: the time variable, one dummy symbol per state (in the
    order of `model.state_names`), the trainable parameters, and a `Compiler`
    that takes their values at call time and bakes in the fixed parameters."""
    time = model.independent
    states = [sp.Dummy(n) for n in model.state_names]
    trainable = list(model.trainable_parameters)
    compiler = Compiler(
        bound=[time, *states, *trainable],
        constants=model.fixed_parameters,
        rules=rules,
        derivatives=scheme,
    )
    return time, states, trainable, compiler


class Compiler:
    """Turns sympy expressions into evaluators with a rule table.

    **Arguments:**

    - `bound`: the symbols whose values are given at call time.
    - `constants`: `{symbol: float}` baked into the compiled code.
    - `rules`: extra rules, consulted before the global table (the global
      table is never changed by a call).
    """

    def __init__(
        self,
        *,
        bound=(),
        constants: Mapping | None = None,
        rules=None,
        derivatives=None,
    ):
        self.bound = set(bound)
        self.constants = dict(constants or {})
        self.rules = _LOWERING.extended(rules)
        self.default_scheme, self.schemes = _schemes(derivatives)
        # (network name, sympy args, scheme) -> multi-indices the model asks for.
        self.requests: dict[tuple, set[MultiIndex]] = {}

    def __call__(self, expr) -> Evaluator:
        expr = sp.sympify(expr)
        return find_rule(expr, self.rules)(expr, self)

    def scheme_for(self, name: str, mi: MultiIndex):
        """The derivative scheme for the derivative `mi` of network `name`."""
        return self.schemes.get((name, mi), self.default_scheme)

    def network_output(self, name: str, args, index: int, mi: MultiIndex):
        # The value goes with the default scheme's derivatives at the same
        # inputs, so a scheme that computes it anyway (Taylor's primal, the
        # centre of a stencil) serves it rather than a second pass.
        scheme = self.scheme_for(name, mi)
        key = (name, tuple(args), scheme)
        self.requests.setdefault(key, set()).add(mi)
        arg_evals = [self(a) for a in args]

        def evaluate(env: Env):
            return env.network_outputs(key, arg_evals)[mi][..., index]

        return evaluate


def check_derivatives(derivatives, error: type[SymmlError] = LoweringError):
    """Raise `error` if `derivatives` (a scheme, its name, or a dict of them)
    does not name derivative schemes."""
    try:
        _schemes(derivatives)
    except LoweringError as e:
        if error is LoweringError:
            raise
        raise error(str(e)) from None


def _schemes(derivatives):
    """`derivatives` as (default scheme, {(network, multi-index): scheme}).

    A name or scheme applies to every derivative; a dict maps derivatives
    (`u.diff(x, 2)`) to schemes, with an optional `"default"` entry."""
    from ..derivatives import SCHEMES, get_scheme

    def get(scheme):
        try:
            return get_scheme(scheme)
        except DerivativeError:
            raise LoweringError(
                f"`derivatives={scheme!r}` is not a derivative scheme; use one of "
                f"{', '.join(map(repr, SCHEMES))}, a scheme object such as "
                "`symml.derivatives.FiniteDifference()`, or a dict from "
                "derivatives to schemes."
            ) from None

    if derivatives is None:
        return get("forward"), {}
    if not isinstance(derivatives, Mapping):
        return get(derivatives), {}
    default = get(derivatives.get("default", "forward"))
    schemes = {}
    for expr, scheme in derivatives.items():
        if isinstance(expr, str):
            if expr != "default":
                raise LoweringError(
                    f"`derivatives` has the key {expr!r}; keys are derivatives of "
                    "networks such as `u.diff(x, 2)`, or 'default'."
                )
            continue
        schemes[derivative_key(expr)] = get(scheme)
    return default, schemes


@register_rule(sp.Symbol)
def _symbol(expr, compile: Compiler):
    if expr in compile.constants:
        value = compile.constants[expr]
        return lambda env: value
    if expr in compile.bound:
        return lambda env: env.values[expr]
    raise LoweringError(
        f"The symbol `{expr}` has no value: it is neither bound at call time nor a "
        "parameter of the model. Give it a value in `parameters=`."
    )


def _network_name(f) -> str:
    return f.unknown.name if isinstance(f, UnknownOutput) else f.func.__name__


def _output_index(f) -> int:
    return f.index if isinstance(f, UnknownOutput) else 0


@register_rule(UnknownOutput)
@register_rule(FieldFunction)
def _network(expr, compile: Compiler):
    return compile.network_output(
        _network_name(expr), expr.args, _output_index(expr), (0,) * len(expr.args)
    )


def derivative_key(expr) -> tuple[str, MultiIndex]:
    """`(network name, multi-index)` of a derivative of a network term, e.g.
    `("u", (0, 2))` for `Derivative(u(t, x), (x, 2))`."""
    f = getattr(expr, "expr", None)
    if not isinstance(expr, sp.Derivative) or not isinstance(
        f, (UnknownOutput, FieldFunction)
    ):
        raise LoweringError(
            f"symml cannot lower the derivative `{expr}`: only derivatives of network"
            " terms (unknowns and fields) with respect to their inputs are lowered "
            "here; derivatives of states are the solver's job."
        )
    mi = [0] * len(f.args)
    for var, count in expr.variable_count:
        positions = [i for i, a in enumerate(f.args) if a == var]
        others = [a for a in f.args if a != var and var in a.free_symbols]
        if not positions or others:
            raise LoweringError(
                f"In `{expr}`, `{var}` is not one of the inputs of "
                f"`{_network_name(f)}` on its own; differentiate with respect to "
                "a plain input (sympy's chain rule does this for you)."
            )
        mi[positions[0]] += int(count)
    return _network_name(f), tuple(mi)


def _activation(f) -> str:
    return (
        f.unknown.activation if isinstance(f, UnknownOutput) else f.func.spec.activation
    )


@register_rule(sp.Derivative)
def _derivative(expr, compile: Compiler):
    from ..derivatives import zero_derivative_order
    from ..nets import get_activation

    name, mi = derivative_key(expr)
    activation = get_activation(_activation(expr.expr))
    vanishing = zero_derivative_order(activation)
    if vanishing is not None and sum(mi) >= vanishing:
        warnings.warn(
            f"The network `{name}` uses the `{activation.name}` activation, whose "
            f"derivatives of order {vanishing} and above are identically zero or "
            f"undefined, but the model needs `{expr}` (order {sum(mi)}): that term "
            "is zero for every weight, so the network cannot learn it. Use a smooth "
            "activation such as 'tanh'.",
            ZeroDerivativeWarning,
            stacklevel=2,
        )
    return compile.network_output(name, expr.expr.args, _output_index(expr.expr), mi)


@register_rule(sp.Subs)
def _subs(expr, compile: Compiler):
    inner, variables, points = expr.args
    compile.bound |= set(variables)
    body = compile(inner)
    point_evals = [compile(p) for p in points]

    def evaluate(env: Env):
        return body(
            env.child({v: p(env) for v, p in zip(variables, point_evals, strict=True)})
        )

    return evaluate


def compile_exprs(exprs, compiler: Compiler) -> list[Evaluator]:
    """Compile several expressions with one compiler (sharing its requests)."""
    return [compiler(sp.sympify(e).doit(deep=True)) for e in exprs]
