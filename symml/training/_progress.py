"""The progress of a fit: one bar per phase, and a log line when a phase ends.

The shared loop calls `update` once per compiled chunk with the phase, the
step reached, the phase's total and the last loss, and `close` at the end (or
on failure). The bar (`tqdm.auto`: a widget in a notebook, a line on a
terminal) shows the phase, the steps, the loss and the time left; it is drawn
only when a person is watching unless asked for. Whether drawn or not, the end
of each phase is logged at INFO level on the `symml` logger.
"""

import time

from .._errors import FitError
from .._progress import check_progress, logger, progress_bar


class Progress:
    """What the fit loop reports to.

    **Arguments:**

    - `enabled`: `True` to draw bars, `False` not to, `None` (default) to draw
      them only on a terminal or in a notebook.
    - `stream`: where a text bar is written (default stderr).
    """

    def __init__(self, enabled: bool | None = None, *, stream=None):
        self.enabled = check_progress(enabled, FitError)
        self.stream = stream
        self._bar = None
        self._phase = None
        self._step = 0
        self._total = 0
        self._loss = float("nan")
        self._start = 0.0

    def start(self, phase: str, total: int, step: int = 0) -> None:
        """Begin `phase` of `total` steps, `step` of them already done (a
        resumed fit): the bar is up while the first chunk compiles."""
        self._end_phase()
        self._phase = phase
        self._total = total
        self._step = step
        self._start = time.perf_counter()
        self._bar = progress_bar(
            total,
            description=phase,
            enabled=self.enabled,
            unit="step",
            stream=self.stream,
            initial=step,
        )
        # Decided once per fit, so that all its phases agree.
        self.enabled = not self._bar.disable

    def update(
        self, phase: str, step: int, total: int, loss: float, force: bool = False
    ) -> None:
        """Report that `phase` reached `step` of `total` with loss `loss`."""
        if phase != self._phase:
            self.start(phase, total)
        self._bar.set_postfix_str(f"loss {loss:.4e}", refresh=False)
        self._bar.update(max(step - self._step, 0))
        if force:
            self._bar.refresh()
        self._step = max(step, self._step)
        self._loss = loss

    def _end_phase(self) -> None:
        if self._bar is None:
            return
        self._bar.close()
        self._bar = None
        logger.info(
            "%s: %d of %d steps, loss %.4e, %.1f s",
            self._phase,
            self._step,
            self._total,
            self._loss,
            time.perf_counter() - self._start,
        )

    def close(self) -> None:
        """End the display (the fit finished or failed)."""
        self._end_phase()
        self._phase = None
