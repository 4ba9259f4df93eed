"""How symml objects show themselves: LaTeX and HTML in notebooks, text in
terminals.

Models, fit results and discoveries live in stages that may not import the
export stage, which owns the LaTeX printer. The printer registers itself here
when `symml.export` is imported (as `import symml` always does), and the
display methods of every stage print through `latex(...)` and `text(...)`.
Until then (the DSL imported on its own) they fall back to sympy's printers.
The helpers below compose those strings into the blocks and tables that
Jupyter renders.
"""

import html
from collections.abc import Callable, Sequence

import sympy as sp

_PRINTERS: dict[str, Callable[..., str]] = {}


def register_printers(*, latex: Callable[..., str], text: Callable[..., str]):
    """Install the LaTeX and text printers (`to_latex`-like functions taking
    an expression, an equation or a list of equations, and `digits=`)."""
    _PRINTERS["latex"] = latex
    _PRINTERS["text"] = text


def latex(obj, **options) -> str:
    """LaTeX of an expression, an equation or a list of equations."""
    printer = _PRINTERS.get("latex")
    if printer is None:
        return sp.latex(obj)
    return printer(obj, **options)


def text(obj, **options) -> str:
    """Plain text of an expression or an equation."""
    printer = _PRINTERS.get("text")
    if printer is None:
        return sp.sstr(obj)
    return printer(obj, **options)


def number(value: float, digits: int = 3) -> str:
    """`value` with `digits` significant figures, as text."""
    return f"{value:.{digits}g}"


def math_block(lines: Sequence[str]) -> str:
    """A displayed `aligned` block of lines (each with its `&` marks), as
    Jupyter's `_repr_latex_` renders it."""
    return "$$\\begin{aligned} " + r" \\ ".join(lines) + r" \end{aligned}$$"


def equation_line(eq) -> str:
    """One line of an `aligned` block: `lhs &= rhs` for an equation."""
    if isinstance(eq, sp.Equality):
        return f"{latex(eq.lhs)} &= {latex(eq.rhs)}"
    return latex(eq)


def _domain_latex(variable, bounds) -> str:
    lo, hi = bounds
    return f"{latex(variable)} \\in [{lo:g}, {hi:g}]"


def model_lines(model, values: dict | None = None) -> list[str]:
    """The lines of a model's display: its equations, then one line each for
    its conditions, parameters, domain and boundary kinds (when it has them).
    `values` (`{parameter: value}`) shows learned values of trainable
    parameters in place of their initial ones."""
    lines = [equation_line(eq) for eq in model.equations]
    if model.conditions:
        joined = r",\quad ".join(latex(c) for c in model.conditions)
        lines.append(rf"\text{{conditions:}}\ & {joined}")
    if model.parameters:
        lines.append(
            rf"\text{{parameters:}}\ & {parameters_latex(model.parameters, values)}"
        )
    if model.domain:
        joined = r",\quad ".join(_domain_latex(v, b) for v, b in model.domain.items())
        lines.append(rf"\text{{domain:}}\ & {joined}")
    if model.boundary:
        joined = r",\quad ".join(
            rf"{latex(v)}\ \text{{{kind}}}" for v, kind in model.boundary.items()
        )
        lines.append(rf"\text{{boundary:}}\ & {joined}")
    return lines


def _initial(value):
    return getattr(value, "initial", None)


def parameters_latex(parameters: dict, values: dict | None = None) -> str:
    """`\\alpha = 1.30,\\quad \\delta = 0.500\\ (\\text{trainable})`; with
    `values`, trainable parameters show their learned value
    (`\\text{learned}`)."""
    parts = []
    for p, v in parameters.items():
        initial = _initial(v)
        if initial is None:
            parts.append(f"{latex(p)} = {latex(sp.Float(v))}")
        elif values is not None and p in values:
            parts.append(
                rf"{latex(p)} = {latex(sp.Float(values[p]))}\ (\text{{learned}})"
            )
        else:
            parts.append(
                rf"{latex(p)} = {latex(sp.Float(initial))}\ (\text{{trainable}})"
            )
    return r",\quad ".join(parts)


def model_text(model, values: dict | None = None, indent: str = "  ") -> list[str]:
    """The lines of a model's text display (see `model_lines`)."""
    lines = [indent + text(eq) for eq in model.equations]
    if model.conditions:
        lines.append(
            indent + "conditions: " + ", ".join(text(c) for c in model.conditions)
        )
    if model.parameters:
        parts = []
        for p, v in model.parameters.items():
            initial = _initial(v)
            if initial is None:
                parts.append(f"{p} = {text(sp.Float(v))}")
            elif values is not None and p in values:
                parts.append(f"{p} = {text(sp.Float(values[p]))} (learned)")
            else:
                parts.append(f"{p} = {text(sp.Float(initial))} (trainable)")
        lines.append(indent + "parameters: " + ", ".join(parts))
    if model.domain:
        lines.append(
            indent
            + "domain: "
            + ", ".join(
                f"{v} in [{lo:g}, {hi:g}]" for v, (lo, hi) in model.domain.items()
            )
        )
    if model.boundary:
        lines.append(
            indent
            + "boundary: "
            + ", ".join(f"{v} {kind}" for v, kind in model.boundary.items())
        )
    if model.unknowns:
        lines.append(
            indent
            + "unknowns: "
            + ", ".join(
                f"{u.name}({', '.join(text(i) for i in u.inputs)}) -> "
                f"{u.n_outputs} output{'s' if u.n_outputs != 1 else ''}"
                for u in model.unknowns
            )
        )
    return lines


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None = None
) -> str:
    """An HTML table; cells are given as HTML (escape text with `escape`)."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{caption}</caption>")
    out.append("<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def escape(value) -> str:
    """`value` as text safe inside HTML."""
    return html.escape(str(value), quote=False)


def inline_math(tex: str) -> str:
    """LaTeX as inline math inside HTML or Markdown (`$...$`)."""
    return f"${tex}$"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a plain-text table with left-aligned columns."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return [line.rstrip() for line in lines]
