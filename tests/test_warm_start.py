"""A warm start (`fit(..., init=previous)`) keeps the units the model declares
for its trainable parameters: a previous fit that left a parameter near zero
must not freeze it there."""

import numpy as np
import pytest
import sympy as sp

import symml as sm

t = sp.Symbol("t")


@pytest.mark.slow
def test_warm_start_from_a_near_zero_parameter_still_moves():
    (x,) = sm.states("x", t)
    k = sp.Symbol("k")
    model = sm.Model([sp.Eq(x.diff(t), -k * x)], parameters={k: sm.trainable(0.5)})
    ts = np.linspace(0.0, 3.0, 21)
    # Data without decay: the first fit drives k to about zero.
    flat = sm.fit(
        model,
        sm.Data(ts, {x: np.full_like(ts, 2.0)}),
        steps=150,
        learning_rate=0.05,
        lbfgs_steps=0,
    )
    assert abs(flat.parameter_values()[k]) < 0.02
    # Then data decaying at k = 0.7 (closed form 2 e^{-0.7 t}), from there.
    # Adam moves k by about the learning rate times its unit per step: in the
    # declared unit (0.5), 150 steps of 0.05 reach 0.7; in units of the
    # near-zero start (< 0.02) they could not pass 0.02 + 150 * 0.05 * 0.02.
    decay = sm.Data(ts, {x: 2.0 * np.exp(-0.7 * ts)})
    warm = sm.fit(model, decay, init=flat, steps=150, learning_rate=0.05, lbfgs_steps=0)
    assert warm.parameter_values()[k] == pytest.approx(0.7, rel=0.1)
