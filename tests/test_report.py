"""`symml.report`: a standalone LaTeX document (compiled where an engine is
installed) and a Markdown file saying the same, on a quick fit."""

import logging
import re
import shutil

import numpy as np
import pytest
import sympy as sp

import symml as sm
from symml.export import Document, Math
from symml.plot import _report

# The tests share module-scoped fits: `--dist loadgroup` runs them on one
# worker, which computes each fit once.
pytestmark = pytest.mark.xdist_group("report")


@pytest.fixture(scope="module")
def fitted():
    t = sp.Symbol("t")
    x, y = sm.states("x y", t)
    k = sp.Symbol("k")
    U = sm.Unknown("U", inputs=[x, y], hidden=[4])
    model = sm.Model(
        [sp.Eq(x.diff(t), -k * x), sp.Eq(y.diff(t), U[0])],
        parameters={k: sm.trainable(0.5)},
    )
    ts = np.linspace(0.0, 1.0, 6)
    data = sm.Data(ts, {x: np.exp(-ts), y: 1 - 0.5 * ts})
    result = sm.fit(model, data, steps=3, lbfgs_steps=0)
    found = sm.discover(result, library=sm.PolynomialLibrary(degree=1))
    return result, found, data


def _equations(markdown: str) -> list[str]:
    return re.findall(r"^\$\$\n(.*?)\n\$\$$", markdown, re.S | re.M)


def test_report_writes_tex_markdown_and_figures(fitted, tmp_path, caplog, monkeypatch):
    result, found, data = fitted
    monkeypatch.chdir(tmp_path)  # a relative path, as in a notebook
    with caplog.at_level(logging.WARNING, logger="symml"):
        files = sm.report("lv", result, found, data=data)
    directory = tmp_path / "lv"
    assert files["tex"] == directory / "report.tex"
    assert files["markdown"] == directory / "report.md"
    stems = ["loss", "fit", "unknowns", "discovery"]
    assert sorted(p.name for p in files["figures"]) == sorted(
        f"{s}.{e}" for s in stems for e in ("pdf", "png")
    )
    assert all(p.stat().st_size > 0 for p in files["figures"])

    # The Markdown's equations are `to_latex`'s: the declared model, then the
    # recovered one with its numbers.
    markdown = files["markdown"].read_text()
    assert _equations(markdown) == [
        sm.to_latex(result.model),
        sm.to_latex(found.model, values=True),
    ]
    for stem in stems:
        assert f"]({stem}.png)" in markdown
    for heading in ("Declared model", "Fit", "Recovered model", "Settings"):
        assert f"\n## {heading}" in markdown
    assert "| $k$ | 0.500 |" in markdown  # the trainable parameter's row

    # The LaTeX document: standalone, the same equations, every figure's PDF.
    tex = files["tex"].read_text()
    assert tex.startswith("\\documentclass[11pt]{article}\n")
    assert tex.rstrip().endswith("\\end{document}")
    assert tex.count("\\begin{document}") == 1
    assert re.findall(r"^\\\[ (.*) \\\]$", tex, re.M) == _equations(markdown)
    included = re.findall(r"\\includegraphics\[[^]]*\]\{([^}]*)\}", tex)
    assert included == [f"{s}.pdf" for s in stems]
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") >= 4
    assert "\\begin{verbatim}\nSolveInLoop(" in tex

    if _report.engine() is None:
        assert files["pdf"] is None
        assert "No LaTeX engine (pdflatex or tectonic)" in caplog.text
    else:
        assert files["pdf"] == directory / "report.pdf"
        assert files["pdf"].read_bytes().startswith(b"%PDF")
        assert caplog.text == ""
        assert not list(directory.glob("tmp*"))  # the build directory is gone


def test_report_says_when_no_engine_is_installed(fitted, tmp_path, caplog, monkeypatch):
    result, *_ = fitted
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="symml"):
        files = sm.report(tmp_path, result)
    assert files["pdf"] is None
    assert "No LaTeX engine (pdflatex or tectonic) on PATH" in caplog.text
    assert "## Recovered model" not in files["markdown"].read_text()


@pytest.mark.skipif(_report.engine() is None, reason="no LaTeX engine installed")
def test_a_failed_compile_is_reported(tmp_path, caplog, monkeypatch):
    tex = tmp_path / "report.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\undefined\n")
    with caplog.at_level(logging.WARNING, logger="symml"):
        assert _report._compile(tex) is None
    assert "failed" in caplog.text and "Undefined control sequence" in caplog.text


def test_document_escapes_text_and_keeps_math():
    doc = Document("50% of x_1", subtitle="today")
    doc.table(["a & b", "c"], [["#1", Math(r"\alpha_{1}")]], caption="T")
    tex = doc.to_latex()
    assert "\\title{50\\% of x\\_1}" in tex
    assert "\\#1 & $\\alpha_{1}$ \\\\" in tex
    assert "a \\& b & c \\\\" in tex
    markdown = doc.to_markdown()
    assert "| #1 | $\\alpha_{1}$ |" in markdown
    with pytest.raises(sm.ExportError, match="Row 0 of the table 'T' has 1 cells"):
        doc.table(["a", "b"], [["1"]], caption="T")


def test_report_errors(fitted, tmp_path):
    result, found, _ = fitted
    with pytest.raises(sm.ExportError, match="`report` needs a fit result"):
        sm.report(tmp_path, found)
    with pytest.raises(sm.ExportError, match="`found` must be a `symml.Discovery`"):
        sm.report(tmp_path, result, result)
    (tmp_path / "file").write_text("")
    with pytest.raises(sm.ExportError, match="is a file"):
        sm.report(tmp_path / "file", result)
    with pytest.raises(sm.ExportError, match="`pdf` must be True or False"):
        sm.report(tmp_path, result, pdf="yes")
