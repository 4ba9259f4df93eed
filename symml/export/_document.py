"""A small document model rendered to standalone LaTeX and to Markdown: what a
report is written in.

A `Document` is a list of blocks (headings, paragraphs, displayed equations,
tables, code, figures); each renders to both targets, so the LaTeX file and
the Markdown file of a report say the same thing. Equations are LaTeX
strings (from [`to_latex`][symml.to_latex]) in both: Markdown renderers with
math support (Jupyter, GitHub, mkdocs with arithmatex) typeset `$$ ... $$`.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ExportError
from .._files import write_text

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Plain text made safe inside LaTeX (`50 %` prints as `50 \\%`)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _markdown_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


@dataclass(frozen=True)
class Math:
    """A table cell holding inline LaTeX math (a plain `str` cell is text)."""

    latex: str


@dataclass
class Document:
    """A report's content, rendered by `to_latex()` and `to_markdown()`.

    **Arguments:**

    - `title`: the document's title.
    - `subtitle`: a line under it (e.g. the date).
    """

    title: str
    subtitle: str = ""
    blocks: list = field(default_factory=list)

    def heading(self, text: str) -> "Document":
        self.blocks.append(("heading", text))
        return self

    def paragraph(self, text: str) -> "Document":
        self.blocks.append(("paragraph", text))
        return self

    def equation(self, latex: str) -> "Document":
        """A displayed equation: a LaTeX string such as `to_latex(model)`."""
        self.blocks.append(("equation", latex))
        return self

    def table(self, header: list, rows: list[list], caption: str = "") -> "Document":
        """A table of text cells (`str`) and math cells (`Math`)."""
        width = len(header)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise ExportError(
                    f"Row {i} of the table {caption!r} has {len(row)} cells; the "
                    f"header has {width}."
                )
        self.blocks.append(("table", (list(header), [list(r) for r in rows], caption)))
        return self

    def code(self, text: str) -> "Document":
        """Preformatted text (settings, versions)."""
        self.blocks.append(("code", text))
        return self

    def figure(self, stem: str, caption: str) -> "Document":
        """A figure saved beside the document as `stem.pdf` (for LaTeX) and
        `stem.png` (for Markdown)."""
        self.blocks.append(("figure", (stem, caption)))
        return self

    def to_latex(self) -> str:
        """The document as a standalone LaTeX file (`article`, with
        `amsmath`, `graphicx` and `geometry`, all in a basic TeX Live)."""
        out = [
            r"\documentclass[11pt]{article}",
            r"\usepackage{amsmath}",
            r"\usepackage{graphicx}",
            r"\usepackage[margin=2cm]{geometry}",
            rf"\title{{{latex_escape(self.title)}}}",
            rf"\date{{{latex_escape(self.subtitle)}}}",
            r"\begin{document}",
            r"\maketitle",
        ]
        for kind, content in self.blocks:
            out.append(_LATEX[kind](content))
        out.append(r"\end{document}")
        return "\n".join(out) + "\n"

    def to_markdown(self) -> str:
        """The document as Markdown with `$$ ... $$` math and PNG figures."""
        out = [f"# {self.title}"]
        if self.subtitle:
            out.append(f"_{self.subtitle}_")
        for kind, content in self.blocks:
            out.append(_MARKDOWN[kind](content))
        return "\n\n".join(out) + "\n"

    def write(self, directory: str | os.PathLike, stem: str) -> tuple[Path, Path]:
        """Write `stem.tex` and `stem.md` into `directory`, atomically.

        **Returns:** the two paths.
        """
        directory = Path(directory)
        tex = write_text(directory / f"{stem}.tex", self.to_latex())
        markdown = write_text(directory / f"{stem}.md", self.to_markdown())
        return tex, markdown


def _latex_cell(cell) -> str:
    return f"${cell.latex}$" if isinstance(cell, Math) else latex_escape(cell)


def _latex_table(content) -> str:
    header, rows, caption = content
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\begin{tabular}{" + "l" * len(header) + "}",
        r"\hline",
        " & ".join(_latex_cell(h) for h in header) + r" \\",
        r"\hline",
    ]
    lines += [" & ".join(_latex_cell(c) for c in row) + r" \\" for row in rows]
    lines.append(r"\hline")
    lines.append(r"\end{tabular}")
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def _latex_figure(content) -> str:
    stem, caption = content
    return "\n".join(
        [
            r"\begin{figure}[htbp]",
            r"\centering",
            rf"\includegraphics[width=\linewidth,height=0.4\textheight,"
            rf"keepaspectratio]{{{stem}.pdf}}",
            rf"\caption{{{latex_escape(caption)}}}",
            r"\end{figure}",
        ]
    )


_LATEX = {
    "heading": lambda text: rf"\section*{{{latex_escape(text)}}}",
    "paragraph": latex_escape,
    "equation": lambda tex: rf"\[ {tex} \]",
    "table": _latex_table,
    "code": lambda text: "\\begin{verbatim}\n" + text + "\n\\end{verbatim}",
    "figure": _latex_figure,
}


def _markdown_cell(cell) -> str:
    return f"${cell.latex}$" if isinstance(cell, Math) else _markdown_escape(cell)


def _markdown_table(content) -> str:
    header, rows, caption = content
    lines = [f"**{caption}**", ""] if caption else []
    lines.append("| " + " | ".join(_markdown_cell(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


_MARKDOWN = {
    "heading": lambda text: f"## {text}",
    "paragraph": lambda text: str(text),
    "equation": lambda tex: f"$$\n{tex}\n$$",
    "table": _markdown_table,
    "code": lambda text: f"```\n{text}\n```",
    "figure": lambda content: f"![{content[1]}]({content[0]}.png)",
}
