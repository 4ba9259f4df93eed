"""The saved forms of symml's own classes: models, observations, lowered
systems, fit results and discoveries.

Each is rebuilt through the public constructors (`Model(...)`, `Data(...)`,
`discretize(...)`, the fit method's own `prepare`), so a loaded object is
validated like a new one and behaves exactly like the one saved.
"""

import dataclasses

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..discovery import Discovery
from ..discovery._discover import _Skeleton
from ..discretization import DiscretizedModel, discretize
from ..dsl import Data, Model
from ..lowering import CompiledRHS, Params
from ..training import PhysicsInformed, PINNResult, UDEResult
from ..training._pinn import _pinn_problem
from ._archive import Reader, Writer, register_format

# -- models and observations ----------------------------------------------------------


register_format(
    Model,
    "Model",
    lambda m, w: w.model(m),
    lambda data, r: r.model(data),
)


def _encode_data(d: Data, w: Writer) -> dict:
    return {
        "t": w.array(d.t),
        "values": [[name, w.array(v)] for name, v in d.values.items()],
    }


def _decode_data(data: dict, r: Reader) -> Data:
    return Data(r.array(data["t"]), {n: r.array(v) for n, v in data["values"]})


register_format(Data, "Data", _encode_data, _decode_data)


# -- lowered systems ------------------------------------------------------------------


def _encode_rhs(system: CompiledRHS, w: Writer) -> dict:
    return {
        "model": w.model(system.model),
        "scheme": w.value(system.scheme, "the derivative scheme"),
    }


register_format(
    CompiledRHS,
    "CompiledRHS",
    _encode_rhs,
    lambda data, r: CompiledRHS(r.model(data["model"]), r.value(data["scheme"])),
)


def _encode_discretized(system: DiscretizedModel, w: Writer) -> dict:
    return {
        "model": w.model(system.model),
        "grid": [
            [w.expr(v), int(n)] for v, n in zip(system.grid, system.shape, strict=True)
        ],
        "order": int(system.order),
    }


def _decode_discretized(data: dict, r: Reader) -> DiscretizedModel:
    grid = {r.expr(v): int(n) for v, n in data["grid"]}
    return discretize(r.model(data["model"]), grid, order=int(data["order"]))


register_format(
    DiscretizedModel, "DiscretizedModel", _encode_discretized, _decode_discretized
)


# -- fit results ----------------------------------------------------------------------


def _dtype_of(params: Params, fallback=None) -> np.dtype:
    for leaf in jax.tree.leaves(params):
        if _inexact(leaf):
            return np.dtype(leaf.dtype)
    return np.dtype(jnp.zeros(()).dtype if fallback is None else fallback)


def _inexact(leaf) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact)


def _common(result, w: Writer, dtype) -> dict:
    """What every fit result carries: metadata as JSON, the weights as leaves."""
    return {
        "params": w.tree(result.params),
        "dtype": np.dtype(dtype).name,
        "history": [
            [name, w.floats(losses)] for name, losses in result.history.items()
        ],
        "wall_time": float(result.wall_time),
        "method": w.value(result.method, "the fit method"),
        "seed": int(result.seed),
    }


def _history(data: dict, r: Reader) -> dict[str, np.ndarray]:
    return {name: r.floats(losses) for name, losses in data["history"]}


def _encode_ude(result: UDEResult, w: Writer) -> dict:
    dtype = _dtype_of(result.params, result.initial_states[0].dtype)
    return {
        **_common(result, w, dtype),
        "model": w.model(result.model),
        "system": w.object(result.system, "the fitted system"),
        "initial_states": [w.array(s) for s in result.initial_states],
        "data": [w.object(d) for d in result.data],
        "options": w.value(result.options, "the solve options"),
    }


def _decode_ude(data: dict, r: Reader) -> UDEResult:
    system = r.object(data["system"])
    model = r.model(data["model"])
    if system.model is not model:
        raise ValueError("the fitted system is not of the fitted model")
    dtype = np.dtype(data["dtype"])
    params = r.tree(data["params"], system.init_params(key=jr.PRNGKey(0), dtype=dtype))
    return UDEResult(
        model=model,
        params=params,
        history=_history(data, r),
        wall_time=float(data["wall_time"]),
        method=r.value(data["method"]),
        seed=int(data["seed"]),
        system=system,
        initial_states=tuple(jnp.asarray(r.array(s)) for s in data["initial_states"]),
        data=tuple(r.object(d) for d in data["data"]),
        options=r.value(data["options"]),
    )


