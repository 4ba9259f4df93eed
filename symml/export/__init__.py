"""Export: LaTeX and text of models, equations and expressions, and the
documents of a report.

Guarantees: exporting never changes a model; output is produced by sympy
printer subclasses (no string surgery), so every sympy construct prints;
files are written atomically. This subpackage imports sympy and `symml.dsl`
only, never jax or `symml.training`.
"""

from .._display import register_printers as _register_printers
from .._files import atomic_write as atomic_write, write_text as write_text
from ._document import Document as Document, Math as Math, latex_escape as latex_escape
from ._latex import (
    SymmlLatexPrinter as SymmlLatexPrinter,
    UncertainValue as UncertainValue,
    format_uncertain as format_uncertain,
    to_latex as to_latex,
    with_uncertainty as with_uncertainty,
    write_latex as write_latex,
)
from ._text import SymmlStrPrinter as SymmlStrPrinter, to_text as to_text

# Models, results and discoveries display themselves through these printers
# (their stages may not import this one).
_register_printers(latex=to_latex, text=to_text)
