"""Candidate-term libraries: sympy terms in the inputs of an unknown."""

import abc
import inspect
import itertools
from collections.abc import Callable, Sequence

import sympy as sp

from .._errors import DiscoverError


class AbstractLibrary(abc.ABC):
    """A library of candidate terms for sparse regression.

    Given the input symbols, a library returns a list of sympy expressions in
    them: the candidate terms. The regression's feature matrix is these terms
    evaluated at the samples, so recovered expressions are exact sums of
    coefficient × term.

    Libraries compose: `a + b` has the terms of `a` then those of `b` (a term
    already present is not repeated); `a * b` has every product of a term of `a`
    with a term of `b` (constants excluded from the product, as in pysindy).
    """

    @abc.abstractmethod
    def terms(self, inputs: Sequence[sp.Symbol]) -> list[sp.Expr]:
        """The candidate terms in `inputs`.

        **Arguments:**

        - `inputs`: the input symbols, one per column of the regression inputs.

        **Returns:**

        A list of sympy expressions in `inputs`.
        """

    def __add__(self, other: "AbstractLibrary") -> "ConcatLibrary":
        if not isinstance(other, AbstractLibrary):
            return NotImplemented
        return ConcatLibrary((self, other))

    def __mul__(self, other: "AbstractLibrary") -> "TensoredLibrary":
        if not isinstance(other, AbstractLibrary):
            return NotImplemented
        return TensoredLibrary(self, other)


def _unique(terms: Sequence[sp.Expr]) -> list[sp.Expr]:
    seen: dict[sp.Expr, None] = {}
    for term in terms:
        if term != 0:
            seen.setdefault(term, None)
    return list(seen)


class PolynomialLibrary(AbstractLibrary):
    """All monomials of the inputs up to a total degree.

    Terms come by increasing degree, and within a degree in the order of
    `itertools.combinations_with_replacement` of the inputs: with inputs
    `x, y` and `degree=2`, `1, x, y, x**2, x*y, y**2`.

    **Arguments:**

    - `degree`: the highest total degree (a positive integer).
    - `include_bias`: whether to include the constant term `1`.
    """

    def __init__(self, degree: int = 3, *, include_bias: bool = True):
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise DiscoverError(
                f"`degree` of a `PolynomialLibrary` must be a positive integer; got "
                f"{degree!r}."
            )
        self.degree = degree
        self.include_bias = bool(include_bias)

    def terms(self, inputs: Sequence[sp.Symbol]) -> list[sp.Expr]:
        out: list[sp.Expr] = [sp.Integer(1)] if self.include_bias else []
        for d in range(1, self.degree + 1):
            for combo in itertools.combinations_with_replacement(inputs, d):
                out.append(sp.Mul(*combo))
        return out

    def __repr__(self) -> str:
        return (
            f"PolynomialLibrary(degree={self.degree}, include_bias={self.include_bias})"
        )


class FourierLibrary(AbstractLibrary):
    """Sines and cosines of integer multiples of each input.

    For each input `z` and `k = 1, ..., n_frequencies`: `sin(k z), cos(k z)`.

    **Arguments:**

    - `n_frequencies`: how many multiples (a positive integer).
    """

    def __init__(self, n_frequencies: int = 1):
        if (
            isinstance(n_frequencies, bool)
            or not isinstance(n_frequencies, int)
            or n_frequencies < 1
        ):
            raise DiscoverError(
                f"`n_frequencies` of a `FourierLibrary` must be a positive integer; "
                f"got {n_frequencies!r}."
            )
        self.n_frequencies = n_frequencies

    def terms(self, inputs: Sequence[sp.Symbol]) -> list[sp.Expr]:
        out: list[sp.Expr] = []
        for z in inputs:
            for k in range(1, self.n_frequencies + 1):
                out += [sp.sin(k * z), sp.cos(k * z)]
        return out

    def __repr__(self) -> str:
        return f"FourierLibrary(n_frequencies={self.n_frequencies})"


