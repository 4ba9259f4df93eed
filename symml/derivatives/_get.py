from typing import Any

from .._errors import DerivativeError
from ._fd import FiniteDifference
from ._nested import Forward, Reverse
from ._scheme import AbstractScheme
from ._taylor import Taylor

SCHEMES: dict[str, type[AbstractScheme]] = {
    "reverse": Reverse,
    "forward": Forward,
    "taylor": Taylor,
    "fd": FiniteDifference,
}


def get_scheme(scheme: str | AbstractScheme) -> AbstractScheme:
    """Look a derivative scheme up by name, or pass a scheme instance through.

    **Arguments:**

    - `scheme`: `"reverse"`, `"forward"`, `"taylor"` or `"fd"`, or an
      [`AbstractScheme`][symml.derivatives.AbstractScheme] instance (use an
      instance to set options, e.g. `FiniteDifference(scale=(1.0, 2.0))`).

    **Returns:**

    A scheme instance.
    """
    if isinstance(scheme, AbstractScheme):
        return scheme
    if isinstance(scheme, str) and scheme in SCHEMES:
        return SCHEMES[scheme]()
    names = ", ".join(f"{n!r}" for n in SCHEMES)
    raise DerivativeError(
        f"Unknown derivative scheme {scheme!r} in `scheme`. Use one of {names}, or "
        "pass an instance such as `symml.derivatives.FiniteDifference(step=1e-3)`."
    )


def zero_derivative_order(activation: Any) -> int | None:
    """The lowest derivative order at which `activation` vanishes identically.

    relu (`smooth_orders=1`) gives 2: a model that needs u_tt of a relu network
    gets zero from every scheme and trains to nothing. The lowering stage warns
    with [`ZeroDerivativeWarning`][symml.ZeroDerivativeWarning] when a network is
    differentiated at this order or beyond.

    **Arguments:**

    - `activation`: an `Activation` (anything with a `smooth_orders` attribute:
      the highest order that is not identically zero, `None` if smooth).

    **Returns:**

    `smooth_orders + 1`, or `None` for an infinitely differentiable activation.
    """
    if not hasattr(activation, "smooth_orders"):
        raise DerivativeError(
            f"`activation` must be an `Activation` with a `smooth_orders` attribute; "
            f"got {activation!r}. Look names up with `symml.nets.get_activation`."
        )
    orders = activation.smooth_orders
    return None if orders is None else int(orders) + 1
