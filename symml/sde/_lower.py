"""`lower_sde`: an `SDE` → pure JAX drift and diffusion functions."""

import diffrax as dfx
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import scipy.sparse as ssp
import sympy as sp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar
from sympy.core.function import AppliedUndef

from .._errors import LoweringError, SDEError
from ..dsl import SDE, UnknownOutput
from ..lowering import AbstractSystem, Env, Params, compile_exprs
from ..lowering._compile import state_compiler


def _stack(values, dtype) -> Array:
    return jnp.stack([jnp.broadcast_to(jnp.asarray(v, dtype), ()) for v in values])


class CompiledSDE(AbstractSystem):
    """The drift `f(t, u, params) -> (n,)` and the diffusion
    `g(t, u, params) -> (n, m)` of an [`SDE`][symml.SDE], as an
    [`AbstractSystem`][symml.AbstractSystem] whose function is the drift.

    Pure: safe under `jit`, `vmap` and `grad` (with respect to `t`, `u` and
    `params`, network weights included). Calling the object gives the drift,
    in diffrax's vector field signature; [`terms`][symml.CompiledSDE.terms]
    builds the drift and diffusion terms diffrax's SDE solvers take, and
    [`simulate`][symml.simulate] draws paths.

    **Attributes:** `model` (the `SDE`), `state_names` (the order of `u`), `n`,
    `n_noise`, `noise`, `scheme`.
    """

    _error = SDEError
    stochastic = True

    def __init__(self, model: SDE, scheme=None, rules=None):
        if not isinstance(model, SDE):
            raise LoweringError(
                f"`lower_sde` compiles a `symml.SDE`; got {type(model).__name__}."
            )
        self._model = model
        self._state_names = model.state_names
        self.n_noise = model.n_noise
        self.noise = model.noise
        self.scheme = scheme
        self._rules_id = None if rules is None else id(rules)
        self._time, self._states, self._trainable, compiler = state_compiler(
            model, scheme, rules
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
        n = len(model.states)
        if model.noise == "diagonal":
            entries = [sigma[i, i] for i in range(n)]
        else:
            entries = [sigma[i, j] for i in range(n) for j in range(self.n_noise)]
        self._diffusion = compile_exprs(
            [e.xreplace(self._subs) for e in entries], compiler
        )
        self._requests = compiler.requests
        self._inputs = {
            u.name: compile_exprs([i.xreplace(self._subs) for i in u.inputs], compiler)
            for u in model.unknowns
        }

    # -- the abstract system interface ------------------------------------------

    @property
    def model(self) -> SDE:
        return self._model

    @property
    def state_names(self) -> tuple[str, ...]:
        return self._state_names

    def state_shape(self, name: str) -> tuple[int, ...]:
        """`()`: every state of an SDE is a scalar."""
        self._name(name)
        return ()

    def _initial_value(self, name: str, value, dtype) -> Array:
        try:
            number = float(sp.sympify(value).xreplace(self._model.fixed_parameters))
        except (TypeError, ValueError, sp.SympifyError):
            raise SDEError(
                f"The initial value of `{name}` must be a number; got {value!r}."
            ) from None
        return jnp.asarray(number, dtype)

    def _default_initial_values(self) -> dict:
        return {}

    def jacobian_sparsity(self):
        """The `(n, n)` boolean pattern of `d drift / d u`, from the symbolic
        structure (network terms depend on their declared inputs)."""
        inputs = {u.name: u for u in self._model.unknowns}
        rows, cols = [], []
        for i, expr in enumerate(self._drift_exprs[self._model.calculus]):
            used = set(expr.free_symbols)
            for f in expr.atoms(AppliedUndef):
                if isinstance(f, UnknownOutput):
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

    def _env(self, t, u, params: Params | None) -> Env:
        if params is None:
            if self.needs_params:
                raise SDEError(
                    "The SDE has unknown terms or trainable parameters; pass "
                    "`params` (e.g. from `lower_sde` or a fit result)."
                )
            params = Params({}, {})
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
        self, t: Scalar, u: Float[Array, " n"], params: Params | None = None
    ) -> Float[Array, " n"]:
        """The drift, in the SDE's own calculus."""
        return self.drift(t, u, params, self._model.calculus)

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
    ) -> dict[str, tuple[Float[Array, "1 k"], Float[Array, "1 m"]]]:
        """`{name: (inputs (1, k), outputs (1, m))}` of every unknown term at
        one state: what its network sees and returns."""
        u = jnp.asarray(u)
        env = self._env(t, u, params)
        out = {}
        for name, inputs in self._inputs.items():
            x = _stack([i(env) for i in inputs], u.dtype)
            out[name] = (x[None], params.networks[name](x)[None])
        return out

    # Two lowerings of the same `SDE` with the same options compute the same
    # functions: equal and hashed alike, they share jit caches (`simulate`
    # called twice on an `SDE` compiles once).
    def _identity(self):
        return (id(self.model), self.scheme, self._rules_id)

    def __eq__(self, other) -> bool:
        return isinstance(other, CompiledSDE) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

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
