"""One jaxpr interpreter for every analysis with a rule per primitive.

Taylor-mode propagation (`derivatives/`) and sparsity detection (`sparsity/`)
are two rule tables over the loop of
[`AbstractInterpreter`][symml._jaxpr.AbstractInterpreter], as
`jax.experimental.jet` is one loop over a table of rules. The loop owns what
both need and nothing else:

- the environment from variables to values, literals and closed-over
  constants;
- the shortcut for an equation none of whose inputs is *tracked* (depends on
  the input being analysed), and for one whose outputs are all non-floating
  (comparisons, integer casts: no derivative, no dependency);
- the lookup of the rule for a primitive, then of the call-like primitives of
  [`CALL_PRIMITIVES`][symml._jaxpr.CALL_PRIMITIVES] (`jit`, `closed_call`,
  `custom_jvp_call`, ...), whose inner jaxpr is walked by the same loop, and
  the stage's error when neither exists.

Primitives are looked up once, at import, by
[`find_primitive`][symml._jaxpr.find_primitive], which raises if the installed
JAX does not define one: a rule table never skips an entry silently.
"""

import abc
import importlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType, ModuleType
from typing import Any, ClassVar

import jax
import jax.extend.core as jexc
import numpy as np

from ._errors import SymmlError

__all__ = [
    "AbstractInterpreter",
    "CALL_PRIMITIVES",
    "bind",
    "find_primitive",
    "is_float",
]

# Where primitives live: the public `jax.extend` first, then the private
# modules of the few that it does not export (`stack_p`, `call_p`, ...).
_MODULES = (
    "jax.extend.core.primitives",
    "jax._src.lax.lax",
    "jax._src.lax.slicing",
    "jax._src.core",
    "jax._src.ad_util",
    "jax._src.ad_checkpoint",
    "jax._src.custom_derivatives",
    "jax._src.pjit",
)
_loaded: list[ModuleType] = []


def _modules() -> list[ModuleType]:
    if not _loaded:
        for name in _MODULES:
            try:
                _loaded.append(importlib.import_module(name))
            except ImportError:  # pragma: no cover - a JAX without the module
                continue
    return _loaded


def find_primitive(
    name: str, *alternatives: str, error: type[SymmlError] = SymmlError
) -> jexc.Primitive:
    """The JAX primitive bound to the attribute `name` (e.g. `"copy_p"`).

    **Arguments:**

    - `name`: the attribute name, spelled as in `jax.extend.core.primitives`.
    - `alternatives`: other spellings of the same primitive in other JAX
      versions (`"pjit_p"` for `"jit_p"`), tried in order.
    - `error`: the error class to raise.

    **Returns:**

    The primitive.

    **Raises:**

    `error` if no spelling names a primitive of the installed JAX, so that a
    rule table with a typo or a primitive JAX removed fails at import instead
    of skipping the rule.
    """
    for candidate in (name, *alternatives):
        for module in _modules():
            prim = getattr(module, candidate, None)
            if isinstance(prim, jexc.Primitive):
                return prim
    spellings = " or ".join(f"`{n}`" for n in (name, *alternatives))
    raise error(
        f"The installed JAX {jax.__version__} defines no primitive {spellings} "
        f"(searched {', '.join(_MODULES)}). Fix the name in the rule table, or "
        "install the JAX version symml supports."
    )


# The primitives that call an inner jaxpr on their operands, and the parameter
# that holds it. Every interpreter walks the inner jaxpr with its own rules.
CALL_PRIMITIVES: Mapping[jexc.Primitive, str] = MappingProxyType(
    {
        find_primitive("jit_p", "pjit_p"): "jaxpr",
        find_primitive("closed_call_p"): "call_jaxpr",
        find_primitive("call_p"): "call_jaxpr",
        find_primitive("custom_jvp_call_p"): "call_jaxpr",
        find_primitive("custom_vjp_call_p"): "call_jaxpr",
        find_primitive("remat_p", "checkpoint_p"): "jaxpr",
    }
)

