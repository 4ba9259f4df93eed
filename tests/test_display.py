"""Rich display (LaTeX and HTML in notebooks, text in terminals), progress
bars and the rule that the library never prints."""

import ast
import io
import logging
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import symml as sm
from symml import _progress
from symml.discovery import ParetoFront
from symml.training._progress import Progress

PACKAGE = Path(sm.__file__).parent


@pytest.fixture
def lv():
    t = sp.Symbol("t")
    x, y = sm.states("x y", t)
    alpha, delta = sp.symbols("alpha delta")
    U = sm.Unknown("U", inputs=[x, y], outputs=2, hidden=[4])
    model = sm.Model(
        [sp.Eq(x.diff(t), alpha * x + U[0]), sp.Eq(y.diff(t), -delta * y + U[1])],
        conditions=[sp.Eq(x.subs(t, 0), 1)],
        parameters={alpha: 1.3, delta: sm.trainable(1.5)},
        domain={t: (0, 5)},
    )
    return model, x, y, U, delta


MODEL_LATEX = (
    r"$$\begin{aligned} \frac{d x}{d t} &= \alpha x + U_{0}(x, y) \\ "
    r"\frac{d y}{d t} &= - \delta y + U_{1}(x, y) \\ "
    r"\text{conditions:}\ & x(0) = 1 \\ "
    r"\text{parameters:}\ & \alpha = 1.30,\quad \delta = 1.50\ (\text{trainable})"
    r" \\ \text{domain:}\ & t \in [0, 5] \end{aligned}$$"
)


def test_model_latex(lv):
    model = lv[0]
    assert model._repr_latex_() == MODEL_LATEX


def test_model_text(lv):
    model = lv[0]
    assert str(model) == (
        "ODEModel\n"
        "  dx/dt = alpha*x + U_0(x, y)\n"
        "  dy/dt = -delta*y + U_1(x, y)\n"
        "  conditions: x(0) = 1\n"
        "  parameters: alpha = 1.30, delta = 1.50 (trainable)\n"
        "  domain: t in [0, 5]\n"
        "  unknowns: U(x, y) -> 2 outputs"
    )


def test_pde_model_display():
    t, x = sp.symbols("t x")
    (u,) = sm.states("u", t, x)
    D = sp.Symbol("D")
    model = sm.Model(
        [sp.Eq(u.diff(t), D * u.diff(x, 2))],
        parameters={D: 0.01},
        domain={x: (-1, 1)},
        boundary="periodic",
    )
    assert model._repr_latex_() == (
        r"$$\begin{aligned} \frac{\partial u}{\partial t} &= D "
        r"\frac{\partial^{2} u}{\partial x^{2}} \\ "
        r"\text{parameters:}\ & D = 0.0100 \\ "
        r"\text{domain:}\ & x \in [-1, 1] \\ "
        r"\text{boundary:}\ & x\ \text{periodic} \end{aligned}$$"
    )
    assert str(model) == (
        "PDEModel\n"
        "  ∂u/∂t = D*∂²u/∂x²\n"
        "  parameters: D = 0.0100\n"
        "  domain: x in [-1, 1]\n"
        "  boundary: x periodic"
    )


def test_to_text():
    t = sp.Symbol("t")
    (x,) = sm.states("x", t)
    assert sm.export.to_text(sp.Eq(x.diff(t, 2), -0.5 * x)) == "d²x/dt² = -0.500*x"
    assert sm.export.to_text(1.5e-6 * x, digits=2) == "1.5e-6*x"
    with pytest.raises(sm.ExportError, match="`to_text` prints a sympy"):
        sm.export.to_text("x")
    with pytest.raises(sm.ExportError, match="`digits` must be a positive"):
        sm.export.to_text(x, digits=0)


def _result(model, delta):
    return sm.UDEResult(
        model=model,
        params=sm.Params({"delta": jnp.asarray(1.75)}, {}),
        history={"adam": np.array([3.0, 2.0, 1.0]), "lbfgs": np.array([0.5, 0.25])},
        wall_time=12.5,
        method=sm.SolveInLoop(),
        seed=3,
    )


