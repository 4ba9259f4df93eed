"""`lower`: a Model → a pure JAX function and its initial parameters."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .._errors import LoweringError
from ..dsl import Model, Unknown
from ..nets import make_network
from ._compile import Compiler, Env, compile_exprs


class Params(eqx.Module):
    """Everything a lowered model learns.

    **Fields:**

    - `values`: `{name: scalar array}` for each trainable parameter.
    - `networks`: `{name: network}` for each unknown term or field.
    """

    values: dict[str, Float[Array, ""]]
    networks: dict[str, eqx.Module]


def _unknown_network(u: Unknown, key, dtype, final_scale):
    in_range = u.input_range
    return make_network(
        len(u.inputs),
        u.n_outputs,
        u.hidden,
        u.activation,
        key=key,
        dtype=dtype,
        in_range=in_range,
        final_scale=final_scale,
    )


def init_params(
    model: Model, *, key: PRNGKeyArray, dtype=None, final_scale: float = 1.0
) -> Params:
    """Initial [`Params`][symml.Params] of `model`: trainable parameters at their
    initial values and freshly initialised networks, one key per network in
    declaration order (so adding a network does not change the others)."""
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    values = {
        str(p): jnp.asarray(v, dtype) for p, v in model.trainable_parameters.items()
    }
    networks = {}
    keys = jr.split(key, max(1, len(model.unknowns) + len(model.fields)))
    for k, u in zip(keys, model.unknowns, strict=False):
        networks[u.name] = _unknown_network(u, k, dtype, final_scale)
    for k, f in zip(keys[len(model.unknowns) :], model.fields, strict=False):
        spec = f.func.spec
        networks[spec.name] = make_network(
            len(f.args),
            1,
            spec.hidden,
            spec.activation,
            key=k,
            dtype=dtype,
            in_range=_field_range(f.args, model.domain),
        )
    return Params(values, networks)


def _field_range(variables, domain) -> tuple[list[float], list[float]] | None:
    """The input range of a field's network: its variables' domain, so that a
    field on t ∈ [0, 100] sees inputs in [-1, 1]. A variable without a domain is
    passed through unscaled (the range (-1, 1) is the identity map)."""
    if not any(v in domain for v in variables):
        return None
    lower = [float(domain[v][0]) if v in domain else -1.0 for v in variables]
    upper = [float(domain[v][1]) if v in domain else 1.0 for v in variables]
    return lower, upper


class CompiledRHS:
    """The right-hand side `f(t, u, params) -> du/dt` of a first-order ODE system.

    Pure: safe under `jit`, `vmap` and `grad` (with respect to `t`, `u` and
    `params`, network weights included). Its signature is diffrax's vector
    field signature, so `diffrax.ODETerm(f)` works as it is.

    **Attributes:** `model`, `state_names` (the order of `u`), `scheme`.
    """

    def __init__(self, model: Model, scheme=None, rules=None):
        if model.kind != "ode":
            how = (
                "use `symml.discretize(model, grid)` first"
                if model.kind == "pde"
                else "fit it with `symml.fit`, which builds its residual"
            )
            raise LoweringError(
                f"`lower` compiles ODE models; this is a {model.kind.upper()} model: "
                f"{how}."
            )
        self.model = model
        self.state_names = model.state_names
        self.scheme = scheme
        self._time = model.independent
        self._states = [sp.Dummy(n) for n in model.state_names]
        self._trainable = list(model.trainable_parameters)
        compiler = Compiler(
            bound=[self._time, *self._states, *self._trainable],
            constants=model.fixed_parameters,
            rules=rules,
            derivatives=scheme,
        )
        subs = dict(zip(model.state_vector, self._states, strict=True))
        self._expressions = [e.xreplace(subs) for e in model.rhs]
        self._rhs = compile_exprs(self._expressions, compiler)
        self._requests = compiler.requests
        self._inputs = {
            u.name: compile_exprs([i.xreplace(subs) for i in u.inputs], compiler)
            for u in model.unknowns
        }

    def _env(self, t, u, params: Params) -> Env:
        values = {self._time: t}
        values.update({s: u[i] for i, s in enumerate(self._states)})
        values.update({p: params.values[str(p)] for p in self._trainable})
        return Env(values, params.networks, self._requests)

    def __call__(
        self, t: Scalar, u: Float[Array, " n"], params: Params
    ) -> Float[Array, " n"]:
        u = jnp.asarray(u)
        env = self._env(t, u, params)
        return jnp.stack(
            [jnp.broadcast_to(jnp.asarray(r(env), u.dtype), ()) for r in self._rhs]
        )

    def jacobian_sparsity(self):
        """The `(n, n)` boolean pattern of `d f / d u`, exact from the symbolic
        structure: entry `(i, j)` is set when the right-hand side of state `i`
        involves state `j` (network terms depend on their declared inputs)."""
        import scipy.sparse as ssp

        n = len(self._states)
        rows, cols = [], []
        for i, expr in enumerate(self._expressions):
            for j, s in enumerate(self._states):
                if s in expr.free_symbols:
                    rows.append(i)
                    cols.append(j)
        data = [True] * len(rows)
        return ssp.csr_matrix((data, (rows, cols)), shape=(n, n), dtype=bool)

    def unknown_values(
        self, t: Scalar, u: Float[Array, " n"], params: Params
    ) -> dict[str, tuple[Float[Array, " k"], Float[Array, " m"]]]:
        """`{name: (inputs, outputs)}` of every unknown term at one state: what
        its network sees and what it returns (the data for discovery)."""
        u = jnp.asarray(u)
        env = self._env(t, u, params)
        out = {}
        for name, inputs in self._inputs.items():
            x = jnp.stack(
                [jnp.broadcast_to(jnp.asarray(i(env), u.dtype), ()) for i in inputs]
            )
            out[name] = (x, params.networks[name](x))
        return out

    def __repr__(self) -> str:
        return f"CompiledRHS(states={list(self.state_names)})"


def lower(
    model: Model,
    *,
    key: PRNGKeyArray | None = None,
    derivatives=None,
    dtype=None,
    rules=None,
):
    """Compile an ODE model to a pure JAX right-hand side.

    **Arguments:**

    - `model`: a [`Model`][symml.Model] whose equations are ODEs in its states.
    - `key`: PRNG key for the networks' initial weights (needed when the model
      has unknown terms).
    - `derivatives`: the scheme for derivatives of networks with respect to
      their inputs: a name (`"forward"`, the default; `"reverse"`, `"taylor"`,
      `"fd"`), a scheme object, or a dict from derivatives (`U[0].diff(x)`) to
      schemes with an optional `"default"` entry.
    - `dtype`: the parameter dtype (default: JAX's default float).
    - `rules`: extra lowering rules `{sympy class: rule}` for this call only.

    **Returns:**

    `(f, params)`: `f(t, u, params) -> du/dt` (a [`CompiledRHS`][symml.CompiledRHS])
    and the initial [`Params`][symml.Params].
    """
    if not isinstance(model, Model):
        raise LoweringError(
            f"`lower` needs a symml `Model`; got {type(model).__name__}."
        )
    if key is None:
        if model.unknowns:
            raise LoweringError(
                "The model has unknown terms, so `lower` needs `key=` (e.g. "
                "`jax.random.PRNGKey(0)`) to initialise their networks."
            )
        key = jr.PRNGKey(0)
    f = CompiledRHS(model, derivatives, rules)
    return f, init_params(model, key=key, dtype=dtype)
