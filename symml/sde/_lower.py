"""`lower_sde`: an `SDE` → pure JAX drift and diffusion functions."""

import diffrax as dfx
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from .._errors import LoweringError
from ..dsl._sde import SDE
from ..lowering import Compiler, Env, Params, compile_exprs, init_params


def _stack(values, dtype) -> Array:
    return jnp.stack([jnp.broadcast_to(jnp.asarray(v, dtype), ()) for v in values])


class CompiledSDE:
    """The drift `f(t, u, params) -> (n,)` and the diffusion
    `g(t, u, params) -> (n, m)` of an [`SDE`][symml.SDE].

    Pure: safe under `jit`, `vmap` and `grad` (with respect to `t`, `u` and
    `params`, network weights included). Calling the object gives the drift,
    in diffrax's vector field signature, so `diffrax.ODETerm(f)` works as it
    is; [`terms`][symml.CompiledSDE.terms] builds the drift and diffusion
    terms diffrax's SDE solvers take.

    **Attributes:** `model` (the `SDE`), `state_names` (the order of `u`), `n`,
    `n_noise`, `noise`, `scheme`.
    """

    def __init__(self, model: SDE, scheme=None, rules=None):
        if not isinstance(model, SDE):
            raise LoweringError(
                f"`lower_sde` compiles a `symml.SDE`; got {type(model).__name__}."
            )
        self.model = model
        self.state_names = model.state_names
        self.n = len(model.states)
        self.n_noise = model.n_noise
        self.noise = model.noise
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
        self._subs = dict(zip(model.states, self._states, strict=True))
        self._drift_exprs = {
            c: [e.xreplace(self._subs) for e in model.drift_for(c)]
            for c in ("ito", "stratonovich")
        }
        self._drift = {
            c: compile_exprs(e, compiler) for c, e in self._drift_exprs.items()
        }
        sigma = model.diffusion
        if model.noise == "diagonal":
            entries = [sigma[i, i] for i in range(self.n)]
        else:
            entries = [sigma[i, j] for i in range(self.n) for j in range(self.n_noise)]
        self._diffusion = compile_exprs(
            [e.xreplace(self._subs) for e in entries], compiler
        )
        self._requests = compiler.requests
        self._inputs = {
            u.name: compile_exprs([i.xreplace(self._subs) for i in u.inputs], compiler)
            for u in model.unknowns
        }

    # -- the abstract system interface ------------------------------------------

    def state_shape(self, name: str) -> tuple[int, ...]:
        """The shape of one state (`()`: every state of an SDE is a scalar)."""
        self.state_slice(name)
        return ()

    def state_slice(self, name: str) -> slice:
        """Where the state `name` sits in the flat state vector."""
        try:
            i = self.state_names.index(name)
        except ValueError:
            raise LoweringError(
                f"The SDE has no state {name!r}; its states are "
                f"{list(self.state_names)}."
            ) from None
        return slice(i, i + 1)

    def flatten(self, values) -> Float[Array, " n"]:
        """`{state name or state: value}` → the flat state vector."""
        names = {
            (k if isinstance(k, str) else k.func.__name__): v for k, v in values.items()
        }
        missing = [n for n in self.state_names if n not in names]
        if missing:
            raise LoweringError(
                f"No value given for the state(s) {missing}; give one per state."
            )
        return jnp.stack([jnp.asarray(names[n]) for n in self.state_names])

    def unflatten(self, u: Float[Array, "... n"]) -> dict[str, Array]:
        """The flat state vector (or a batch of them) → `{state name: value}`."""
        return {n: u[..., i] for i, n in enumerate(self.state_names)}

    def initial_state(self, values=None) -> Float[Array, " n"]:
        """The flat state vector from `{state: value}` (zeros if `None`)."""
        if values is None:
            return jnp.zeros((self.n,))
        return self.flatten(values)

    def init_params(self, *, key: PRNGKeyArray, dtype=None) -> Params:
        """Initial [`Params`][symml.Params]: trainable values and networks."""
        return init_params(self.model, key=key, dtype=dtype)

    def jacobian_sparsity(self):
        """The `(n, n)` boolean pattern of `d drift / d u`, from the symbolic
        structure (network terms depend on their declared inputs)."""
        import scipy.sparse as ssp

        inputs = {u.name: u for u in self.model.unknowns}
        rows, cols = [], []
        for i, expr in enumerate(self._drift_exprs[self.model.calculus]):
            used = set(expr.free_symbols)
            for f in expr.atoms(sp.core.function.AppliedUndef):
                if hasattr(f, "unknown"):
                    for inp in inputs[f.unknown.name].inputs:
                        used |= inp.xreplace(self._subs).free_symbols
            for j, s in enumerate(self._states):
                if s in used:
                    rows.append(i)
                    cols.append(j)
        return ssp.csr_matrix(
            ([True] * len(rows), (rows, cols)), shape=(self.n, self.n), dtype=bool
        )

    # -- evaluation ---------------------------------------------------------------

    def _env(self, t, u, params: Params) -> Env:
        values = {self._time: t}
        values.update({s: u[i] for i, s in enumerate(self._states)})
        values.update({p: params.values[str(p)] for p in self._trainable})
        return Env(values, params.networks, self._requests)

    def drift(
        self, t: Scalar, u: Float[Array, " n"], params: Params, calculus: str = "ito"
    ) -> Float[Array, " n"]:
        """The drift for the process read in `calculus` (`"ito"` or
        `"stratonovich"`; converted symbolically when it is not the SDE's own)."""
        u = jnp.asarray(u)
        env = self._env(t, u, params)
        return _stack([r(env) for r in self._drift[calculus]], u.dtype)

    def __call__(
        self, t: Scalar, u: Float[Array, " n"], params: Params
    ) -> Float[Array, " n"]:
        return self.drift(t, u, params, self.model.calculus)

    def diffusion(
        self, t: Scalar, u: Float[Array, " n"], params: Params
    ) -> Float[Array, "n m"]:
        """The diffusion matrix `σ(t, u)`, shape `(n, m)` (diagonal noise as its
        diagonal matrix)."""
        u = jnp.asarray(u)
        env = self._env(t, u, params)
        values = _stack([r(env) for r in self._diffusion], u.dtype)
        if self.noise == "diagonal":
            return jnp.diag(values)
        return values.reshape(self.n, self.n_noise)

    def diffusion_operator(self, t: Scalar, u: Float[Array, " n"], params: Params):
        """The diffusion as a lineax operator: diagonal noise stays diagonal,
        so a step costs `O(n)`, not `O(n²)`."""
        u = jnp.asarray(u)
        env = self._env(t, u, params)
        values = _stack([r(env) for r in self._diffusion], u.dtype)
        if self.noise == "diagonal":
            return lx.DiagonalLinearOperator(values)
        return lx.MatrixLinearOperator(values.reshape(self.n, self.n_noise))

    def terms(self, brownian: dfx.AbstractBrownianPath, *, calculus: str | None = None):
        """diffrax's `MultiTerm(ODETerm(drift), ControlTerm(diffusion, brownian))`
        for solvers of `calculus` (default: the SDE's own)."""
        calculus = calculus or self.model.calculus
        return dfx.MultiTerm(
            dfx.ODETerm(lambda t, u, p: self.drift(t, u, p, calculus)),
            dfx.ControlTerm(self.diffusion_operator, brownian),
        )

    def unknown_values(
        self, t: Scalar, u: Float[Array, " n"], params: Params
    ) -> dict[str, tuple[Float[Array, " k"], Float[Array, " m"]]]:
        """`{name: (inputs, outputs)}` of every unknown term at one state."""
        u = jnp.asarray(u)
        env = self._env(t, u, params)
        out = {}
        for name, inputs in self._inputs.items():
            x = _stack([i(env) for i in inputs], u.dtype)
            out[name] = (x, params.networks[name](x))
        return out

    def __repr__(self) -> str:
        return (
            f"CompiledSDE(states={list(self.state_names)}, noise={self.noise!r}, "
            f"m={self.n_noise})"
        )