def test_fit_result_display(lv):
    model, _, _, _, delta = lv
    result = _result(model, delta)
    latex = (
        r"$$\begin{aligned} \frac{d x}{d t} &= \alpha x + U_{0}(x, y) \\ "
        r"\frac{d y}{d t} &= - \delta y + U_{1}(x, y) \\ "
        r"\text{conditions:}\ & x(0) = 1 \\ "
        r"\text{parameters:}\ & \alpha = 1.30,\quad \delta = 1.75\ (\text{learned})"
        r" \\ \text{domain:}\ & t \in [0, 5] \end{aligned}$$"
    )
    assert result._repr_latex_() == latex
    assert result._repr_html_() == (
        "<div>" + latex.replace("&", "&amp;") + "<table><caption>Fit</caption>"
        "<tr><th>method</th><th>seed</th><th>steps</th><th>final loss</th>"
        "<th>wall time</th></tr><tr><td>SolveInLoop</td><td>3</td>"
        "<td>adam: 3, lbfgs: 1</td><td>0.25</td><td>12.5 s</td></tr></table>"
        "<table><caption>Trainable parameters</caption><tr><th>parameter</th>"
        "<th>initial</th><th>learned</th></tr><tr><td>$\\delta$</td><td>1.50</td>"
        "<td>1.75</td></tr></table></div>"
    )
    assert str(result) == (
        "UDEResult: ODEModel fitted by SolveInLoop (seed 3) in 12.5 s\n"
        "  final loss 0.25 (adam: 3 steps, lbfgs: 1 steps)\n"
        "  dx/dt = alpha*x + U_0(x, y)\n"
        "  dy/dt = -delta*y + U_1(x, y)\n"
        "  conditions: x(0) = 1\n"
        "  parameters: alpha = 1.30, delta = 1.75 (learned)\n"
        "  domain: t in [0, 5]\n"
        "  unknowns: U(x, y) -> 2 outputs"
    )
    # A summary, not the dataclass's repr of every weight and loss.
    assert repr(result) == (
        f"UDEResult(model={model!r}, final_loss=0.25, "
        "steps={'adam': 3, 'lbfgs': 1}, wall_time=12.5, seed=3)"
    )


def test_every_result_class_reads_as_a_summary():
    for cls in (sm.UDEResult, sm.PINNResult):
        assert cls.__repr__ is sm.FitResult.__repr__


def _discovery(lv):
    model, x, y, U, _ = lv
    recovered = sm.Model(
        [
            sp.Eq(x.diff(sp.Symbol("t")), 1.3 * x - 0.9 * x * y),
            sp.Eq(y.diff(sp.Symbol("t")), -1.8 * y + 0.8 * x * y),
        ]
    )
    front = ParetoFront(
        n_terms=(0, 1, 2),
        error=(1.0, 0.0123, 0.0118),
        held_out_error=None,
        score=(np.nan, np.nan, np.nan),
        expressions=(sp.Integer(0), -0.9 * x * y, -0.9 * x * y + 0.01 * x),
        chosen=1,
        criterion="Elbow",
    )
    return sm.Discovery(
        expressions={U[0]: -0.9 * x * y, U[1]: 0.8 * x * y},
        terms={U[0]: {x * y: -0.9}, U[1]: {x * y: 0.8}},
        fronts={U[0]: front, U[1]: front},
        model=recovered,
        fitted_model=model,
        parameter_values={},
    )


