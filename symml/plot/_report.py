"""`report`: what a fit and a discovery found, as a LaTeX document (and its
PDF when a LaTeX engine is installed) and as Markdown."""

import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import sympy as sp

from .. import _display
from .._errors import ExportError
from .._files import atomic_write
from .._progress import logger
from ..discovery import Discovery
from ..export import Document, Math, to_latex
from ..training import FitResult, PINNResult, UDEResult
from ._common import figure
from ._discovery import discovery as plot_discovery
from ._field import field as plot_field
from ._fit import fit as plot_fit
from ._unknowns import unknowns as plot_unknowns

# The packages whose versions decide what a fit computes.
_VERSIONS = (
    "symml",
    "jax",
    "jaxlib",
    "equinox",
    "diffrax",
    "optax",
    "sympy",
    "numpy",
    "pysindy",
    "matplotlib",
)
# The engines tried, in order, to compile the LaTeX document.
_ENGINES = ("pdflatex", "tectonic")
_ENGINE_TIMEOUT = 300  # seconds; a first tectonic run fetches nothing here


def report(
    path: str | os.PathLike,
    result: FitResult,
    found: Discovery | None = None,
    *,
    data=None,
    truth: Mapping | None = None,
    title: str | None = None,
    pdf: bool = True,
) -> dict[str, Path | list[Path] | None]:
    """Write a report of a fit (and of the equations discovered from it): a
    standalone LaTeX document, its PDF when `pdflatex` or `tectonic` is
    installed, and the same content as Markdown, with the figures beside them.

    The report holds the declared model, the fit's settings, its loss and the
    learned parameters, plots of the fit (against `data`), of the learned
    terms and of the loss, then the recovered model, its coefficients, how the
    terms were chosen, and the versions of the packages that computed it all:
    what goes into a lab notebook or a paper's supplement.

    **Arguments:**

    - `path`: a directory to write into (made if missing): `report.tex`,
      `report.md`, `report.pdf` and the figures (`*.pdf` for LaTeX, `*.png`
      for Markdown).
    - `result`: the fit result.
    - `found`: a [`Discovery`][symml.Discovery] from the fit, if any.
    - `data`: the data to draw the fit against (default: the data fitted).
    - `truth`: known truths of the unknowns, for the plot of the learned
      terms (see [`plot.unknowns`][symml.plot.unknowns]).
    - `title`: the document's title.
    - `pdf`: compile the LaTeX document when an engine is found. Without one
      the report says so (a warning on the `symml` logger) and writes the
      `.tex` for compiling elsewhere.

    **Returns:** `{"tex": path, "markdown": path, "pdf": path or None,
    "figures": [paths]}`.
    """
    if not isinstance(result, FitResult):
        raise ExportError(
            f"`report` needs a fit result (from `symml.fit`); got "
            f"{type(result).__name__}."
        )
    if found is not None and not isinstance(found, Discovery):
        raise ExportError(
            f"`found` must be a `symml.Discovery` (from `symml.discover`) or None; "
            f"got {type(found).__name__}."
        )
    if not isinstance(pdf, bool):
        raise ExportError(f"`pdf` must be True or False; got {pdf!r}.")
    # Absolute: the LaTeX engine runs in the directory, and writes to a build
    # directory inside it.
    directory = Path(path).absolute()
    if directory.exists() and not directory.is_dir():
        raise ExportError(
            f"`path` must be a directory for the report's files; `{directory}` is a "
            "file."
        )
    directory.mkdir(parents=True, exist_ok=True)
    model = result.model
    now = datetime.datetime.now().astimezone()
    doc = Document(
        title or f"symml report: a fitted {type(model).__name__}",
        subtitle=now.strftime("%Y-%m-%d %H:%M %Z"),
    )
    figures: list[Path] = []

    def add_figure(fig, stem: str, caption: str) -> None:
        for ext in ("pdf", "png"):
            figures.append(
                atomic_write(
                    directory / f"{stem}.{ext}",
                    lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=150),
                )
            )
        doc.figure(stem, caption)

    doc.heading("Declared model")
    doc.equation(to_latex(model))
    _model_table(doc, model)

    doc.heading("Fit")
    steps = ", ".join(f"{k}: {n}" for k, n in result._steps().items())
    doc.table(
        ["method", "seed", "steps", "final loss", "wall time"],
        [
            [
                type(result.method).__name__,
                str(result.seed),
                steps or "none",
                f"{result.final_loss:.4g}",
                f"{result.wall_time:.3g} s",
            ]
        ],
        caption="How the model was fitted",
    )
    learned = result._learned()
    if learned:
        initial = model.trainable_parameters
        doc.table(
            ["parameter", "initial", "learned"],
            [
                [
                    Math(to_latex(p)),
                    _display.text(sp.Float(initial[p])),
                    _display.text(sp.Float(v)),
                ]
                for p, v in learned.items()
            ],
            caption="Trainable parameters",
        )
    add_figure(_loss_figure(result), "loss", "The loss during the fit, per phase.")
    fig = _fit_figure(result, data)
    if fig is not None:
        add_figure(fig, "fit", "The fitted model against the data.")
    if model.unknowns:
        add_figure(
            plot_unknowns(result, truth, recovered=found),
            "unknowns",
            "What the networks learned, against their inputs"
            + (" (dashed: the recovered expressions)." if found else "."),
        )

    if found is not None:
        doc.heading("Recovered model")
        doc.equation(to_latex(found.model, values=True))
        rows = [
            [Math(to_latex(key)), Math(to_latex(term)), _display.text(sp.Float(c))]
            for key in found.terms
            for term, c in found.terms[key].items()
        ]
        if rows:
            doc.table(["term of", "term", "coefficient"], rows, caption="Coefficients")
        selection = found._selection_rows()
        doc.table(
            ["term of", "terms kept", "relative error"],
            [
                [Math(to_latex(key)), str(n), _display.number(error)]
                for key, n, error, _ in selection
            ],
            caption="Model selection",
        )
        doc.paragraph("The terms were chosen by:")
        doc.code("\n".join(_wrap(c) for c in dict.fromkeys(c for *_, c in selection)))
        add_figure(
            plot_discovery(found),
            "discovery",
            "Top: the best model of each size and the one chosen. Bottom: the "
            "coefficients of the chosen terms.",
        )

    doc.heading("Settings and versions")
    doc.paragraph("The fit method and its options:")
    doc.code(_wrap(repr(result.method)))
    doc.table(
        ["package", "version"],
        [[name, version] for name, version in _versions().items()],
        caption="Versions",
    )
    tex, markdown = doc.write(directory, "report")
    out_pdf = _compile(tex) if pdf else None
    return {"tex": tex, "markdown": markdown, "pdf": out_pdf, "figures": figures}


