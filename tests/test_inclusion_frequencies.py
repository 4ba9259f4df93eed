"""Inclusion frequencies over several discoveries (e.g. one per member of a
bootstrap ensemble), checked on data whose equations are known."""

import numpy as np
import pytest
import sympy as sp

import symml as sm

t = sp.Symbol("t")
(x,) = sm.states("x", t)
ts = np.linspace(0.0, 4.0, 81)


def _found(offset):
    # Exact solution of x' = -0.5 x + offset from x(0) = 2.
    steady = 2.0 * offset
    return sm.discover(sm.Data(ts, {x: steady + (2.0 - steady) * np.exp(-0.5 * ts)}))


def test_frequencies_count_the_discoveries_that_chose_each_term():
    # Two data sets of x' = -0.5 x and one of x' = -0.5 x + 0.3: every
    # discovery chooses x, one in three the constant, none anything else.
    found = [_found(0.0), _found(0.0), _found(0.3)]
    assert [set(map(str, d.terms[x.diff(t)])) for d in found] == [
        {"x(t)"},
        {"x(t)"},
        {"1", "x(t)"},
    ]
    frequencies = sm.inclusion_frequencies(found)
    assert list(frequencies) == [x.diff(t)]
    assert frequencies[x.diff(t)] == {x: 1.0, sp.Integer(1): pytest.approx(1 / 3)}
    assert list(frequencies[x.diff(t)]) == [x, sp.Integer(1)]  # most frequent first


def test_frequencies_refuse_what_is_not_a_list_of_discoveries():
    found = _found(0.0)
    with pytest.raises(sm.DiscoverError, match="list of `symml.Discovery`"):
        sm.inclusion_frequencies([])
    with pytest.raises(sm.DiscoverError, match="list of `symml.Discovery`"):
        sm.inclusion_frequencies(found)
    with pytest.raises(sm.DiscoverError, match="got str"):
        sm.inclusion_frequencies([found, "x"])
    (y,) = sm.states("y", t)
    other = sm.discover(sm.Data(ts, {y: np.exp(-ts)}))
    with pytest.raises(sm.DiscoverError, match="same unknowns or states"):
        sm.inclusion_frequencies([found, other])
