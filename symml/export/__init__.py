"""Export: LaTeX of models, equations and expressions.

Guarantees: exporting never changes a model; output is produced by a sympy
`LatexPrinter` subclass (no string surgery), so every sympy construct prints;
files are written atomically. This subpackage imports sympy and `symml.dsl`
only, never jax or `symml.training`.
"""

from .._files import atomic_write as atomic_write, write_text as write_text
from ._latex import (
    SymmlLatexPrinter as SymmlLatexPrinter,
    UncertainValue as UncertainValue,
    format_uncertain as format_uncertain,
    to_latex as to_latex,
    with_uncertainty as with_uncertainty,
    write_latex as write_latex,
)