def lower_sde(
    model: SDE,
    *,
    key: PRNGKeyArray | None = None,
    derivatives=None,
    dtype=None,
    rules=None,
) -> tuple[CompiledSDE, Params]:
    """Compile an [`SDE`][symml.SDE] to pure JAX drift and diffusion functions.

    **Arguments:**

    - `model`: the `SDE`.
    - `key`: PRNG key for the networks' initial weights (needed when the SDE
      has unknown terms).
    - `derivatives`: the scheme for derivatives of networks (they appear when a
      drift is converted between Itô and Stratonovich); as in
      [`lower`][symml.lower].
    - `dtype`: the parameter dtype (default: JAX's default float).
    - `rules`: extra lowering rules `{sympy class: rule}` for this call only.

    **Returns:**

    `(sde, params)`: a [`CompiledSDE`][symml.CompiledSDE] and the initial
    [`Params`][symml.Params].
    """
    if not isinstance(model, SDE):
        raise LoweringError(
            f"`lower_sde` compiles a `symml.SDE`; got {type(model).__name__}. "
            "Compile ODE models with `symml.lower`."
        )
    if key is None:
        if model.unknowns:
            raise LoweringError(
                "The SDE has unknown terms, so `lower_sde` needs `key=` (e.g. "
                "`jax.random.PRNGKey(0)`) to initialise their networks."
            )
        key = jr.PRNGKey(0)
    compiled = CompiledSDE(model, derivatives, rules)
    return compiled, compiled.init_params(key=key, dtype=dtype)