class CustomLibrary(AbstractLibrary):
    """Terms built by user functions of sympy expressions.

    Each function takes `r` sympy expressions and returns one (or a list of
    them); it is applied to every combination of `r` distinct inputs, in input
    order. A function of one argument is thus applied to each input:

    ```python
    CustomLibrary([lambda z: sp.exp(z), lambda z: 1 / (1 + z**2)])
    CustomLibrary([lambda a, b: sp.sin(a - b)])  # every pair of inputs
    ```

    **Arguments:**

    - `functions`: the callables, each mapping sympy expressions to a sympy
      expression.
    """

    def __init__(self, functions: Sequence[Callable[..., sp.Expr]]):
        functions = list(functions)
        if not functions:
            raise DiscoverError("A `CustomLibrary` needs at least one function.")
        self.arities = []
        for f in functions:
            if not callable(f):
                raise DiscoverError(
                    f"The functions of a `CustomLibrary` must be callables such as "
                    f"`lambda z: sympy.exp(z)`; got {f!r} of type {type(f).__name__}."
                )
            try:
                parameters = inspect.signature(f).parameters.values()
            except (TypeError, ValueError):
                raise DiscoverError(
                    f"Cannot read the signature of {f!r}; wrap it in a lambda, e.g. "
                    "`lambda z: f(z)`."
                ) from None
            arity = sum(
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty
                for p in parameters
            )
            if arity < 1:
                raise DiscoverError(
                    f"The function {f!r} of a `CustomLibrary` takes no argument; it "
                    "must take one sympy expression per input it combines."
                )
            self.arities.append(arity)
        self.functions = functions

    def terms(self, inputs: Sequence[sp.Symbol]) -> list[sp.Expr]:
        out: list[sp.Expr] = []
        for f, arity in zip(self.functions, self.arities, strict=True):
            for combo in itertools.combinations(inputs, arity):
                try:
                    made = f(*combo)
                except Exception as e:
                    raise DiscoverError(
                        f"The function {f!r} of a `CustomLibrary` failed on the sympy "
                        f"input(s) {combo}: {type(e).__name__}: {e}. Write it with "
                        "sympy functions, e.g. `sympy.exp(z)` rather than "
                        "`numpy.exp(z)`."
                    ) from None
                for term in made if isinstance(made, (list, tuple)) else [made]:
                    try:
                        term = sp.sympify(term, strict=True)
                    except sp.SympifyError:
                        term = None
                    if not isinstance(term, sp.Expr):
                        raise DiscoverError(
                            f"The function {f!r} of a `CustomLibrary` returned "
                            f"{made!r} for {combo}; it must return a sympy "
                            "expression, e.g. `sympy.exp(z)` rather than "
                            "`numpy.exp(z)`."
                        )
                    out.append(term)
        return out

    def __repr__(self) -> str:
        return f"CustomLibrary({len(self.functions)} function(s))"


class ConcatLibrary(AbstractLibrary):
    """The terms of several libraries in turn, each term once (`a + b`)."""

    def __init__(self, libraries: Sequence[AbstractLibrary]):
        flat: list[AbstractLibrary] = []
        for lib in libraries:
            if not isinstance(lib, AbstractLibrary):
                raise DiscoverError(
                    f"Only libraries can be combined; got {lib!r} of type "
                    f"{type(lib).__name__}."
                )
            flat += lib.libraries if isinstance(lib, ConcatLibrary) else [lib]
        self.libraries = tuple(flat)

    def terms(self, inputs: Sequence[sp.Symbol]) -> list[sp.Expr]:
        return _unique([t for lib in self.libraries for t in lib.terms(inputs)])

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.libraries))


class TensoredLibrary(AbstractLibrary):
    """Every product of a non-constant term of one library with a non-constant
    term of another (`a * b`), each product once."""

    def __init__(self, left: AbstractLibrary, right: AbstractLibrary):
        self.left = left
        self.right = right

    def terms(self, inputs: Sequence[sp.Symbol]) -> list[sp.Expr]:
        left = [t for t in self.left.terms(inputs) if t.free_symbols]
        right = [t for t in self.right.terms(inputs) if t.free_symbols]
        return _unique([a * b for a in left for b in right])

    def __repr__(self) -> str:
        return f"({self.left!r}) * ({self.right!r})"


def _spatial_variables(inputs: Sequence[sp.Expr], variables, owner: str) -> list:
    fields = [f for f in inputs if isinstance(f, sp.core.function.AppliedUndef)]
    if len(fields) != len(inputs) or not fields:
        raise DiscoverError(
            f"A `{owner}` builds derivatives of fields, so its inputs must be fields "
            f"such as `u(t, x)` (from `symml.states('u', t, x)`); got "
            f"{list(inputs)}. It cannot be used on the inputs of an `Unknown`: give "
            "the unknown the derivatives it needs as inputs (`[u, u.diff(x)]`) and "
            "use a `PolynomialLibrary`."
        )
    if variables is not None:
        return list(variables)
    args = fields[0].args
    if len(args) < 2:
        raise DiscoverError(
            f"The field `{fields[0]}` of a `{owner}` has no spatial variable; a "
            "field depends on time first, then space (`states('u', t, x)`)."
        )
    return list(args[1:])


