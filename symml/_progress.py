"""Progress bars and logging, shared by every stage.

Long loops (the chunks of a fit, the members of an ensemble) report through
`progress_bar`, a `tqdm.auto` bar that draws as a widget in a notebook and as
a line on a terminal, and is quiet when no person is watching (no terminal, no
notebook) or when asked (`progress=False`). Everything else the library has to
say goes to the `symml` logger (silent unless the application configures
logging); nothing prints.
"""

import logging
import sys
from collections.abc import Iterable

from ._errors import SymmlError

logger = logging.getLogger("symml")


def interactive(stream=None) -> bool:
    """Whether a person is likely watching: `stream` (default stderr) is a
    terminal, or the code runs in a Jupyter kernel."""
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no `isatty`, or a closed stream
        pass
    return _in_kernel()


def _in_kernel() -> bool:
    # Only look at IPython if the program already imported it: a script that
    # never did is not in a notebook, and importing it costs a second.
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return shell is not None and hasattr(shell, "kernel")


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def check_progress(progress, error: type[SymmlError]) -> bool | None:
    """`progress` validated: `True`, `False` or `None` (show when interactive)."""
    if progress is not None and not isinstance(progress, bool):
        raise error(
            f"`progress` must be True, False or None (show progress only on a "
            f"terminal or in a notebook); got {progress!r}."
        )
    return progress


def progress_bar(
    total: int | None = None,
    *,
    description: str = "",
    enabled: bool | None = None,
    unit: str = "it",
    stream=None,
    iterable: Iterable | None = None,
    initial: int = 0,
):
    """A progress bar: a `tqdm` widget in a notebook (with ipywidgets), a line
    of text elsewhere, or a bar that draws nothing.

    **Arguments:**

    - `total`: the number of steps (`None`: unknown).
    - `description`: shown in front of the bar (e.g. the phase of a fit).
    - `enabled`: `True` to draw, `False` not to, `None` to draw only when
      `interactive()` (on a terminal or in a notebook).
    - `unit`: what a step is called.
    - `stream`: where a text bar is written (default stderr).
    - `iterable`: wrap an iterable, as `tqdm(iterable)` does.
    - `initial`: the steps already done.

    **Returns:** a `tqdm` object (with `disable=True` when not drawing, so
    every method of it can be called either way).
    """
    if enabled is None:
        enabled = interactive(stream)
    if enabled and _in_kernel() and _has_widgets():
        from tqdm.auto import tqdm  # a widget in the notebook
    else:
        # A text bar: on a terminal, in a notebook without ipywidgets (where
        # `tqdm.auto` would warn and fall back to it anyway), or not drawn.
        from tqdm.std import tqdm
    return tqdm(
        iterable,
        total=total,
        initial=initial,
        desc=description,
        unit=unit,
        disable=not enabled,
        file=stream,
        leave=True,
        dynamic_ncols=True,
    )
