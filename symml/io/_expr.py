"""Sympy expressions as JSON trees, parsed back without `eval` or pickle.

An expression is written as nested lists, `[class name, *arguments]`, e.g.
`["Mul", ["Integer", "-1"], ["Symbol", "k", {}], ["state", "x", ["Symbol",
"t", {}]]]`. Reading a tree only ever calls the constructor of a class in a
fixed table: sympy's arithmetic, relations, calculus and logic classes, and
every class the lowering stage has a rule for (so a function registered with
[`register_function`][symml.register_function] round-trips, once registered
again before loading). States, fields and unknown terms are written by name
and rebuilt through [`states`][symml.states], [`Field`][symml.Field] and
[`Unknown`][symml.Unknown] from declarations kept beside the trees.
"""

from typing import Any

import mpmath
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.core.numbers import NumberSymbol
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.matrices.expressions.matexpr import MatrixElement

from .._errors import PersistenceError
from ..dsl import Field, FieldFunction, Unknown, UnknownOutput, states
from ..dsl._symbols import StateFunction
from ..lowering import RULES
from ..nets import ACTIVATIONS

# Classes written by name and rebuilt as `cls(*args)` (with `evaluate=False`
# where the constructor takes it, so the tree comes back exactly as written).
_CORE: tuple[type, ...] = (
    sp.Add,
    sp.Mul,
    sp.Pow,
    sp.Tuple,
    sp.Equality,
    sp.Unequality,
    sp.StrictLessThan,
    sp.LessThan,
    sp.StrictGreaterThan,
    sp.GreaterThan,
    sp.Derivative,
    sp.Subs,
    sp.Integral,
    sp.Piecewise,
    ExprCondPair,
    sp.And,
    sp.Or,
    sp.Not,
    sp.Xor,
    sp.ITE,
    sp.Max,
    sp.Min,
    sp.re,
    sp.im,
    sp.arg,
    sp.conjugate,
    sp.sign,
    sp.Abs,
    sp.Heaviside,
    sp.DiracDelta,
    sp.log,
    sp.exp,
    sp.atan2,
    sp.floor,
    sp.ceiling,
    sp.Mod,
    sp.core.symbol.Str,
    sp.ImmutableDenseMatrix,
    sp.MatrixSymbol,
    sp.MatMul,
    sp.MatAdd,
    sp.MatPow,
    sp.Transpose,
    sp.HadamardProduct,
    sp.HadamardPower,
    sp.DiagMatrix,
    sp.Trace,
    sp.ZeroMatrix,
    sp.Identity,
    MatrixElement,
)

# Numbers and constants that are singletons, by name.
_SINGLETONS: dict[str, sp.Basic] = {
    "pi": sp.pi,
    "E": sp.E,
    "EulerGamma": sp.EulerGamma,
    "Catalan": sp.Catalan,
    "GoldenRatio": sp.GoldenRatio,
    "TribonacciConstant": sp.TribonacciConstant,
    "I": sp.I,
    "oo": sp.oo,
    "-oo": -sp.oo,
    "zoo": sp.zoo,
    "nan": sp.nan,
    "true": sp.true,
    "false": sp.false,
}
_SINGLETON_NAMES = {id(v): k for k, v in _SINGLETONS.items()}


def _qualified(cls: type) -> str:
    """The name a class is written under: its sympy name for sympy's classes,
    `module.qualname` for a user's class."""
    if cls.__module__.startswith("sympy."):
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def _table() -> dict[str, type]:
    """`{name: class}` of the classes a tree may build: the fixed core and the
    classes with a lowering rule (looked up now, so rules registered after
    import count)."""
    out = {cls.__name__: cls for cls in _CORE}
    for cls in RULES:
        if isinstance(cls, type) and issubclass(cls, sp.Basic):
            if issubclass(cls, (AppliedUndef, sp.Number, NumberSymbol)):
                continue
            out.setdefault(_qualified(cls), cls)
    return out


def _build(cls: type, args: list) -> sp.Basic:
    try:
        return cls(*args, evaluate=False)
    except TypeError:
        return cls(*args)


def _activation_name(activation, owner: str) -> str:
    if isinstance(activation, str):
        return activation
    name = getattr(activation, "name", None)
    if isinstance(name, str) and ACTIVATIONS.get(name) is activation:
        return name
    raise PersistenceError(
        f"The activation {activation!r} of {owner} is not registered, so it cannot "
        "be saved by name; register it with `symml.nets.register_activation` "
        "(and again before loading)."
    )