register_format(UDEResult, "UDEResult", _encode_ude, _decode_ude)


def _encode_pinn(result: PINNResult, w: Writer) -> dict:
    return {
        **_common(result, w, _dtype_of(result.params)),
        "model": w.model(result.model),
        "weights": [[name, float(v)] for name, v in result.weights.items()],
        "causal_weights": w.value(result.causal_weights),
        "observations": w.value(tuple(result.data), "the observations"),
    }


def _decode_pinn(data: dict, r: Reader) -> PINNResult:
    # The fit method's own problem builds the result and the evaluators it
    # carries (residuals, unknown samples), in the one place results are
    # built; the trained values then replace the initial ones.
    model = r.model(data["model"])
    method = r.value(data["method"])
    if not isinstance(method, PhysicsInformed):
        raise ValueError(f"a PINNResult fitted by {type(method).__name__}")
    observations = list(r.value(data["observations"]))
    problem = _pinn_problem(
        method,
        model,
        observations,
        seed=int(data["seed"]),
        dtype=np.dtype(data["dtype"]),
        init=None,
    )
    # The trainable pytree has the structure of the parameters (trainable
    # values are in units of their initial size): a template for the leaves.
    params = r.tree(data["params"], problem.trainable)
    history = _history(data, r)
    blank = problem.result(problem.trainable, history, problem.static)
    return dataclasses.replace(
        blank,
        params=params,
        weights={name: float(v) for name, v in data["weights"]},
        causal_weights=r.value(data["causal_weights"]),
        wall_time=float(data["wall_time"]),
    )


register_format(PINNResult, "PINNResult", _encode_pinn, _decode_pinn)


# -- discoveries ----------------------------------------------------------------------


def _table_key(key, w: Writer):
    if isinstance(key, type):  # an unknown output's function
        w.expr.declare_unknown(key.unknown)
        return {"unknown": key.unknown.name, "index": int(key.index)}
    return w.expr(key)


def _encode_discovery(d: Discovery, w: Writer) -> dict:
    skeleton = d._skeleton
    return {
        "expressions": [[w.expr(k), w.expr(v)] for k, v in d.expressions.items()],
        "terms": [
            [w.expr(k), [[w.expr(t), float(c)] for t, c in terms.items()]]
            for k, terms in d.terms.items()
        ],
        "fronts": [
            [w.expr(k), w.value(f, "a Pareto front")] for k, f in d.fronts.items()
        ],
        "model": w.model(d.model),
        "fitted_model": None if d.fitted_model is None else w.model(d.fitted_model),
        "parameter_values": [
            [w.expr(p), float(v)] for p, v in d.parameter_values.items()
        ],
        "details": w.value(d.details, "the discovery's details"),
        "table": [
            [
                _table_key(key, w),
                [w.expr(p) for p in placeholders],
                [[w.expr(t), float(c)] for t, c in pairs],
            ]
            for key, (placeholders, pairs) in d._table.items()
        ],
        "skeleton": None
        if skeleton is None
        else {
            "t": w.expr(skeleton.t),
            "domain": w.value(skeleton.domain),
            "boundary": w.value(skeleton.boundary),
        },
    }


def _decode_discovery(data: dict, r: Reader) -> Discovery:
    table = {}
    for key, placeholders, pairs in data["table"]:
        if isinstance(key, dict):
            key = r.expr.unknown(key["unknown"]).functions[int(key["index"])]
        else:
            key = r.expr(key)
        table[key] = (
            tuple(r.expr(p) for p in placeholders),
            tuple((r.expr(t), float(c)) for t, c in pairs),
        )
    skeleton = data["skeleton"]
    fitted = data["fitted_model"]
    return Discovery(
        expressions={r.expr(k): r.expr(v) for k, v in data["expressions"]},
        terms={
            r.expr(k): {r.expr(t): float(c) for t, c in terms}
            for k, terms in data["terms"]
        },
        fronts={r.expr(k): r.value(f) for k, f in data["fronts"]},
        model=r.model(data["model"]),
        fitted_model=None if fitted is None else r.model(fitted),
        parameter_values={r.expr(p): float(v) for p, v in data["parameter_values"]},
        details=r.value(data["details"]),
        _table=table,
        _skeleton=None
        if skeleton is None
        else _Skeleton(
            t=r.expr(skeleton["t"]),
            domain=r.value(skeleton["domain"]),
            boundary=r.value(skeleton["boundary"]),
        ),
    )


register_format(Discovery, "Discovery", _encode_discovery, _decode_discovery)