def _wrap(text: str) -> str:
    # Settings are long one-line reprs; a page (and a verbatim block) is not.
    return textwrap.fill(
        text,
        80,
        break_long_words=False,
        break_on_hyphens=False,
        subsequent_indent="    ",
    )


def _model_table(doc: Document, model) -> None:
    rows = []
    for c in model.conditions:
        rows.append(["condition", Math(to_latex(c))])
    for p, v in model.parameters.items():
        initial = getattr(v, "initial", None)
        if initial is None:
            rows.append(["parameter", Math(f"{to_latex(p)} = {to_latex(sp.Float(v))}")])
        else:
            rows.append(
                [
                    "trainable parameter",
                    Math(f"{to_latex(p)} = {to_latex(sp.Float(initial))}"),
                ]
            )
    for v, (lo, hi) in model.domain.items():
        rows.append(["domain", Math(f"{to_latex(v)} \\in [{lo:g}, {hi:g}]")])
    for u in model.unknowns:
        inputs = ", ".join(to_latex(i) for i in u.inputs)
        outputs = f"{u.n_outputs} output{'s' if u.n_outputs != 1 else ''}"
        rows.append(
            [
                "unknown",
                Math(rf"{to_latex(sp.Symbol(u.name))}({inputs})\ \text{{({outputs})}}"),
            ]
        )
    if rows:
        doc.table(["", "declared"], rows, caption="Conditions, parameters, unknowns")


def _loss_figure(result: FitResult):
    fig, axes = figure(1, 1, width=5.5, height=3.2)
    ax = axes[0, 0]
    start = 0
    for k, (phase, losses) in enumerate(result.history.items()):
        losses = np.asarray(losses, float)
        if not losses.size:
            continue
        steps = np.arange(start, start + losses.size)
        ax.semilogy(steps, np.abs(losses), color=f"C{k % 10}", label=phase)
        start += losses.size
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    return fig


def _fit_figure(result: FitResult, data):
    if isinstance(result, UDEResult):
        return plot_fit(result, data)
    if isinstance(result, PINNResult):
        if len(result.model.variables) <= 2:
            return plot_field(result)
        return None
    return None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["platform"] = platform.platform()
    return out


def engine() -> str | None:
    """The LaTeX engine `report` compiles with: the path of `pdflatex` or
    `tectonic` on `PATH`, or None."""
    for name in _ENGINES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _compile(tex: Path) -> Path | None:
    exe = engine()
    if exe is None:
        logger.warning(
            "No LaTeX engine (pdflatex or tectonic) on PATH: wrote %s without its "
            "PDF. Install TeX Live (e.g. `apt-get install texlive-latex-base`) or "
            "compile the file elsewhere; the Markdown version is beside it.",
            tex,
        )
        return None
    directory = tex.parent
    with tempfile.TemporaryDirectory(dir=directory) as build:
        if Path(exe).name.startswith("tectonic"):
            command = [exe, "--outdir", build, tex.name]
        else:
            command = [
                exe,
                "-interaction=nonstopmode",
                "-halt-on-error",
                f"-output-directory={build}",
                tex.name,
            ]
        try:
            run = subprocess.run(
                command,
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=_ENGINE_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            logger.warning("Compiling %s with %s failed: %s", tex, exe, e)
            return None
        built = Path(build) / f"{tex.stem}.pdf"
        if run.returncode != 0 or not built.exists():
            tail = "\n".join((run.stdout + run.stderr).splitlines()[-20:])
            logger.warning(
                "Compiling %s with %s failed (exit %d); the .tex and .md are "
                "written. The end of its log:\n%s",
                tex,
                exe,
                run.returncode,
                tail,
            )
            return None
        target = directory / built.name
        os.replace(built, target)
    return target