class ExprWriter:
    """Writes expressions as trees and collects the declarations of the
    states, fields and unknowns they use (shared by everything in one file)."""

    def __init__(self, value_writer=None):
        self.states: dict[str, dict] = {}
        self.fields: dict[str, dict] = {}
        self.unknowns: dict[str, dict] = {}
        self._unknown_objects: dict[str, Unknown] = {}
        self._field_specs: dict[str, Any] = {}
        self._dummies: dict[sp.Dummy, int] = {}
        self._table = {cls: name for name, cls in _table().items()}
        # Architectures of networks (`network=`) are written as option values.
        self._value_writer = value_writer

    def declarations(self) -> dict:
        return {"states": self.states, "fields": self.fields, "unknowns": self.unknowns}

    def __call__(self, expr) -> list:
        if not isinstance(expr, sp.Basic):
            try:
                expr = sp.sympify(expr, strict=True)
            except sp.SympifyError:
                raise PersistenceError(
                    f"Cannot save {expr!r} of type {type(expr).__name__} as a sympy "
                    "expression."
                ) from None
        return self._node(expr)

    def _node(self, e: sp.Basic) -> list:
        name = _SINGLETON_NAMES.get(id(e))
        if name is not None:
            return ["S", name]
        if isinstance(e, sp.Integer):
            return ["Integer", str(int(e))]
        if isinstance(e, sp.Rational):
            return ["Rational", str(e.p), str(e.q)]
        if isinstance(e, sp.Float):
            sign, man, exp, _ = e._mpf_
            return ["Float", str(-man if sign else man), int(exp), int(e._prec)]
        if isinstance(e, sp.Dummy):
            index = self._dummies.setdefault(e, len(self._dummies))
            return ["Dummy", e.name, index, _assumptions(e)]
        if isinstance(e, sp.Symbol):
            return ["Symbol", e.name, _assumptions(e)]
        if isinstance(e, StateFunction):
            self._declare_state(e)
            return ["state", e.func.__name__, *map(self._node, e.args)]
        if isinstance(e, FieldFunction):
            self._declare_field(e)
            return ["field", e.func.__name__, *map(self._node, e.args)]
        if isinstance(e, UnknownOutput):
            self.declare_unknown(e.unknown)
            return ["unknown", e.unknown.name, e.index, *map(self._node, e.args)]
        name = self._table.get(type(e))
        if name is None:
            raise PersistenceError(
                f"Cannot save `{e}`: the sympy class `{type(e).__name__}` has no "
                "saved form. Rewrite it with supported functions, or register a "
                "lowering rule for it (`symml.register_function`), which also "
                "makes it savable."
            )
        return [name, *map(self._node, e.args)]

    def _declare_state(self, e) -> None:
        name = e.func.__name__
        if name not in self.states or not self.states[name]["variables"]:
            variables = [self._node(a) for a in e.args if isinstance(a, sp.Symbol)]
            full = len(variables) == len(e.args)
            self.states[name] = {"variables": variables if full else []}

    def _declare_field(self, e) -> None:
        name = e.func.__name__
        spec = e.func.spec
        known = self._field_specs.get(name)
        if known is not None and known != spec:
            raise PersistenceError(
                f"Two different fields are named `{name}`; a file holds one "
                "declaration per name."
            )
        self._field_specs[name] = spec
        entry = self.fields.get(name)
        if entry is None or not entry["variables"]:
            variables = [self._node(a) for a in e.args if isinstance(a, sp.Symbol)]
            full = len(variables) == len(e.args)
            owner = f"the field `{name}`"
            self.fields[name] = {
                "variables": variables if full else [],
                "hidden": list(spec.hidden),
                "activation": _activation_name(spec.activation, owner),
                "network": self._network(getattr(spec, "network", None), owner),
            }

    def declare_unknown(self, u: Unknown) -> None:
        known = self._unknown_objects.get(u.name)
        if known is u:
            return
        if known is not None:
            raise PersistenceError(
                f"Two different `Unknown`s are named `{u.name}`; a file holds one "
                "declaration per name."
            )
        self._unknown_objects[u.name] = u
        owner = f"the unknown `{u.name}`"
        self.unknowns[u.name] = {
            "inputs": [self._node(i) for i in u.inputs],
            "outputs": u.n_outputs,
            "hidden": list(u.hidden),
            "activation": _activation_name(u.activation, owner),
            "input_range": None
            if u.input_range is None
            else [list(u.input_range[0]), list(u.input_range[1])],
            "network": self._network(getattr(u, "network", None), owner),
        }

    def _network(self, network, owner: str):
        if network is None:
            return None
        if self._value_writer is None:
            raise PersistenceError(
                f"The network architecture of {owner} is not savable."
            )
        return self._value_writer(network, f"the network of {owner}")


