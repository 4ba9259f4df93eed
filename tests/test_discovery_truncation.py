"""Discretisation-aware discovery: the truncation error of the stencils a
universal PDE was fitted with, measured in the unknown's inputs and compared
with the recovered terms, against the closed form of a central difference."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp

import symml
from symml import DiscoverError, TruncationErrorWarning

t, X = sp.symbols("t x")


def _setup(n: int, extra: float = 0.0):
    """`F(u, u_x)` sampled as a method-of-lines fit with second-order stencils
    would see it: u = sin x + ½ sin 2x on a periodic grid, `u_x` by the central
    difference, and a learned term `-u u_x` (plus `extra · u_x³`)."""
    (u,) = symml.states("u", t, X)
    F = symml.Unknown("F", [u, u.diff(X)])
    model = symml.Model(
        sp.Eq(u.diff(t), 0.1 * u.diff(X, 2) + F[0]),
        domain={X: (0, 2 * np.pi)},
        boundary="periodic",
    )
    h = 2 * np.pi / n
    x = h * np.arange(n)
    times = np.linspace(0.0, 1.0, 5)[:, None]
    field = np.exp(-times) * (np.sin(x) + 0.5 * np.sin(2 * x))
    stencil = (np.roll(field, -1, axis=1) - np.roll(field, 1, axis=1)) / (2 * h)
    inputs = np.stack([field.ravel(), stencil.ravel()], axis=1)
    outputs = -inputs[:, 0] * inputs[:, 1] + extra * inputs[:, 1] ** 3
    result = SimpleNamespace(
        model=model,
        unknown_samples=lambda: {"F": (inputs, outputs[:, None])},
        parameter_values=dict,
    )
    grid = SimpleNamespace(order=2, spacing={X: h}, shape=(n,), model=model)
    # The closed form: the central difference of sin(kx) is sin(kh)/h cos(kx).
    exact = np.exp(-times) * (np.cos(x) + np.cos(2 * x))
    error = (stencil - exact).ravel()
    tau = np.sqrt(np.mean((inputs[:, 0] * error) ** 2)) / np.sqrt(np.mean(outputs**2))
    return result, grid, F, u, tau


def test_truncation_error_matches_the_closed_form():
    result, grid, F, u, tau = _setup(16)
    with pytest.warns(TruncationErrorWarning, match=r"order 2 \(h_x = 0.393\)"):
        found = symml.discover(result, discretization=grid)
    assert found.details["truncation_error"][str(F[0])] == pytest.approx(tau, rel=1e-3)
    assert tau > 0.02  # coarse: the coefficients are biased


def test_fine_grid_is_quiet():
    result, grid, F, u, tau = _setup(128)
    assert tau < 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error", symml.SymmlWarning)
        found = symml.discover(result, discretization=grid)
    assert found.details["truncation_error"][str(F[0])] == pytest.approx(tau, rel=1e-3)
    assert set(found.terms[F[0]]) == {u * u.diff(X)}


def test_a_term_of_the_size_of_the_truncation_error_is_named():
    result, grid, F, u, tau = _setup(64, extra=2e-4)
    with pytest.warns(TruncationErrorWarning, match=r"Derivative\(u\(t, x\), x\)\*\*3"):
        symml.discover(
            result,
            discretization=grid,
            selector=symml.BestSubset(symml.AIC(folds=0)),
            max_error=1.0,
        )


def test_error_discretization_of_another_model():
    result, grid, *_ = _setup(16)
    other = SimpleNamespace(order=2, spacing=grid.spacing, shape=grid.shape, model=None)
    with pytest.raises(DiscoverError, match="discretises another model"):
        symml.discover(result, discretization=other)
    with pytest.raises(DiscoverError, match="`discretization` must be the `Discr"):
        symml.discover(result, discretization="order 2")
    data = symml.Data(np.linspace(0, 1, 20), {"u": np.zeros(20)})
    with pytest.raises(DiscoverError, match="`discretization=` applies to a fit"):
        symml.discover(data, discretization=grid)