def test_discovery_display(lv):
    found = _discovery(lv)
    latex = (
        r"$$\begin{aligned} U_{0}(x, y) &= - 0.900 x y \\ "
        r"U_{1}(x, y) &= 0.800 x y \end{aligned}$$"
    )
    assert found._repr_latex_() == latex
    assert found._repr_html_() == (
        "<div>" + latex.replace("&", "&amp;") + "<table><caption>Coefficients"
        "</caption><tr><th>term of</th><th>term</th><th>coefficient</th></tr>"
        "<tr><td>$U_{0}(x, y)$</td><td>$x y$</td><td>-0.900</td></tr>"
        "<tr><td>$U_{1}(x, y)$</td><td>$x y$</td><td>0.800</td></tr></table>"
        "<table><caption>Model selection</caption><tr><th>term of</th>"
        "<th>terms kept</th><th>relative error</th><th>criterion</th></tr>"
        "<tr><td>$U_{0}(x, y)$</td><td>1</td><td>0.0123</td><td>Elbow</td></tr>"
        "<tr><td>$U_{1}(x, y)$</td><td>1</td><td>0.0123</td><td>Elbow</td></tr>"
        "</table></div>"
    )
    assert repr(found) == "Discovery(U_0(x, y) = -0.900*x*y; U_1(x, y) = 0.800*x*y)"
    assert str(found) == (
        "Discovery\n"
        "  U_0(x, y) = -0.900*x*y\n"
        "  U_1(x, y) = 0.800*x*y\n"
        "coefficients:\n"
        "  term of    term  coefficient\n"
        "  U_0(x, y)  x*y   -0.900\n"
        "  U_1(x, y)  x*y   0.800\n"
        "model selection:\n"
        "  U_0(x, y): 1 term, relative error 0.0123 (Elbow)\n"
        "  U_1(x, y): 1 term, relative error 0.0123 (Elbow)\n"
        "recovered model:\n"
        "  dx/dt = 1.30*x - 0.900*x*y\n"
        "  dy/dt = -1.80*y + 0.800*x*y"
    )


# -- progress -------------------------------------------------------------------


def test_progress_is_quiet_when_not_interactive():
    stream = io.StringIO()  # not a terminal, and pytest is not a notebook
    assert not _progress.interactive(stream)
    progress = Progress(None, stream=stream)
    progress.start("adam", 100)
    progress.update("adam", 50, 100, 0.5)
    progress.update("adam", 100, 100, 0.25)
    progress.close()
    assert stream.getvalue() == ""
    assert not progress.enabled


def test_progress_shows_phase_steps_and_loss_when_asked():
    stream = io.StringIO()
    progress = Progress(True, stream=stream)
    progress.start("adam", 100)
    progress.update("adam", 100, 100, 0.25, force=True)
    progress.update("lbfgs", 10, 20, 0.125, force=True)
    progress.close()
    out = stream.getvalue()
    assert "adam: 100%" in out and "100/100" in out and "loss 2.5000e-01" in out
    assert "lbfgs:" in out and "10/20" in out and "loss 1.2500e-01" in out
    assert "<" in out  # tqdm's elapsed<remaining


def test_progress_is_quiet_when_asked(monkeypatch):
    # Even on a terminal.
    monkeypatch.setattr(_progress, "interactive", lambda stream=None: True)
    stream = io.StringIO()
    progress = Progress(False, stream=stream)
    progress.update("adam", 1, 2, 0.5, force=True)
    progress.close()
    assert stream.getvalue() == ""


def test_progress_follows_the_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    assert _progress.interactive(stream)
    progress = Progress(None, stream=stream)
    progress.update("adam", 2, 2, 0.5, force=True)
    progress.close()
    assert "adam" in stream.getvalue()


def test_progress_logs_each_phase(caplog):
    progress = Progress(False)
    with caplog.at_level(logging.INFO, logger="symml"):
        progress.start("adam", 10)
        progress.update("adam", 10, 10, 0.5)
        progress.update("lbfgs", 3, 5, 0.25)
        progress.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "symml"]
    assert len(messages) == 2
    assert messages[0].startswith("adam: 10 of 10 steps, loss 5.0000e-01")
    assert messages[1].startswith("lbfgs: 3 of 5 steps, loss 2.5000e-01")


def test_progress_option_is_checked():
    with pytest.raises(sm.FitError, match="`progress` must be True, False or None"):
        Progress("yes")


def test_progress_bar_wraps_iterables():
    stream = io.StringIO()
    bar = _progress.progress_bar(
        iterable=range(3), description="members", enabled=True, stream=stream
    )
    assert list(bar) == [0, 1, 2]
    assert "members: 100%" in stream.getvalue()


# -- the library does not print ----------------------------------------------------


def test_library_never_prints():
    # `print(...)` calls (not the sympy printers' `_print`/`doprint`, nor text
    # in docstrings): the library speaks through the `symml` logger.
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                calls.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert calls == [], f"use the `symml` logger instead of print: {calls}"