_FLOAT: dict[Any, bool] = {}


def is_float(aval: Any) -> bool:
    """Whether an abstract value has a floating (or complex) dtype."""
    dtype = getattr(aval, "dtype", None)
    try:
        return _FLOAT[dtype]
    except KeyError:
        out = dtype is not None and bool(jax.numpy.issubdtype(dtype, np.inexact))
        _FLOAT[dtype] = out
        return out
    except TypeError:  # an unhashable dtype (extended dtypes)
        return False


def bind(eqn: jexc.JaxprEqn, invals: Sequence[Any]) -> list:
    """Apply an equation's primitive to values, as `jax.core.eval_jaxpr` does."""
    prim = eqn.primitive
    out = prim.bind(*invals, **prim.get_bind_params(eqn.params))
    return list(out) if prim.multiple_results else [out]


class AbstractInterpreter(abc.ABC):
    """Walk a jaxpr, applying a rule from `rules` to every tracked equation.

    A value is *tracked* when it is an instance of `tracked` (a Taylor series,
    a dependency set); everything else is a plain value of the subclass's
    choosing (an array, a lazily computed constant). Subclasses say what a
    literal is, what an untracked equation gives, how a rule is called, and
    which error a missing rule is.
    """

    tracked: ClassVar[type]
    rules: Mapping[jexc.Primitive, Any]

    @abc.abstractmethod
    def constant(self, value: Any) -> Any:
        """A literal or closed-over constant as a value of this interpreter."""

    @abc.abstractmethod
    def untracked(self, eqn: jexc.JaxprEqn, invals: list) -> list:
        """The outputs of an equation none of whose inputs is tracked."""

    @abc.abstractmethod
    def no_float_outputs(self, eqn: jexc.JaxprEqn, invals: list) -> list:
        """The outputs of an equation with tracked inputs but no floating output."""

    @abc.abstractmethod
    def apply(self, rule: Any, eqn: jexc.JaxprEqn, invals: list) -> list:
        """Call `rule` for `eqn`; one output value per output variable."""

    @abc.abstractmethod
    def missing_rule(self, eqn: jexc.JaxprEqn) -> SymmlError:
        """The error for a tracked equation whose primitive has no rule."""

    def run(self, jaxpr: Any, args: Sequence[Any], consts: Sequence[Any] = ()) -> list:
        """Evaluate `jaxpr` (a `Jaxpr` or `ClosedJaxpr`) on `args`."""
        if isinstance(jaxpr, jexc.ClosedJaxpr):
            consts, jaxpr = jaxpr.consts, jaxpr.jaxpr
        env: dict = {}
        literal, tracked, rules = jexc.Literal, self.tracked, self.rules
        for var, value in zip(jaxpr.constvars, consts, strict=True):
            env[var] = self.constant(value)
        for var, value in zip(jaxpr.invars, args, strict=True):
            env[var] = value
        for eqn in jaxpr.eqns:
            invals = [
                self.constant(v.val) if type(v) is literal else env[v]
                for v in eqn.invars
            ]
            if not any(isinstance(v, tracked) for v in invals):
                outs = self.untracked(eqn, invals)
            elif not any(is_float(v.aval) for v in eqn.outvars):
                outs = self.no_float_outputs(eqn, invals)
            else:
                prim = eqn.primitive
                rule = rules.get(prim)
                if rule is not None:
                    outs = self.apply(rule, eqn, invals)
                elif prim in CALL_PRIMITIVES:
                    outs = self.run(eqn.params[CALL_PRIMITIVES[prim]], invals)
                else:
                    raise self.missing_rule(eqn)
            for var, value in zip(eqn.outvars, outs, strict=True):
                env[var] = value
        return [
            self.constant(v.val) if type(v) is literal else env[v]
            for v in jaxpr.outvars
        ]
