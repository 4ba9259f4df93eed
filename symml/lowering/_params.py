"""Parameters of a lowered model: trainable values and networks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import LoweringError, SymmlError
from ..dsl import Model, Unknown
from ..nets import make_network


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
        network=u.network,
    )


def check_key(key, where: str, error: type[SymmlError] = LoweringError) -> PRNGKeyArray:
    """`key` if it is a JAX PRNG key, else `error` saying how to make one."""
    ok = isinstance(key, jax.Array) and (
        jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
        or (key.dtype == jnp.uint32 and key.shape == (2,))
    )
    if not ok:
        raise error(
            f"`key` of `{where}` must be a JAX PRNG key such as "
            f"`jax.random.PRNGKey(0)`; got {key!r}."
        )
    return key


def check_dtype(dtype, where: str, error: type[SymmlError] = LoweringError):
    """`dtype` as a floating numpy dtype (JAX's default float for `None`), or
    `error` saying what was expected."""
    if dtype is None:
        return jnp.zeros(()).dtype
    given = dtype
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise error(
            f"`dtype` of `{where}` must be a floating dtype such as "
            f"`jax.numpy.float32` or `float64`; got {given!r}."
        )
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise error(
            f"`dtype=float64` in `{where}` needs 64-bit JAX: call "
            "`jax.config.update('jax_enable_x64', True)` before any JAX work."
        )
    return dtype


def init_params(
    model: Model, *, key: PRNGKeyArray, dtype=None, final_scale: float = 1.0
) -> Params:
    """Initial [`Params`][symml.Params] of `model`: trainable parameters at their
    initial values and freshly initialised networks, one key per network in
    declaration order (so adding a network does not change the others).

    **Arguments:**

    - `model`: a [`Model`][symml.Model].
    - `key`: a JAX PRNG key (`jax.random.PRNGKey(seed)`).
    - `dtype`: the parameter dtype (default: JAX's default float).
    - `final_scale`: multiplies the last layer's initial weights of unknown
      terms (a small value starts them near zero).

    **Returns:**

    The [`Params`][symml.Params].
    """
    if not isinstance(model, Model):
        raise LoweringError(
            f"`init_params` needs a symml `Model`; got {type(model).__name__}."
        )
    key = check_key(key, "init_params")
    dtype = check_dtype(dtype, "init_params")
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
            network=spec.network,
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
