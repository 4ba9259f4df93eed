"""The malformed-input catalogue: what a new user may get wrong, across every
public function, and the error each mistake must get.

Every case is a call that must raise a `SymmlError` subclass (which also
subclasses the matching built-in) whose message says what was received, what
was expected and how to fix it; the test asserts the class and a phrase of
the message. No case may answer with a traceback from inside JAX, numpy,
diffrax or sympy, with no error, or hang. `benchmarks/malformed.py` runs the
same cases and counts the outcomes.

The cases share a few small objects (`World`), built on first use: one tiny
UDE fit and one tiny physics-informed fit (one step each), so the catalogue
runs in about the time of those two compilations.
"""

import functools
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sympy as sp

import symml as sm
from symml import (
    DataError,
    DiscoverError,
    DiscretizeError,
    ExportError,
    FitError,
    LoweringError,
    ModelError,
    PersistenceError,
    SDEError,
    SparsityError,
    SteadyStateInputError,
)

# The tests share module-scoped fits: `--dist loadgroup` runs them on one
# worker, which computes each fit once.
pytestmark = pytest.mark.xdist_group("malformed")

t, X, Y = sp.symbols("t x y")
a, b, k, D = sp.symbols("a b k D")


class World:
    """The objects the cases misuse, each built once, on first use."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.tmp = Path(tempfile.mkdtemp(prefix="symml-malformed-"))

    @functools.cached_property
    def lv(self):
        x, y = sm.states("x y", t)
        U = sm.Unknown("U", [x, y], outputs=2, hidden=[4])
        model = sm.Model(
            [sp.Eq(x.diff(t), a * x + U[0]), sp.Eq(y.diff(t), -y + U[1])],
            parameters={a: 1.3},
            conditions=[sp.Eq(x.subs(t, 0), 1), sp.Eq(y.subs(t, 0), 1)],
        )
        return SimpleNamespace(model=model, x=x, y=y, U=U)

    @functools.cached_property
    def decay(self):
        (x,) = sm.states("x", t)
        model = sm.Model(
            [sp.Eq(x.diff(t), -k * x)],
            parameters={k: sm.trainable(0.5)},
            conditions=[sp.Eq(x.subs(t, 0), 2)],
            domain={t: (0, 3)},
        )
        ts = np.linspace(0.0, 3.0, 7)
        return SimpleNamespace(
            model=model, x=x, ts=ts, data=sm.Data(ts, {x: 2 * np.exp(-0.7 * ts)})
        )

    @functools.cached_property
    def result(self):
        d = self.decay
        return sm.fit(d.model, d.data, seed=self.seed, steps=1, lbfgs_steps=0)

    @functools.cached_property
    def rhs(self):
        return sm.lower(self.lv.model, key=jr.PRNGKey(self.seed))

    @functools.cached_property
    def field(self):
        u = sm.Field("u", [t], hidden=[4])
        model = sm.Model(
            [sp.Eq(u.diff(t), -u)],
            conditions=[sp.Eq(u.subs(t, 0), 1)],
            domain={t: (0, 2)},
        )
        return SimpleNamespace(model=model, u=u)

    @functools.cached_property
    def pinn(self):
        method = sm.PhysicsInformed(points=8, boundary_points=1, sampling="uniform")
        return sm.fit(
            self.field.model, method=method, seed=self.seed, steps=1, lbfgs_steps=0
        )

    @functools.cached_property
    def pde(self):
        (rho,) = sm.states("rho", t, X)
        model = sm.Model(
            [sp.Eq(rho.diff(t), D * rho.diff(X, 2) + rho * (1 - rho))],
            parameters={D: 0.01},
            domain={X: (0, 1)},
            boundary="periodic",
        )
        return SimpleNamespace(
            model=model, rho=rho, system=sm.discretize(model, {X: 8})
        )

    @functools.cached_property
    def samples(self):
        """A fit-like object with exact Lotka–Volterra samples."""
        rng = np.random.default_rng(self.seed)
        inputs = rng.uniform(0.0, 5.0, size=(100, 2))
        xy = inputs[:, 0] * inputs[:, 1]
        outputs = np.stack([-0.9 * xy, 0.8 * xy], axis=1)
        return SimpleNamespace(
            model=self.lv.model,
            unknown_samples=lambda: {"U": (inputs, outputs)},
            parameter_values=lambda: {},
        )

    @functools.cached_property
    def sde(self):
        (x,) = sm.states("x", t)
        return SimpleNamespace(x=x, model=sm.SDE([-x], [sp.Float(0.2)], states=[x]))

    @functools.cached_property
    def saved(self) -> Path:
        path = self.tmp / "model.symml"
        sm.save(path, self.lv.model)
        return path

    def damaged(self, how: str) -> Path:
        data = self.saved.read_bytes()
        path = self.tmp / f"{how}.symml"
        if how == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif how == "junk":
            path.write_bytes(b"\x00garbage" * 10)
        elif how == "empty":
            path.write_bytes(b"")
        return path


@dataclass(frozen=True)
class Case:
    """One malformed call: `call(world)` must raise `error` with a message
    matching `match` (a regular expression searched in it). `xfail` gives the
    reason a case is known to fail and is owned by another stage."""

    id: str
    call: Callable[[World], Any]
    error: type[Exception]
    match: str
    xfail: str | None = None


def _x(w):
    return w.lv.x


# Known failures in stages other engineers own now; each is reported.
C = Case
CASES: list[Case] = [
    # -- states, Field, trainable, Unknown -------------------------------------------
    C(
        "states/empty names",
        lambda w: sm.states("", t),
        ModelError,
        "at least one name",
    ),
    C(
        "states/no variable",
        lambda w: sm.states("x"),
        ModelError,
        "at least one independent",
    ),
    C(
        "states/variable is a string",
        lambda w: sm.states("x", "t"),
        ModelError,
        "must be sympy Symbols",
    ),
    C(
        "states/bad identifier",
        lambda w: sm.states("1x", t),
        ModelError,
        "not a valid identifier",
    ),
    C("states/variable twice", lambda w: sm.states("x", t, t), ModelError, "twice"),
    C("states/names an int", lambda w: sm.states(3, t), ModelError, "names"),
    C(
        "states/name not a string",
        lambda w: sm.states(["x", 2], t),
        ModelError,
        "not a valid identifier",
    ),
    C(
        "states/variable an expression",
        lambda w: sm.states("x", t + 1),
        ModelError,
        "must be sympy Symbols",
    ),
    C(
        "Field/no variables",
        lambda w: sm.Field("u", []),
        ModelError,
        "at least one independent",
    ),
    C(
        "Field/hidden a string",
        lambda w: sm.Field("u", [t], hidden="32"),
        ModelError,
        "list of layer widths",
    ),
    C(
        "Field/hidden zero",
        lambda w: sm.Field("u", [t], hidden=[0]),
        ModelError,
        "positive integer widths",
    ),
    C(
        "Field/empty activation",
        lambda w: sm.Field("u", [t], activation=""),
        ModelError,
        "empty string",
    ),
    C(
        "Field/activation a number",
        lambda w: sm.Field("u", [t], activation=3),
        ModelError,
        "activation name",
    ),
    C(
        "Field/network a string",
        lambda w: sm.Field("u", [t], network="mlp"),
        ModelError,
        "network architecture",
    ),
    C(
        "Field/name a number",
        lambda w: sm.Field(3, [t]),
        ModelError,
        "not a valid identifier",
    ),
    C(
        "Field/unknown activation",
        lambda w: sm.init_params(
            sm.Model(
                [sp.Eq(sm.Field("u", [t], activation="nope").diff(t), 0)],
                domain={t: (0, 1)},
            ),
            key=jr.PRNGKey(0),
        ),
        ModelError,
        "Unknown activation 'nope'",
    ),
    C(
        "trainable/a string",
        lambda w: sm.trainable("a"),
        ModelError,
        "needs a real number",
    ),
    C("trainable/NaN", lambda w: sm.trainable(math.nan), ModelError, "must be finite"),
    C(
        "trainable/None",
        lambda w: sm.trainable(None),
        ModelError,
        "needs a real number",
    ),
    C(
        "Unknown/bad name",
        lambda w: sm.Unknown("1U", [_x(w)]),
        ModelError,
        "identifier",
    ),
    C(
        "Unknown/no inputs",
        lambda w: sm.Unknown("U", []),
        ModelError,
        "at least one input",
    ),
    C(
        "Unknown/zero outputs",
        lambda w: sm.Unknown("U", [_x(w)], 0),
        ModelError,
        "positive integer",
    ),
    C(
        "Unknown/fractional outputs",
        lambda w: sm.Unknown("U", [_x(w)], 1.5),
        ModelError,
        "positive integer",
    ),
    C(
        "Unknown/boolean outputs",
        lambda w: sm.Unknown("U", [_x(w)], True),
        ModelError,
        "positive integer",
    ),
    C(
        "Unknown/hidden a string",
        lambda w: sm.Unknown("U", [_x(w)], hidden="32"),
        ModelError,
        "list of layer widths",
    ),
    C(
        "Unknown/hidden zero",
        lambda w: sm.Unknown("U", [_x(w)], hidden=[0]),
        ModelError,
        "positive integer widths",
    ),
    C(
        "Unknown/hidden negative",
        lambda w: sm.Unknown("U", [_x(w)], hidden=[-3]),
        ModelError,
        "positive integer widths",
    ),
    C(
        "Unknown/reversed input_range",
        lambda w: sm.Unknown("U", [_x(w)], input_range=((1,), (0,))),
        ModelError,
        "larger upper bound",
    ),
    C(
        "Unknown/NaN input_range",
        lambda w: sm.Unknown("U", [_x(w)], input_range=((math.nan,), (1,))),
        ModelError,
        "finite lower",
    ),
    C(
        "Unknown/input_range wrong length",
        lambda w: sm.Unknown("U", [_x(w)], input_range=((0, 0), (1, 1))),
        ModelError,
        r"per input \(1\)",
    ),
    C(
        "Unknown/activation None",
        lambda w: sm.Unknown("U", [_x(w)], activation=None),
        ModelError,
        "activation name",
    ),
    C(
        "Unknown/input not sympy",
        lambda w: sm.Unknown("U", [object()]),
        ModelError,
        "inputs",
    ),
    C(
        "Unknown/input a list of lists",
        lambda w: sm.Unknown("U", [[_x(w)]]),
        ModelError,
        "inputs",
    ),
    C("Unknown/index out of range", lambda w: w.lv.U[5], ModelError, "out of range"),
    C("Unknown/index a string", lambda w: w.lv.U["a"], ModelError, "out of range"),
    # -- Model -------------------------------------------------------------------------
    C(
        "Model/equations a number",
        lambda w: sm.Model(3),
        ModelError,
        "must be a sympy `Eq`",
    ),
    C(
        "Model/no equations",
        lambda w: sm.Model([]),
        ModelError,
        "at least one equation",
    ),
    C(
        "Model/equation a string",
        lambda w: sm.Model(["x' = -x"]),
        ModelError,
        "expected a sympy `Eq",
    ),
    C(
        "Model/equation a relation",
        lambda w: sm.Model([_x(w) > 0]),
        ModelError,
        "expected a sympy `Eq",
    ),
    C(
        "Model/undeclared function",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), sp.Function("f")(t))]),
        ModelError,
        "is not declared",
    ),
    C(
        "Model/undeclared symbol",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -b * _x(w))]),
        ModelError,
        "are not declared",
    ),
    C(
        "Model/parameters a list",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -b * _x(w))], parameters=[b]),
        ModelError,
        "must be a dict",
    ),
    C(
        "Model/parameter a string",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -b * _x(w))], parameters={b: "a"}),
        ModelError,
        "expected a real number",
    ),
    C(
        "Model/parameter NaN",
        lambda w: sm.Model(
            [sp.Eq(_x(w).diff(t), -b * _x(w))], parameters={b: math.nan}
        ),
        ModelError,
        "non-finite",
    ),
    C(
        "Model/parameter key a number",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -_x(w))], parameters={1: 2.0}),
        ModelError,
        "must be sympy Symbols",
    ),
    C(
        "Model/parameter a boolean",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -b * _x(w))], parameters={b: True}),
        ModelError,
        "expected a real number",
    ),
    C(
        "Model/domain a list",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -_x(w))], domain=[0, 1]),
        ModelError,
        "must be a dict",
    ),
    C(
        "Model/domain reversed",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -_x(w))], domain={t: (1, 0)}),
        ModelError,
        "lower < upper",
    ),
    C(
        "Model/domain of a string",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -_x(w))], domain={t: (0, "a")}),
        ModelError,
        "pair",
    ),
    C(
        "Model/domain of another variable",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -_x(w))], domain={X: (0, 1)}),
        ModelError,
        "not an independent variable",
    ),
    C(
        "Model/boundary for an ODE",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -_x(w))], boundary="periodic"),
        ModelError,
        "applies to PDE models",
    ),
    C(
        "Model/states and fields mixed",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), sm.Field("u", [t]))]),
        ModelError,
        "mixes states and fields",
    ),
    C(
        "Model/two unknowns one name",
        lambda w: sm.Model(
            [
                sp.Eq(
                    _x(w).diff(t),
                    sm.Unknown("V", [_x(w)])[0] + sm.Unknown("V", [_x(w)])[0],
                )
            ]
        ),
        ModelError,
        "Two different `Unknown`s",
    ),
    C(
        "Model/condition not an initial value",
        lambda w: sm.Model(
            [sp.Eq(_x(w).diff(t), -_x(w))], conditions=[sp.Eq(_x(w), 1)]
        ),
        ModelError,
        "not an initial value",
    ),
    C(
        "Model/initial values at two times",
        lambda w: sm.Model(
            [sp.Eq(w.lv.x.diff(t), -w.lv.y), sp.Eq(w.lv.y.diff(t), w.lv.x)],
            conditions=[sp.Eq(w.lv.x.subs(t, 0), 1), sp.Eq(w.lv.y.subs(t, 1), 0)],
        ),
        ModelError,
        "different times",
    ),
    C(
        "Model/initial value outside the domain",
        lambda w: sm.Model(
            [sp.Eq(_x(w).diff(t), -_x(w))],
            conditions=[sp.Eq(_x(w).subs(t, 5), 1)],
            domain={t: (0, 1)},
        ),
        ModelError,
        "outside the domain",
    ),
    C(
        "Model/initial value given twice",
        lambda w: sm.Model(
            [sp.Eq(_x(w).diff(t), -_x(w))],
            conditions=[sp.Eq(_x(w).subs(t, 0), 1), sp.Eq(_x(w).subs(t, 0), 2)],
        ),
        ModelError,
        "given twice",
    ),
    C(
        "Model/PINN condition outside the domain",
        lambda w: sm.Model(
            [sp.Eq(w.field.u.diff(t), -w.field.u)],
            conditions=[sp.Eq(w.field.u.subs(t, 3), 1)],
            domain={t: (0, 2)},
        ),
        ModelError,
        "outside the domain",
    ),
    C(
        "Model/PDE without a spatial domain",
        lambda w: sm.Model([sp.Eq(w.pde.rho.diff(t), w.pde.rho.diff(X, 2))]),
        ModelError,
        "needs `domain=` for every spatial",
    ),
    C(
        "Model/PDE unknown boundary kind",
        lambda w: sm.Model(
            [sp.Eq(w.pde.rho.diff(t), w.pde.rho.diff(X, 2))],
            domain={X: (0, 1)},
            boundary="wrap",
        ),
        ModelError,
        "not supported",
    ),
    C(
        "Model/PDE second order in time",
        lambda w: sm.Model(
            [sp.Eq(w.pde.rho.diff(t, 2), w.pde.rho.diff(X, 2))], domain={X: (0, 1)}
        ),
        ModelError,
        "exactly first order in time",
    ),
    C(
        "Model/nonlinear in the derivative",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t) ** 2, _x(w))]),
        ModelError,
        "linear",
    ),
    C(
        "Model/singular derivative system",
        lambda w: sm.Model(
            [
                sp.Eq(w.lv.x.diff(t) + w.lv.y.diff(t), w.lv.x),
                sp.Eq(w.lv.x.diff(t) + w.lv.y.diff(t), w.lv.y),
            ]
        ),
        ModelError,
        "singular|cannot be solved|not independent",
    ),
    C(
        "Model/state only at a point",
        lambda w: sm.Model([sp.Eq(w.lv.x.diff(t), w.lv.y.subs(t, 0))]),
        ModelError,
        "appears only evaluated",
    ),
    C(
        "Model/integral of a state",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), sp.Integral(_x(w), (t, 0, t)))]),
        ModelError,
        "integro-differential",
    ),
    C(
        "Model/conditions a number",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -_x(w))], conditions=3),
        ModelError,
        "conditions",
    ),
    C(
        "Model/kind mismatch",
        lambda w: sm.FieldModel([sp.Eq(_x(w).diff(t), -_x(w))]),
        ModelError,
        "describe an ODE model",
    ),
    C(
        "Model/immutable",
        lambda w: setattr(w.decay.model, "equations", ()),
        ModelError,
        "immutable",
    ),
    C(
        "Model/parameter is a variable",
        lambda w: sm.Model([sp.Eq(_x(w).diff(t), -_x(w))], parameters={t: 1.0}),
        ModelError,
        "independent variable of the model",
    ),
    C(
        "Model/same name twice",
        lambda w: sm.Model(
            [sp.Eq(_x(w).diff(t), -sp.Symbol("x") * _x(w))],
            parameters={sp.Symbol("x"): 1.0},
        ),
        ModelError,
        "used for more than one",
    ),
    # -- lower, init_params and the lowered function -----------------------------------
    C(
        "lower/not a model",
        lambda w: sm.lower("x' = -x"),
        LoweringError,
        "needs a symml `Model`",
    ),
    C(
        "lower/unknowns without key",
        lambda w: sm.lower(w.lv.model),
        LoweringError,
        "needs `key=`",
    ),
    C(
        "lower/key an int",
        lambda w: sm.lower(w.lv.model, key=0),
        LoweringError,
        "must be a JAX PRNG key",
    ),
    C(
        "lower/key a float array",
        lambda w: sm.lower(w.lv.model, key=jnp.zeros(2)),
        LoweringError,
        "must be a JAX PRNG key",
    ),
    C(
        "lower/dtype int",
        lambda w: sm.lower(w.decay.model, dtype="int32"),
        LoweringError,
        "floating dtype",
    ),
    C(
        "lower/dtype nonsense",
        lambda w: sm.lower(w.decay.model, dtype="float-ish"),
        LoweringError,
        "floating dtype",
    ),
    C(
        "lower/unknown derivative scheme",
        lambda w: sm.lower(w.decay.model, derivatives="magic"),
        LoweringError,
        "not a derivative scheme",
    ),
    C(
        "lower/rules not a mapping",
        lambda w: sm.lower(w.decay.model, rules=[1]),
        LoweringError,
        "mapping",
    ),
    C(
        "lower/rule key not a class",
        lambda w: sm.lower(w.decay.model, rules={1: lambda e, c: None}),
        LoweringError,
        "sympy class",
    ),
    C(
        "lower/a field model",
        lambda w: sm.lower(w.field.model),
        LoweringError,
        "compiles ODE models",
    ),
    C(
        "lower/a PDE model",
        lambda w: sm.lower(w.pde.model),
        LoweringError,
        "discretise it",
    ),
    C(
        "lower/imaginary unit",
        lambda w: sm.lower(sm.Model([sp.Eq(_x(w).diff(t), sp.I * _x(w))])),
        LoweringError,
        "imaginary unit",
    ),
    C(
        "lower/function without a rule",
        lambda w: sm.lower(sm.Model([sp.Eq(_x(w).diff(t), sp.zeta(_x(w)))])),
        LoweringError,
        "no rule is registered",
    ),
    C(
        "lower/division by zero",
        lambda w: sm.lower(sm.Model([sp.Eq(_x(w).diff(t), _x(w) / sp.Integer(0))])),
        LoweringError,
        "undefined number",
    ),
    C(
        "rhs/state of the wrong length",
        lambda w: w.rhs[0](0.0, jnp.ones(3), w.rhs[1]),
        LoweringError,
        "expected a last axis of size 2",
    ),
    C(
        "rhs/a batch of states",
        lambda w: w.rhs[0](0.0, jnp.ones((4, 2)), w.rhs[1]),
        LoweringError,
        "use `jax.vmap`",
    ),
    C(
        "rhs/no params",
        lambda w: w.rhs[0](0.0, jnp.ones(2)),
        LoweringError,
        "needs `params`",
    ),
    C(
        "rhs/state a string",
        lambda w: w.rhs[0](0.0, "ab", w.rhs[1]),
        LoweringError,
        "`u`",
    ),
    C(
        "rhs/scalar state",
        lambda w: w.rhs[0](0.0, 1.0, w.rhs[1]),
        LoweringError,
        "expected a last axis of size 2",
    ),
    C(
        "rhs/unknown state name",
        lambda w: w.rhs[0].state_slice("z"),
        LoweringError,
        "not a state of the system",
    ),
    C(
        "rhs/initial state missing",
        lambda w: sm.lower(sm.Model([sp.Eq(_x(w).diff(t), -_x(w))]))[0].initial_state(),
        LoweringError,
        "No initial value",
    ),
    C(
        "rhs/initial state NaN",
        lambda w: w.rhs[0].initial_state({"x": math.nan}),
        LoweringError,
        "not finite",
    ),
    C(
        "rhs/initial state a string",
        lambda w: w.rhs[0].initial_state({"x": "a"}),
        LoweringError,
        "must be a number",
    ),
    C(
        "init_params/not a model",
        lambda w: sm.init_params("m", key=jr.PRNGKey(0)),
        LoweringError,
        "needs a symml `Model`",
    ),
    C(
        "init_params/key a string",
        lambda w: sm.init_params(w.lv.model, key="a"),
        LoweringError,
        "must be a JAX PRNG key",
    ),
    C(
        "init_params/dtype int",
        lambda w: sm.init_params(w.lv.model, key=jr.PRNGKey(0), dtype=int),
        LoweringError,
        "floating dtype",
    ),
    # -- solve -------------------------------------------------------------------------
    C(
        "solve/a model",
        lambda w: sm.solve(w.decay.model),
        LoweringError,
        "lowered system",
    ),
    C(
        "solve/y0 wrong length",
        lambda w: sm.solve(w.rhs[0], jnp.ones(3), (0, 1), params=w.rhs[1]),
        LoweringError,
        "size 2",
    ),
    C(
        "solve/y0 NaN",
        lambda w: sm.solve(
            w.rhs[0], jnp.array([math.nan, 1.0]), (0, 1), params=w.rhs[1]
        ),
        LoweringError,
        "not finite",
    ),
    C(
        "solve/y0 unknown state",
        lambda w: sm.solve(w.rhs[0], {"z": 1.0}, (0, 1), params=w.rhs[1]),
        LoweringError,
        "not a state",
    ),
    C(
        "solve/reversed span",
        lambda w: sm.solve(w.rhs[0], None, (1, 0), params=w.rhs[1]),
        LoweringError,
        "t_span",
    ),
    C(
        "solve/NaN span",
        lambda w: sm.solve(w.rhs[0], None, (0, math.nan), params=w.rhs[1]),
        LoweringError,
        "t_span",
    ),
    C(
        "solve/span a string",
        lambda w: sm.solve(w.rhs[0], None, "0 to 1", params=w.rhs[1]),
        LoweringError,
        "t_span",
    ),
    C(
        "solve/saveat outside the span",
        lambda w: sm.solve(w.rhs[0], None, (0, 1), saveat=[0.5, 2.0], params=w.rhs[1]),
        LoweringError,
        "saveat",
    ),
    C(
        "solve/saveat decreasing",
        lambda w: sm.solve(w.rhs[0], None, (0, 1), saveat=[0.5, 0.2], params=w.rhs[1]),
        LoweringError,
        "strictly increasing",
    ),
    C(
        "solve/unknown solver",
        lambda w: sm.solve(w.rhs[0], None, (0, 1), params=w.rhs[1], solver="RK4"),
        LoweringError,
        "not a diffrax ODE solver",
    ),
    C(
        "solve/negative rtol",
        lambda w: sm.solve(w.rhs[0], None, (0, 1), params=w.rhs[1], rtol=-1),
        LoweringError,
        "`rtol` must be a finite positive",
    ),
    C(
        "solve/zero max_steps",
        lambda w: sm.solve(w.rhs[0], None, (0, 1), params=w.rhs[1], max_steps=0),
        LoweringError,
        "`max_steps` must be a positive integer",
    ),
    C(
        "solve/no params",
        lambda w: sm.solve(w.rhs[0], None, (0, 1)),
        LoweringError,
        "params",
    ),
    C(
        "solve/no initial values",
        lambda w: sm.solve(
            sm.lower(sm.Model([sp.Eq(_x(w).diff(t), -_x(w))]))[0], t_span=(0, 1)
        ),
        LoweringError,
        "No initial value",
    ),
    C(
        "solve/no span",
        lambda w: sm.solve(w.rhs[0], params=w.rhs[1]),
        LoweringError,
        "t_span",
    ),
    C(
        "solve/params of another model",
        lambda w: sm.solve(
            w.rhs[0],
            None,
            (0, 1),
            params=sm.init_params(w.decay.model, key=jr.PRNGKey(0)),
        ),
        LoweringError,
        "params",
    ),
    C(
        "Solution/unknown state",
        lambda w: w.result.predict(w.decay.ts)["z"],
        LoweringError,
        "not a state",
    ),
    # -- discretize --------------------------------------------------------------------
    C(
        "discretize/an ODE model",
        lambda w: sm.discretize(w.decay.model, {X: 8}),
        DiscretizeError,
        "PDE",
    ),
    C(
        "discretize/grid a number",
        lambda w: sm.discretize(w.pde.model, 8),
        DiscretizeError,
        "`grid`",
    ),
    C(
        "discretize/grid misses a variable",
        lambda w: sm.discretize(w.pde.model, {}),
        DiscretizeError,
        "no size for the spatial",
    ),
    C(
        "discretize/grid size zero",
        lambda w: sm.discretize(w.pde.model, {X: 0}),
        DiscretizeError,
        "too small",
    ),
    C(
        "discretize/grid size fractional",
        lambda w: sm.discretize(w.pde.model, {X: 8.5}),
        DiscretizeError,
        "integer number of grid points",
    ),
    C(
        "discretize/grid size a string",
        lambda w: sm.discretize(w.pde.model, {X: "64"}),
        DiscretizeError,
        "integer number of grid points",
    ),
    C(
        "discretize/odd order",
        lambda w: sm.discretize(w.pde.model, {X: 8}, order=3),
        DiscretizeError,
        "not supported",
    ),
    C(
        "discretize/grid of the time",
        lambda w: sm.discretize(w.pde.model, {X: 8, t: 4}),
        DiscretizeError,
        "`t`",
    ),
    C(
        "discretize/no boundary kind",
        lambda w: sm.discretize(
            sm.Model(
                [sp.Eq(w.pde.rho.diff(t), w.pde.rho.diff(X, 2))], domain={X: (0, 1)}
            ),
            {X: 8},
        ),
        DiscretizeError,
        "no boundary kind",
    ),
    C(
        "discretized/state of the wrong length",
        lambda w: w.pde.system(0.0, jnp.ones(5)),
        DiscretizeError,
        "size 8",
    ),
    # -- Data --------------------------------------------------------------------------
    C(
        "Data/scalar t",
        lambda w: sm.Data(1.0, {"x": [1.0]}),
        DataError,
        "1-D array of at least two",
    ),
    C(
        "Data/2-D t",
        lambda w: sm.Data(np.ones((2, 2)), {"x": [1, 2]}),
        DataError,
        "1-D array",
    ),
    C(
        "Data/unsorted t",
        lambda w: sm.Data([0, 2, 1], {"x": [1, 2, 3]}),
        DataError,
        "strictly increasing",
    ),
    C(
        "Data/NaN time",
        lambda w: sm.Data([0, math.nan], {"x": [1, 2]}),
        DataError,
        "non-finite times",
    ),
    C(
        "Data/complex t",
        lambda w: sm.Data([0, 1j], {"x": [1, 2]}),
        DataError,
        "complex",
    ),
    C(
        "Data/empty values",
        lambda w: sm.Data([0, 1], {}),
        DataError,
        "non-empty mapping",
    ),
    C(
        "Data/values a list",
        lambda w: sm.Data([0, 1], [1, 2]),
        DataError,
        "non-empty mapping",
    ),
    C(
        "Data/ragged values",
        lambda w: sm.Data([0, 1], {"x": [[1, 2], [3]]}),
        DataError,
        "ragged",
    ),
    C(
        "Data/string values",
        lambda w: sm.Data([0, 1], {"x": ["a", "b"]}),
        DataError,
        "real numbers",
    ),
    C(
        "Data/complex values",
        lambda w: sm.Data([0, 1], {"x": [1 + 1j, 2]}),
        DataError,
        "complex",
    ),
    C(
        "Data/wrong length",
        lambda w: sm.Data([0, 1, 2], {"x": [1, 2]}),
        DataError,
        "one entry per time",
    ),
    C(
        "Data/NaN value",
        lambda w: sm.Data([0, 1], {"x": [1, math.nan]}),
        DataError,
        "non-finite",
    ),
    C(
        "Data/key a number",
        lambda w: sm.Data([0, 1], {3: [1, 2]}),
        DataError,
        "keyed by state",
    ),
    C(
        "Data/state twice",
        lambda w: sm.Data([0, 1], {_x(w): [1, 2], "x": [1, 2]}),
        DataError,
        "observed twice",
    ),
    C(
        "Data/scalar value",
        lambda w: sm.Data([0, 1], {"x": 1.0}),
        DataError,
        "one entry per time",
    ),
    C(
        "Data.from_array/wrong shape",
        lambda w: sm.Data.from_array([0, 1], np.ones((2, 3)), ["x", "y"]),
        DataError,
        r"expected \(T, 2\)",
    ),
    C(
        "Data.from_array/strings",
        lambda w: sm.Data.from_array([0, 1], [["a"], ["b"]], ["x"]),
        DataError,
        "real numbers",
    ),
    # -- fit: the call -----------------------------------------------------------------
    C(
        "fit/not a model",
        lambda w: sm.fit("model", w.decay.data),
        FitError,
        "needs a symml `Model`",
    ),
    C(
        "fit/data a string",
        lambda w: sm.fit(w.decay.model, "data"),
        DataError,
        "must be a `symml.Data`",
    ),
    C(
        "fit/no data for an ODE",
        lambda w: sm.fit(w.decay.model),
        FitError,
        "needs observations",
    ),
    C(
        "fit/unknown method name",
        lambda w: sm.fit(w.decay.model, w.decay.data, method="magic"),
        FitError,
        "is not known",
    ),
    C(
        "fit/method a number",
        lambda w: sm.fit(w.decay.model, w.decay.data, method=3),
        FitError,
        "must be a fit method",
    ),
    C(
        "fit/seed None",
        lambda w: sm.fit(w.decay.model, w.decay.data, seed=None),
        FitError,
        "`seed` must be an integer",
    ),
    C(
        "fit/seed a float",
        lambda w: sm.fit(w.decay.model, w.decay.data, seed=1.5),
        FitError,
        "`seed` must be an integer",
    ),
    C(
        "fit/seed a string",
        lambda w: sm.fit(w.decay.model, w.decay.data, seed="1"),
        FitError,
        "`seed` must be an integer",
    ),
    C(
        "fit/seed too large",
        lambda w: sm.fit(w.decay.model, w.decay.data, seed=2**64),
        FitError,
        r"\[0, 2\*\*32\)",
    ),
    C(
        "fit/seed negative",
        lambda w: sm.fit(w.decay.model, w.decay.data, seed=-1),
        FitError,
        r"\[0, 2\*\*32\)",
    ),
    C(
        "fit/negative steps",
        lambda w: sm.fit(w.decay.model, w.decay.data, steps=-1),
        FitError,
        "`steps`",
    ),
    C(
        "fit/fractional steps",
        lambda w: sm.fit(w.decay.model, w.decay.data, steps=1.5),
        FitError,
        "`steps`",
    ),
    C(
        "fit/negative learning rate",
        lambda w: sm.fit(w.decay.model, w.decay.data, learning_rate=-1),
        FitError,
        "`learning_rate`",
    ),
    C(
        "fit/NaN learning rate",
        lambda w: sm.fit(w.decay.model, w.decay.data, learning_rate=math.nan),
        FitError,
        "`learning_rate`",
    ),
    C(
        "fit/negative lbfgs_steps",
        lambda w: sm.fit(w.decay.model, w.decay.data, lbfgs_steps=-1),
        FitError,
        "`lbfgs_steps`",
    ),
    C(
        "fit/empty phases",
        lambda w: sm.fit(w.decay.model, w.decay.data, phases=[]),
        FitError,
        "`phases`",
    ),
    C(
        "fit/phase a string",
        lambda w: sm.fit(w.decay.model, w.decay.data, phases=["adam"]),
        FitError,
        "item 0 is str",
    ),
    C(
        "fit/phases and steps",
        lambda w: sm.fit(w.decay.model, w.decay.data, phases=[sm.adam(1)], steps=2),
        FitError,
        "not both",
    ),
    C(
        "fit/phases not a list",
        lambda w: sm.fit(w.decay.model, w.decay.data, phases=3),
        FitError,
        "`phases`",
    ),
    C(
        "fit/dtype int",
        lambda w: sm.fit(w.decay.model, w.decay.data, dtype="int32"),
        FitError,
        "floating dtype",
    ),
    C(
        "fit/init not a result",
        lambda w: sm.fit(w.decay.model, w.decay.data, init="last"),
        FitError,
        "previous fit result",
    ),
    C(
        "fit/init of another model",
        lambda w: sm.fit(
            sm.Model(w.decay.model.equations, parameters={k: sm.trainable(1.0)}),
            w.decay.data,
            init=w.result,
        ),
        FitError,
        "another model",
    ),
    C(
        "fit/checkpoint_every alone",
        lambda w: sm.fit(w.decay.model, w.decay.data, checkpoint_every=5),
        FitError,
        "needs `checkpoint=",
    ),
    C(
        "fit/checkpoint_every zero",
        lambda w: sm.fit(
            w.decay.model, w.decay.data, checkpoint=w.tmp / "c", checkpoint_every=0
        ),
        FitError,
        "positive integer",
    ),
    C(
        "fit/checkpoint onto a file",
        lambda w: sm.fit(
            w.decay.model, w.decay.data, checkpoint=w.saved, checkpoint_every=5
        ),
        FitError,
        "is a file",
    ),
    C(
        "fit/resume without checkpoint_every",
        lambda w: sm.fit(w.decay.model, w.decay.data, resume=w.tmp),
        FitError,
        "`resume` needs",
    ),
    C(
        "fit/option of a method",
        lambda w: sm.fit(w.decay.model, w.decay.data, solver="Kvaerno5"),
        FitError,
        "option of the `SolveInLoop` fit method",
    ),
    C(
        "fit/unknown option",
        lambda w: sm.fit(w.decay.model, w.decay.data, epochs=10),
        FitError,
        "unknown option",
    ),
    C(
        "fit/PDE model not discretised",
        lambda w: sm.fit(w.pde.model, w.decay.data),
        FitError,
        "discretise it first",
    ),
    C(
        "fit/data of an unknown state",
        lambda w: sm.fit(w.decay.model, sm.Data([0, 1], {"z": [1, 2]})),
        DataError,
        "not a state of the model",
    ),
    C(
        "fit/data on the wrong grid",
        lambda w: sm.fit(w.pde.system, sm.Data([0, 1], {"rho": np.ones((2, 5))})),
        DataError,
        "discretisation grid",
    ),
    C(
        "fit/data list with a non-Data",
        lambda w: sm.fit(w.decay.model, [w.decay.data, 3]),
        DataError,
        "list of them",
    ),
    C(
        "fit/progress a string",
        lambda w: sm.fit(w.decay.model, w.decay.data, progress="yes"),
        FitError,
        "`progress`",
    ),
    C(
        "fit/PINN with an ODE method",
        lambda w: sm.fit(w.field.model, method=sm.SolveInLoop()),
        FitError,
        "fits ODE models",
    ),
    C(
        "fit/ODE with a PINN method",
        lambda w: sm.fit(w.decay.model, w.decay.data, method=sm.PhysicsInformed()),
        FitError,
        "fits field models",
    ),
    # -- fit methods and phases --------------------------------------------------------
    C(
        "SolveInLoop/unknown solver",
        lambda w: sm.SolveInLoop(solver="RK4"),
        FitError,
        "not a diffrax ODE solver",
    ),
    C(
        "SolveInLoop/zero rtol",
        lambda w: sm.SolveInLoop(rtol=0),
        FitError,
        "`rtol` must be",
    ),
    C(
        "SolveInLoop/negative atol",
        lambda w: sm.SolveInLoop(atol=-1e-8),
        FitError,
        "`atol` must be",
    ),
    C(
        "SolveInLoop/zero max_steps",
        lambda w: sm.SolveInLoop(max_steps=0),
        FitError,
        "`max_steps` must be",
    ),
    C(
        "SolveInLoop/fractional max_steps",
        lambda w: sm.SolveInLoop(max_steps=10.5),
        FitError,
        "`max_steps` must be",
    ),
    C(
        "SolveInLoop/unknown adjoint",
        lambda w: sm.SolveInLoop(adjoint="magic"),
        FitError,
        "`adjoint=",
    ),
    C(
        "SolveInLoop/zero shooting",
        lambda w: sm.SolveInLoop(shooting=0),
        FitError,
        "`shooting`",
    ),
    C(
        "SolveInLoop/too many segments",
        lambda w: sm.fit(
            w.decay.model, w.decay.data, method=sm.SolveInLoop(shooting=50)
        ),
        FitError,
        "segments do not fit",
    ),
    C(
        "SolveInLoop/negative continuity",
        lambda w: sm.SolveInLoop(continuity=-1),
        FitError,
        "`continuity`",
    ),
    C(
        "SolveInLoop/fit_initial a string",
        lambda w: sm.SolveInLoop(fit_initial="yes"),
        FitError,
        "True or False",
    ),
    C(
        "SolveInLoop/penalty a number",
        lambda w: sm.SolveInLoop(penalties=[3]),
        FitError,
        "list of `symml.Penalty`",
    ),
    C(
        "SolveInLoop/initial a list",
        lambda w: sm.fit(
            w.decay.model, w.decay.data, method=sm.SolveInLoop(initial=[1])
        ),
        FitError,
        "`initial` must be a dict",
    ),
    C(
        "SolveInLoop/initial of an unknown state",
        lambda w: sm.fit(
            w.decay.model, w.decay.data, method=sm.SolveInLoop(initial={"z": 1})
        ),
        FitError,
        "not a state",
    ),
    C(
        "SolveInLoop/initial NaN",
        lambda w: sm.fit(
            w.decay.model, w.decay.data, method=sm.SolveInLoop(initial={"x": math.nan})
        ),
        FitError,
        "not finite",
    ),
    C(
        "SolveInLoop/unknown derivative scheme",
        lambda w: sm.SolveInLoop(derivatives="magic"),
        FitError,
        "not a derivative scheme",
    ),
    C(
        "PhysicsInformed/zero points",
        lambda w: sm.PhysicsInformed(points=0),
        FitError,
        "`points`",
    ),
    C(
        "PhysicsInformed/fractional points",
        lambda w: sm.PhysicsInformed(points=10.5),
        FitError,
        "`points`",
    ),
    C(
        "PhysicsInformed/negative boundary points",
        lambda w: sm.PhysicsInformed(boundary_points=-1),
        FitError,
        "`boundary_points`",
    ),
    C(
        "PhysicsInformed/unknown sampling",
        lambda w: sm.PhysicsInformed(sampling="latin"),
        FitError,
        "`sampling",
    ),
    C(
        "PhysicsInformed/zero resample_every",
        lambda w: sm.PhysicsInformed(resample_every=0),
        FitError,
        "`resample_every`",
    ),
    C(
        "PhysicsInformed/unknown adaptive",
        lambda w: sm.PhysicsInformed(adaptive="magic"),
        FitError,
        "`adaptive",
    ),
    C(
        "PhysicsInformed/zero adapt_every",
        lambda w: sm.PhysicsInformed(adapt_every=0),
        FitError,
        "`adapt_every`",
    ),
    C(
        "PhysicsInformed/weights a list",
        lambda w: sm.PhysicsInformed(weights=[1.0]),
        FitError,
        "`weights`",
    ),
    C(
        "PhysicsInformed/weight of no term",
        lambda w: sm.fit(
            w.field.model, method=sm.PhysicsInformed(weights={"bogus": 1.0})
        ),
        FitError,
        "no term of the loss",
    ),
    C(
        "PhysicsInformed/negative weight",
        lambda w: sm.fit(
            w.field.model, method=sm.PhysicsInformed(weights={"equation 0": -1.0})
        ),
        FitError,
        "finite and >= 0",
    ),
    C(
        "PhysicsInformed/unknown derivative scheme",
        lambda w: sm.PhysicsInformed(derivatives="magic"),
        FitError,
        "derivative scheme",
    ),
    C(
        "PhysicsInformed/variable without a range",
        lambda w: sm.fit(sm.Model([sp.Eq(w.field.u.diff(t), -w.field.u)])),
        FitError,
        "has no range",
    ),
    C("adam/negative steps", lambda w: sm.adam(-1), FitError, "`steps`"),
    C("adam/fractional steps", lambda w: sm.adam(1.5), FitError, "`steps`"),
    C(
        "adam/zero learning rate",
        lambda w: sm.adam(10, learning_rate=0),
        FitError,
        "`learning_rate`",
    ),
    C("adam/negative clip", lambda w: sm.adam(10, clip=-1.0), FitError, "`clip`"),
    C("lbfgs/negative steps", lambda w: sm.lbfgs(-5), FitError, "`steps`"),
    C(
        "lbfgs/zero memory",
        lambda w: sm.lbfgs(10, memory_size=0),
        FitError,
        "`memory_size`",
    ),
    C(
        "lbfgs/negative tolerance",
        lambda w: sm.lbfgs(10, tolerance=-1.0),
        FitError,
        "`tolerance`",
    ),
    C(
        "Penalty/expr a string",
        lambda w: sm.Penalty("U_0'(x)**2", over={_x(w): (0, 1)}),
        FitError,
        "`expr`",
    ),
    C(
        "Penalty/over a number",
        lambda w: sm.Penalty(_x(w) ** 2, over=3),
        FitError,
        "`over`",
    ),
    C(
        "Penalty/negative weight",
        lambda w: sm.Penalty(_x(w) ** 2, over={_x(w): (0, 1)}, weight=-1),
        FitError,
        "`weight`",
    ),
    C(
        "Penalty/zero points",
        lambda w: sm.Penalty(_x(w) ** 2, over={_x(w): (0, 1)}, points=0),
        FitError,
        "`points`",
    ),
    C(
        "Penalty/unknown sampling",
        lambda w: sm.Penalty(_x(w) ** 2, over={_x(w): (0, 1)}, sampling="latin"),
        FitError,
        "`sampling",
    ),
    C(
        "register_fit_method/not a method",
        lambda w: sm.register_fit_method(sm.ODEModel, None, int),
        FitError,
        "subclass of `AbstractFitMethod`",
    ),
    # -- fit results -------------------------------------------------------------------
    C(
        "predict/2-D times",
        lambda w: w.result.predict(np.ones((2, 2))),
        FitError,
        "1-D array of finite times",
    ),
    C(
        "predict/decreasing times",
        lambda w: w.result.predict([1.0, 0.5]),
        FitError,
        "strictly increasing",
    ),
    C(
        "predict/NaN time",
        lambda w: w.result.predict([0.0, math.nan]),
        FitError,
        "finite times",
    ),
    C(
        "predict/times before the data",
        lambda w: w.result.predict([-1.0, 1.0]),
        FitError,
        "before trajectory 0",
    ),
    C(
        "predict/trajectory out of range",
        lambda w: w.result.predict(w.decay.ts, trajectory=5),
        FitError,
        "out of range",
    ),
    C(
        "predict/trajectory a string",
        lambda w: w.result.predict(w.decay.ts, trajectory="0"),
        FitError,
        "out of range",
    ),
    C(
        "predict/y0 wrong length",
        lambda w: w.result.predict(w.decay.ts, y0=[1.0, 2.0]),
        FitError,
        r"size 1|expected \(1,\)",
    ),
    C(
        "predict/y0 NaN",
        lambda w: w.result.predict(w.decay.ts, y0=[math.nan]),
        FitError,
        "not finite",
    ),
    C(
        "predict/y0 of an unknown state",
        lambda w: w.result.predict(w.decay.ts, y0={"z": 1.0}),
        FitError,
        "not a state",
    ),
    C(
        "predict/t0 without y0",
        lambda w: w.result.predict(w.decay.ts, t0=0.0),
        FitError,
        "`t0` goes with `y0`",
    ),
    C("predict/times a string", lambda w: w.result.predict("0..3"), FitError, "`t`"),
    C(
        "predict/t0 after t",
        lambda w: w.result.predict(w.decay.ts, y0=[1.0], t0=1.0),
        FitError,
        "before `t0",
    ),
    C(
        "unknown_samples/n too small",
        lambda w: w.result.unknown_samples(1),
        FitError,
        "`n` must be an integer >= 2",
    ),
    C(
        "unknown_samples/n a string",
        lambda w: w.result.unknown_samples("10"),
        FitError,
        "`n` must be an integer >= 2",
    ),
    C(
        "PINN predict/unknown variable",
        lambda w: w.pinn.predict(t=[0.0], z=[1.0]),
        FitError,
        "not variables of the model",
    ),
    C(
        "PINN predict/missing variable",
        lambda w: w.pinn.predict(),
        FitError,
        "needs every independent variable",
    ),
    C(
        "PINN predict/points of the wrong width",
        lambda w: w.pinn.predict(np.ones((3, 2))),
        FitError,
        r"expected \(n, 1\)",
    ),
    C(
        "PINN predict/points and names",
        lambda w: w.pinn.predict(np.ones((3, 1)), t=[0.0]),
        FitError,
        "not both",
    ),
    C(
        "PINN predict/strings",
        lambda w: w.pinn.predict(t=["a"]),
        FitError,
        "coordinates",
    ),
    C(
        "PINN residuals/unknown variable",
        lambda w: w.pinn.residuals(z=[1.0]),
        FitError,
        "not variables of the model",
    ),
    C(
        "PINN residuals/missing variable",
        lambda w: w.pinn.residuals(),
        FitError,
        "needs every independent variable",
    ),
    # -- discover, libraries, selectors ------------------------------------------------
    C(
        "discover/a model before fitting",
        lambda w: sm.discover(w.lv.model),
        DiscoverError,
        "takes a fit result",
    ),
    C(
        "discover/a number",
        lambda w: sm.discover(3),
        DiscoverError,
        "takes a fit result",
    ),
    C(
        "discover/library a number",
        lambda w: sm.discover(w.samples, library=3),
        DiscoverError,
        "library",
    ),
    C(
        "discover/selector a number",
        lambda w: sm.discover(w.samples, selector=3),
        DiscoverError,
        "selector",
    ),
    C(
        "discover/negative max_error",
        lambda w: sm.discover(w.samples, max_error=-1),
        DiscoverError,
        "max_error",
    ),
    C(
        "discover/max_error a string",
        lambda w: sm.discover(w.samples, max_error="a"),
        DiscoverError,
        "max_error",
    ),
    C(
        "discover/model= with a fit",
        lambda w: sm.discover(w.samples, model=w.lv.model),
        DiscoverError,
        "applies to discovery from data",
    ),
    C(
        "discover/discretization= with data",
        lambda w: sm.discover(w.decay.data, discretization=w.pde.system),
        DiscoverError,
        "applies to a fit of a discretised PDE",
    ),
    C(
        "discover/a fit without unknowns",
        lambda w: sm.discover(w.result),
        DiscoverError,
        "no unknown terms",
    ),
    C(
        "discover/empty list",
        lambda w: sm.discover([]),
        DiscoverError,
        "takes a fit result",
    ),
    C(
        "discover/unknown derivative",
        lambda w: sm.discover(w.decay.data, derivative="magic"),
        DiscoverError,
        "derivative",
    ),
    C(
        "discover/grid of the wrong size",
        lambda w: sm.discover(
            sm.Data([0, 1, 2], {"rho": np.ones((3, 4))}), grid={X: np.linspace(0, 1, 5)}
        ),
        DiscoverError,
        "grid",
    ),
    C(
        "discover/unknown boundary",
        lambda w: sm.discover(
            sm.Data(np.linspace(0, 1, 20), {"rho": np.ones((20, 8))}),
            grid={X: np.linspace(0, 1, 8)},
            boundary="wrap",
        ),
        DiscoverError,
        "(?i)boundary",
    ),
    C(
        "discover/too few times",
        lambda w: sm.discover(sm.Data([0, 1], {"x": [1.0, 2.0]})),
        DiscoverError,
        "times|rows|samples",
    ),
    C(
        "discover/NaN samples",
        lambda w: sm.discover(
            SimpleNamespace(
                model=w.lv.model,
                unknown_samples=lambda: {
                    "U": (np.full((10, 2), math.nan), np.ones((10, 2)))
                },
                parameter_values=lambda: {},
            )
        ),
        DiscoverError,
        "not finite",
    ),
    C(
        "discover/samples of the wrong shape",
        lambda w: sm.discover(
            SimpleNamespace(
                model=w.lv.model,
                unknown_samples=lambda: {"U": (np.ones((10, 3)), np.ones((10, 2)))},
                parameter_values=lambda: {},
            )
        ),
        DiscoverError,
        r"expected \(n, 2\)",
    ),
    C(
        "discover/data and a fit mixed",
        lambda w: sm.discover([w.decay.data, w.samples]),
        DiscoverError,
        "Data",
    ),
    C(
        "PolynomialLibrary/negative degree",
        lambda w: sm.PolynomialLibrary(degree=-1),
        DiscoverError,
        "degree",
    ),
    C(
        "PolynomialLibrary/fractional degree",
        lambda w: sm.PolynomialLibrary(degree=1.5),
        DiscoverError,
        "degree",
    ),
    C(
        "FourierLibrary/zero frequencies",
        lambda w: sm.FourierLibrary(0),
        DiscoverError,
        "n_frequencies",
    ),
    C(
        "CustomLibrary/not functions",
        lambda w: sm.CustomLibrary([3]),
        DiscoverError,
        "callable",
    ),
    C(
        "CustomLibrary/a string",
        lambda w: sm.CustomLibrary("sin"),
        DiscoverError,
        "functions",
    ),
    C(
        "DerivativeLibrary/negative order",
        lambda w: sm.DerivativeLibrary(derivative_order=-1),
        DiscoverError,
        "derivative_order",
    ),
    C(
        "STLSQ/negative threshold",
        lambda w: sm.STLSQ(threshold=-1.0),
        DiscoverError,
        "threshold",
    ),
    C(
        "BestSubset/zero subsets",
        lambda w: sm.BestSubset(max_subsets=0),
        DiscoverError,
        "max_subsets",
    ),
    C("Elbow/gain below one", lambda w: sm.Elbow(gain=0.5), DiscoverError, "gain"),
    C(
        "CrossValidation/one fold",
        lambda w: sm.CrossValidation(folds=1),
        DiscoverError,
        "folds",
    ),
    C(
        "Stability/zero resamples",
        lambda w: sm.Stability(n_resamples=0),
        DiscoverError,
        "n_resamples",
    ),
    C("AIC/one fold", lambda w: sm.AIC(folds=1), DiscoverError, "folds"),
    C(
        "SavitzkyGolay/even window",
        lambda w: sm.SavitzkyGolay(window=4),
        DiscoverError,
        "window",
    ),
    C(
        "SavitzkyGolay/degree above window",
        lambda w: sm.SavitzkyGolay(window=3, degree=5),
        DiscoverError,
        "degree",
    ),
    C("Spline/negative lam", lambda w: sm.Spline(lam=-1.0), DiscoverError, "lam"),
    C(
        "TotalVariation/negative alpha",
        lambda w: sm.TotalVariation(alpha=-1.0),
        DiscoverError,
        "alpha",
    ),
    C(
        "WeakForm/negative width",
        lambda w: sm.WeakForm(width=-1.0),
        DiscoverError,
        "width",
    ),
    C(
        "FiniteDifference/zero accuracy",
        lambda w: sm.FiniteDifference(accuracy=0),
        DiscoverError,
        "accuracy",
    ),
    C(
        "sparse_regression/1-D inputs",
        lambda w: sm.sparse_regression(
            np.ones(10), np.ones((10, 1)), [a], library=sm.PolynomialLibrary(2)
        ),
        DiscoverError,
        "inputs",
    ),
    C(
        "sparse_regression/targets of another length",
        lambda w: sm.sparse_regression(
            np.ones((10, 1)), np.ones((9, 1)), [a], library=sm.PolynomialLibrary(2)
        ),
        DiscoverError,
        "targets",
    ),
    C(
        "sparse_regression/symbols of the wrong count",
        lambda w: sm.sparse_regression(
            np.ones((10, 2)), np.ones((10, 1)), [a], library=sm.PolynomialLibrary(2)
        ),
        DiscoverError,
        "symbol",
    ),
    C(
        "sparse_regression/NaN inputs",
        lambda w: sm.sparse_regression(
            np.full((10, 1), math.nan),
            np.ones((10, 1)),
            [a],
            library=sm.PolynomialLibrary(2),
        ),
        DiscoverError,
        "finite",
    ),
    C(
        "sparse_regression/no library",
        lambda w: sm.sparse_regression(
            np.ones((10, 1)), np.ones((10, 1)), [a], library=None
        ),
        DiscoverError,
        "library",
    ),
    # -- export ------------------------------------------------------------------------
    C("to_latex/an object", lambda w: sm.to_latex(object()), ExportError, "to_latex"),
    C("to_latex/a dict", lambda w: sm.to_latex({"a": 1}), ExportError, "to_latex"),
    C("to_latex/None", lambda w: sm.to_latex(None), ExportError, "to_latex"),
    C("to_latex/a string", lambda w: sm.to_latex("x' = -x"), ExportError, "to_latex"),
    C(
        "to_latex/negative digits",
        lambda w: sm.to_latex(w.decay.model, digits=-1),
        ExportError,
        "digits",
    ),
    C(
        "to_latex/digits a string",
        lambda w: sm.to_latex(w.decay.model, digits="3"),
        ExportError,
        "digits",
    ),
    C(
        "to_latex/a list with an object",
        lambda w: sm.to_latex([sp.Eq(a, b), object()]),
        ExportError,
        "to_latex",
    ),
    C(
        "write_latex/onto a directory",
        lambda w: sm.write_latex(w.tmp, w.decay.model),
        ExportError,
        "is a directory",
    ),
    C(
        "write_latex/into a missing directory",
        lambda w: sm.write_latex(w.tmp / "no" / "m.tex", w.decay.model),
        ExportError,
        "does not exist",
    ),
    C(
        "write_latex/path a number",
        lambda w: sm.write_latex(3.5, w.decay.model),
        ExportError,
        "`path` must be a file name",
    ),
    C(
        "write_latex/None",
        lambda w: sm.write_latex(w.tmp / "m.tex", None),
        ExportError,
        "to_latex",
    ),
    # -- sparsity ----------------------------------------------------------------------
    C(
        "jacobian_sparsity/not a function",
        lambda w: sm.jacobian_sparsity(3, jnp.ones(2)),
        SparsityError,
        "callable",
    ),
    C(
        "jacobian_sparsity/no point",
        lambda w: sm.jacobian_sparsity(lambda x: x**2),
        SparsityError,
        "`x`",
    ),
    C(
        "jacobian_sparsity/point a string",
        lambda w: sm.jacobian_sparsity(lambda x: x**2, "ab"),
        SparsityError,
        "`x`",
    ),
    C(
        "jacobian_sparsity/a field model",
        lambda w: sm.jacobian_sparsity(w.field.model),
        ModelError,
        "has fields, not states",
    ),
    C(
        "hessian_sparsity/vector output",
        lambda w: sm.hessian_sparsity(lambda x: x**2, jnp.ones(3)),
        SparsityError,
        "scalar",
    ),
    C(
        "hessian_sparsity/not a function",
        lambda w: sm.hessian_sparsity(3, jnp.ones(3)),
        SparsityError,
        "callable",
    ),
    C(
        "color_columns/a string",
        lambda w: sm.color_columns("abc"),
        SparsityError,
        "pattern",
    ),
    C(
        "color_columns/unknown ordering",
        lambda w: sm.color_columns(np.eye(3, dtype=bool), ordering="magic"),
        SparsityError,
        "ordering",
    ),
    C(
        "color_columns/1-D pattern",
        lambda w: sm.color_columns(np.ones(3, dtype=bool)),
        SparsityError,
        "pattern",
    ),
    C(
        "compressed_jacobian/colours of the wrong length",
        lambda w: sm.compressed_jacobian(
            lambda x: x**2, jnp.ones(3), np.eye(3, dtype=bool), np.zeros(2, int)
        ),
        SparsityError,
        "colors",
    ),
    C(
        "compressed_jacobian/invalid colouring",
        lambda w: sm.compressed_jacobian(
            lambda x: x.sum() * x, jnp.ones(3), np.ones((3, 3), bool), np.zeros(3, int)
        ),
        SparsityError,
        "not a valid",
    ),
    C(
        "compressed_jacobian/pattern of the wrong shape",
        lambda w: sm.compressed_jacobian(
            lambda x: x**2, jnp.ones(3), np.eye(4, dtype=bool), np.arange(4)
        ),
        SparsityError,
        "pattern",
    ),
    # -- registries --------------------------------------------------------------------
    C(
        "register_rule/key a number",
        lambda w: sm.register_rule(3, lambda e, c: None),
        LoweringError,
        "sympy class",
    ),
    C(
        "register_rule/rule a number",
        lambda w: sm.register_rule(sp.sin, 3),
        LoweringError,
        "must be callable",
    ),
    C(
        "register_function/not a sympy class",
        lambda w: sm.register_function(int, jnp.sin),
        LoweringError,
        "sympy class",
    ),
    C(
        "register_function/fn a number",
        lambda w: sm.register_function(sp.sin, 3),
        LoweringError,
        "must be callable",
    ),
    # -- save and load -----------------------------------------------------------------
    C(
        "save/a number",
        lambda w: sm.save(w.tmp / "n.symml", 3),
        PersistenceError,
        "no saved form for int",
    ),
    C(
        "save/a function",
        lambda w: sm.save(w.tmp / "f.symml", lambda: 0),
        PersistenceError,
        "no saved form for function",
    ),
    C(
        "save/onto a directory",
        lambda w: sm.save(w.tmp, w.lv.model),
        PersistenceError,
        "is a directory",
    ),
    C(
        "save/into a missing directory",
        lambda w: sm.save(w.tmp / "no" / "m.symml", w.lv.model),
        PersistenceError,
        "does not exist",
    ),
    C(
        "save/path a number",
        lambda w: sm.save(3.5, w.lv.model),
        PersistenceError,
        "`path` must be a file name",
    ),
    C(
        "load/a missing file",
        lambda w: sm.load(w.tmp / "missing.symml"),
        PersistenceError,
        "does not exist",
    ),
    C("load/a directory", lambda w: sm.load(w.tmp), PersistenceError, "is a directory"),
    C(
        "load/junk",
        lambda w: sm.load(w.damaged("junk")),
        PersistenceError,
        "not a symml file",
    ),
    C(
        "load/an empty file",
        lambda w: sm.load(w.damaged("empty")),
        PersistenceError,
        "not a symml file",
    ),
    C(
        "load/a truncated file",
        lambda w: sm.load(w.damaged("truncated")),
        PersistenceError,
        "truncated",
    ),
    C(
        "load/path None",
        lambda w: sm.load(None),
        PersistenceError,
        "`path` must be a file name",
    ),
    # -- steady states -----------------------------------------------------------------
    C(
        "steady_state/not a system",
        lambda w: sm.steady_state(w.decay.model, [1.0]),
        SteadyStateInputError,
        "system",
    ),
    C(
        "steady_state/guess of the wrong length",
        lambda w: sm.steady_state(w.rhs[0], jnp.ones(3), w.rhs[1]),
        SteadyStateInputError,
        "size 2|length|shape",
    ),
    C(
        "steady_state/NaN guess",
        lambda w: sm.steady_state(w.rhs[0], jnp.array([math.nan, 1.0]), w.rhs[1]),
        SteadyStateInputError,
        "finite",
    ),
    C(
        "steady_state/guess of an unknown state",
        lambda w: sm.steady_state(w.rhs[0], {"z": 1.0}, w.rhs[1]),
        SteadyStateInputError,
        "not states: z",
    ),
    C(
        "steady_state/no params",
        lambda w: sm.steady_state(w.rhs[0], jnp.ones(2)),
        SteadyStateInputError,
        "params",
    ),
    C(
        "steady_state/solver a string",
        lambda w: sm.steady_state(w.rhs[0], jnp.ones(2), w.rhs[1], solver="newton"),
        SteadyStateInputError,
        "solver",
    ),
    C(
        "steady_state/unknown adjoint",
        lambda w: sm.steady_state(w.rhs[0], jnp.ones(2), w.rhs[1], adjoint="magic"),
        SteadyStateInputError,
        "adjoint",
    ),
    C(
        "steady_state/time a string",
        lambda w: sm.steady_state(w.rhs[0], jnp.ones(2), w.rhs[1], t="0"),
        SteadyStateInputError,
        "`t`",
    ),
    C(
        "Newton/zero max_steps",
        lambda w: sm.Newton(max_steps=0),
        SteadyStateInputError,
        "max_steps",
    ),
    C(
        "LevenbergMarquardt/negative rtol",
        lambda w: sm.LevenbergMarquardt(rtol=-1.0),
        SteadyStateInputError,
        "rtol",
    ),
    C(
        "IntegrateToSteady/negative t1",
        lambda w: sm.IntegrateToSteady(t1=-1.0),
        SteadyStateInputError,
        "t1",
    ),
    C("SteadyData/empty", lambda w: sm.SteadyData({}), DataError, "non-empty mapping"),
    C(
        "SteadyData/ragged",
        lambda w: sm.SteadyData({"x": [[1, 2], [3]]}),
        DataError,
        "ragged|rectangular",
    ),
    C(
        "SteadyData/NaN",
        lambda w: sm.SteadyData({"x": [1.0, math.nan]}),
        DataError,
        "finite",
    ),
    C(
        "SteadyData/inputs of another length",
        lambda w: sm.SteadyData({"x": [1.0, 2.0]}, inputs={"a": [1.0, 2.0, 3.0]}),
        DataError,
        "experiment",
    ),
    C(
        "SkipGuess/zero inputs",
        lambda w: sm.SkipGuess(0, 2, key=jr.PRNGKey(0)),
        SteadyStateInputError,
        "n_inputs",
    ),
    C(
        "SkipGuess/key an int",
        lambda w: sm.SkipGuess(1, 2, key=0),
        SteadyStateInputError,
        "key",
    ),
    # -- stochastic models -------------------------------------------------------------
    C(
        "SDE/diffusion of another length",
        lambda w: sm.SDE([-w.sde.x], [1, 2], states=[w.sde.x]),
        ModelError,
        "diffusion",
    ),
    C(
        "SDE/unknown noise",
        lambda w: sm.SDE([-w.sde.x], [1], states=[w.sde.x], noise="pink"),
        ModelError,
        "noise",
    ),
    C(
        "SDE/unknown calculus",
        lambda w: sm.SDE([-w.sde.x], [1], states=[w.sde.x], calculus="malliavin"),
        ModelError,
        "calculus",
    ),
    C(
        "SDE/states not states",
        lambda w: sm.SDE([-a], [1], states=[a]),
        ModelError,
        "state",
    ),
    C(
        "SDE/undeclared symbol",
        lambda w: sm.SDE([-b * w.sde.x], [1], states=[w.sde.x]),
        ModelError,
        "not declared|undeclared",
    ),
    C(
        "simulate/decreasing times",
        lambda w: sm.simulate(w.sde.model, [1.0, 0.0], [1.0], key=jr.PRNGKey(0)),
        SDEError,
        "increasing",
    ),
    C(
        "simulate/zero paths",
        lambda w: sm.simulate(
            w.sde.model, [0.0, 1.0], [1.0], key=jr.PRNGKey(0), paths=0
        ),
        SDEError,
        "paths",
    ),
    C(
        "simulate/unknown solver",
        lambda w: sm.simulate(
            w.sde.model, [0.0, 1.0], [1.0], key=jr.PRNGKey(0), solver="rk4"
        ),
        SDEError,
        "solver",
    ),
    C(
        "simulate/key an int",
        lambda w: sm.simulate(w.sde.model, [0.0, 1.0], [1.0], key=0),
        SDEError,
        "key",
    ),
    C(
        "simulate/y0 of the wrong length",
        lambda w: sm.simulate(
            w.sde.model, [0.0, 1.0], [1.0, 2.0, 3.0], key=jr.PRNGKey(0)
        ),
        SDEError,
        "y0",
    ),
    C(
        "simulate/negative dt",
        lambda w: sm.simulate(
            w.sde.model, [0.0, 1.0], [1.0], key=jr.PRNGKey(0), dt=-0.1
        ),
        SDEError,
        "dt",
    ),
    C(
        "simulate/an ODE model",
        lambda w: sm.simulate(w.decay.model, [0.0, 1.0], [1.0], key=jr.PRNGKey(0)),
        SDEError,
        "SDE",
    ),
    C(
        "lower_sde/not an SDE",
        lambda w: sm.lower_sde(w.decay.model),
        LoweringError,
        "compiles a `symml.SDE`",
    ),
    C(
        "EulerLikelihood/zero batch",
        lambda w: sm.EulerLikelihood(batch_size=0),
        FitError,
        "batch_size",
    ),
    C(
        "DeepBSDE/zero time steps",
        lambda w: sm.DeepBSDE(time_steps=0),
        FitError,
        "time_steps",
    ),
    C(
        "ParabolicPDE/u a string",
        lambda w: sm.ParabolicPDE(
            "u", (t, sp.MatrixSymbol("z", 2, 1)), terminal=0, horizon=1, x0=0
        ),
        ModelError,
        "`u` is",
    ),
    C(
        "ParabolicPDE/negative horizon",
        lambda w: sm.ParabolicPDE(
            sp.Symbol("u"),
            (t, sp.MatrixSymbol("z", 2, 1)),
            terminal=0,
            horizon=-1,
            x0=0,
        ),
        ModelError,
        "horizon",
    ),
]


def _param(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


def test_the_catalogue_is_large_and_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 150


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_malformed_input(case: Case, world: World):
    with pytest.raises(case.error, match=case.match) as info:
        case.call(world)
    # A symml error for a user's mistake also subclasses a built-in, so
    # `except ValueError` (or `RuntimeError`, `OSError`) keeps working.
    if issubclass(case.error, sm.SymmlError):
        assert isinstance(info.value, ValueError | RuntimeError | OSError)