def _check_order(order, owner: str) -> int:
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise DiscoverError(
            f"`derivative_order` of a `{owner}` must be a non-negative integer; got "
            f"{order!r}."
        )
    return order


def _check_functions(functions, owner: str) -> AbstractLibrary:
    if not isinstance(functions, AbstractLibrary):
        raise DiscoverError(
            f"`functions` of a `{owner}` must be a symml library such as "
            f"`PolynomialLibrary(degree=2)`; got {functions!r}."
        )
    return functions


class PDELibrary(AbstractLibrary):
    """PDE-FIND's library for fields on a grid: functions of the fields, their
    spatial derivatives, and every product of the two.

    For fields `u(t, x)`, `functions=PolynomialLibrary(degree=2)` and
    `derivative_order=2`: `1, u, u², u_x, u_xx, u·u_x, u·u_xx, u²·u_x,
    u²·u_xx`. Derivatives are taken along the spatial variables (every argument
    of the fields after the first, time, unless `variables` says otherwise).

    **Arguments:**

    - `functions`: the library of functions of the fields.
    - `derivative_order`: the highest spatial derivative order.
    - `variables`: the spatial variables, if not all arguments after time.
    """

    def __init__(
        self,
        functions: AbstractLibrary | None = None,
        derivative_order: int = 2,
        *,
        variables: Sequence[sp.Symbol] | None = None,
    ):
        functions = PolynomialLibrary(degree=2) if functions is None else functions
        self.functions = _check_functions(functions, "PDELibrary")
        self.derivative_order = _check_order(derivative_order, "PDELibrary")
        self.variables = None if variables is None else tuple(variables)

    def terms(self, inputs: Sequence[sp.Expr]) -> list[sp.Expr]:
        spatial = _spatial_variables(inputs, self.variables, "PDELibrary")
        base = self.functions.terms(inputs)
        derivatives = [
            sp.Derivative(f, (v, k))
            for f in inputs
            for v in spatial
            for k in range(1, self.derivative_order + 1)
        ]
        products = [b * d for d in derivatives for b in base if b.free_symbols]
        return _unique([*base, *derivatives, *products])

    def __repr__(self) -> str:
        return (
            f"PDELibrary({self.functions!r}, derivative_order={self.derivative_order})"
        )


class DerivativeLibrary(AbstractLibrary):
    """Spatial derivatives of functions of the fields, `∂ₓᵏ f(u)` (the library
    of weak-form PDE discovery, WSINDy): each term can be integrated by parts
    onto a test function, so no derivative of the noisy data is ever taken.

    For `u(t, x)`, `functions=PolynomialLibrary(degree=2, include_bias=False)`
    and `derivative_order=2`: `u, u², ∂ₓu, ∂ₓ(u²), ∂ₓ²u, ∂ₓ²(u²)`. Terms are
    unevaluated sympy `Derivative`s; `Burgers' u·u_x` is `∂ₓ(u²)/2`.

    **Arguments:**

    - `functions`: the library of functions of the fields (constants are
      dropped).
    - `derivative_order`: the highest spatial derivative order.
    - `variables`: the spatial variables, if not all arguments after time.
    """

    def __init__(
        self,
        functions: AbstractLibrary | None = None,
        derivative_order: int = 2,
        *,
        variables: Sequence[sp.Symbol] | None = None,
    ):
        functions = (
            PolynomialLibrary(degree=2, include_bias=False)
            if functions is None
            else functions
        )
        self.functions = _check_functions(functions, "DerivativeLibrary")
        self.derivative_order = _check_order(derivative_order, "DerivativeLibrary")
        self.variables = None if variables is None else tuple(variables)

    def terms(self, inputs: Sequence[sp.Expr]) -> list[sp.Expr]:
        spatial = _spatial_variables(inputs, self.variables, "DerivativeLibrary")
        base = [f for f in self.functions.terms(inputs) if f.free_symbols]
        out = list(base)
        for v in spatial:
            for k in range(1, self.derivative_order + 1):
                out += [sp.Derivative(f, (v, k)) for f in base]
        return _unique(out)

    def __repr__(self) -> str:
        return (
            f"DerivativeLibrary({self.functions!r}, "
            f"derivative_order={self.derivative_order})"
        )