def _assumptions(symbol: sp.Symbol) -> dict[str, bool]:
    orig = getattr(symbol, "_assumptions_orig", None)
    if orig is None:  # sympy < 1.12 keeps only the derived assumptions
        orig = symbol.assumptions0
    return {k: bool(v) for k, v in orig.items() if v is not None}


class ExprReader:
    """Reads trees written by `ExprWriter`; builds each declared state, field
    and unknown once, on first use, so that every expression of a file shares
    them."""

    def __init__(self, declarations: dict, value_reader=None):
        self._declared = declarations
        self._states: dict[str, type] = {}
        self._fields: dict[str, type] = {}
        self._unknowns: dict[str, Unknown] = {}
        self._building: set[str] = set()
        self._dummies: dict[int, sp.Dummy] = {}
        self._table = _table()
        self._value_reader = value_reader

    def __call__(self, tree) -> sp.Basic:
        return self._node(tree)

    def _node(self, tree) -> sp.Basic:
        if not isinstance(tree, list) or not tree or not isinstance(tree[0], str):
            raise ValueError(f"an expression node must be [name, ...]; got {tree!r}")
        tag, *rest = tree
        if tag == "S":
            return _SINGLETONS[rest[0]]
        if tag == "Integer":
            return sp.Integer(int(rest[0]))
        if tag == "Rational":
            return sp.Rational(int(rest[0]), int(rest[1]))
        if tag == "Float":
            man, exp, prec = int(rest[0]), int(rest[1]), int(rest[2])
            return sp.Float._new(mpmath.libmp.from_man_exp(man, exp), prec)
        if tag == "Symbol":
            return sp.Symbol(_str(rest[0]), **_checked_assumptions(rest[1]))
        if tag == "Dummy":
            index = int(rest[1])
            if index not in self._dummies:
                self._dummies[index] = sp.Dummy(
                    _str(rest[0]), **_checked_assumptions(rest[2])
                )
            return self._dummies[index]
        if tag == "state":
            return self.state(rest[0])(*map(self._node, rest[1:]))
        if tag == "field":
            return self.field(rest[0])(*map(self._node, rest[1:]))
        if tag == "unknown":
            u = self.unknown(rest[0])
            return u.functions[int(rest[1])](*map(self._node, rest[2:]))
        cls = self._table.get(tag)
        if cls is None:
            raise PersistenceError(
                f"The file uses the sympy class `{tag}`, which is not among the "
                "classes symml rebuilds; if it is a function of yours, register its "
                "lowering rule (`symml.register_function`) before loading."
            )
        return _build(cls, [self._node(a) for a in rest])

    def state(self, name: str) -> type:
        if name not in self._states:
            spec = self._declared["states"][name]
            variables = [self._node(v) for v in spec["variables"]] or [sp.Dummy()]
            self._states[name] = states([_str(name)], *variables)[0].func
        return self._states[name]

    def field(self, name: str) -> type:
        if name not in self._fields:
            spec = self._declared["fields"][name]
            variables = [self._node(v) for v in spec["variables"]] or [sp.Dummy()]
            extra = {}
            if spec.get("network") is not None:
                extra["network"] = self._value_reader(spec["network"])
            self._fields[name] = Field(
                _str(name),
                variables,
                hidden=list(spec["hidden"]),
                activation=spec["activation"],
                **extra,
            ).func
        return self._fields[name]

    def unknown(self, name: str) -> Unknown:
        if name not in self._unknowns:
            if name in self._building:
                raise ValueError(f"the unknown `{name}` is among its own inputs")
            self._building.add(name)
            spec = self._declared["unknowns"][name]
            extra = {}
            if spec.get("network") is not None:
                extra["network"] = self._value_reader(spec["network"])
            self._unknowns[name] = Unknown(
                _str(name),
                [self._node(i) for i in spec["inputs"]],
                int(spec["outputs"]),
                hidden=list(spec["hidden"]),
                activation=spec["activation"],
                input_range=spec["input_range"],
                **extra,
            )
            self._building.discard(name)
        return self._unknowns[name]


def _str(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a name; got {value!r}")
    return value


def _checked_assumptions(assumptions) -> dict[str, bool]:
    if not isinstance(assumptions, dict) or not all(
        isinstance(k, str) and isinstance(v, bool) for k, v in assumptions.items()
    ):
        raise ValueError(f"malformed assumptions {assumptions!r}")
    return assumptions
