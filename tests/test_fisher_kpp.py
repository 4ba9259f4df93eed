import json

import sympy as sp
from helpers import load_example


def test_fisher_kpp_example_quick(tmp_path):
    load_example("fisher_kpp").main(["--quick", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    expr = sp.sympify(summary["expression"])
    assert isinstance(expr, sp.Expr)
    assert summary["terms"]
    assert 0 < summary["D"] < 1
    assert summary["reaction_max_error_in_data_range"]["network"] >= 0
    assert summary["wall_time_seconds"] > 0
    latex = (tmp_path / "equations.tex").read_text()
    assert latex.startswith("\\frac{\\partial \\rho}{\\partial t} = ")
    for name in ("fields.png", "reaction.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert not list(tmp_path.glob("*.tmp"))
