r"""Monte Carlo reference for Hamilton–Jacobi–Bellman equations of the form

$$u_t + \Delta u - \lambda \|\nabla u\|^2 = 0, \qquad u(T, x) = g(x).$$

The Hopf–Cole transform $v = e^{-\lambda u}$ turns it into the backward heat
equation $v_t + \Delta v = 0$, so

$$u(t, x) = -\frac1\lambda \ln E\big[\exp(-\lambda\, g(x + \sqrt2\, W_{T-t}))\big],$$

an expectation over one Gaussian vector, estimated here by plain Monte Carlo.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from .._errors import SDEError
from ..dsl import ParabolicPDE


def hjb_reference(
    terminal: Callable | ParabolicPDE,
    x0,
    *,
    key: PRNGKeyArray,
    lam: float = 1.0,
    horizon: float = 1.0,
    samples: int = 2**22,
    chunk: int = 2**15,
    dtype=None,
) -> tuple[float, float]:
    r"""$u(0, x_0)$ of $u_t + \Delta u - \lambda\|\nabla u\|^2 = 0$,
    $u(T, x) = g(x)$, by Monte Carlo over the Hopf–Cole formula.

    **Arguments:**

    - `terminal`: $g$, a JAX function of one point `(d,) -> ()`, or a
      [`ParabolicPDE`][symml.ParabolicPDE] whose terminal condition is used.
    - `x0`: the point, shape `(d,)`.
    - `key`: the PRNG key of the samples.
    - `lam`: $\lambda > 0$.
    - `horizon`: $T$.
    - `samples`: the number of Gaussian samples (rounded up to whole chunks).
    - `chunk`: samples drawn and reduced at once (bounds the memory).
    - `dtype`: of the samples (default: that of `x0`, or JAX's default float);
      sums over chunks are accumulated in float64 on the host, and the weights
      are shifted by a reference exponent so that neither overflows.

    **Returns:** `(value, standard_error)`, the standard error by the delta
    method: $\mathrm{sd}(w) / (\lambda\, \bar w \sqrt n)$ for the weights
    $w = e^{-\lambda g}$.
    """
    if isinstance(terminal, ParabolicPDE):
        from ._bsde import CompiledParabolicPDE

        g = CompiledParabolicPDE(terminal).terminal
    elif callable(terminal):
        g = terminal
    else:
        raise SDEError(
            f"`terminal` is {terminal!r}; expected a function g(x) of one point or "
            "a `symml.ParabolicPDE`."
        )
    if not (math.isfinite(lam) and lam > 0):
        raise SDEError(f"`lam` is {lam}; expected λ > 0.")
    if not (math.isfinite(horizon) and horizon > 0):
        raise SDEError(f"`horizon` is {horizon}; expected T > 0.")
    x0 = jnp.asarray(x0, dtype) if dtype is not None else jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.zeros(()).dtype)
    if x0.ndim != 1:
        raise SDEError(f"`x0` has shape {x0.shape}; expected a vector (d,).")
    chunks = max(1, -(-int(samples) // int(chunk)))
    scale = math.sqrt(2.0 * horizon)

    @jax.jit
    def exponents(k):
        xi = jr.normal(k, (chunk, x0.shape[0]), x0.dtype)
        return -lam * jax.vmap(g)(x0 + scale * xi)

    # Weights relative to the first chunk's largest exponent: exp() of the
    # differences stays in range whatever the size of g.
    first = np.asarray(exponents(jr.fold_in(key, 0)), np.float64)
    ref = float(np.max(first))
    total = total_sq = 0.0
    for i in range(chunks):
        a = first if i == 0 else np.asarray(exponents(jr.fold_in(key, i)), np.float64)
        w = np.exp(a - ref)
        total += float(w.sum())
        total_sq += float((w * w).sum())
    n = chunks * chunk
    mean = total / n
    var = max(total_sq / n - mean * mean, 0.0) * n / (n - 1)
    value = -(math.log(mean) + ref) / lam
    stderr = math.sqrt(var / n) / (mean * lam)
    return value, stderr
