import sys
import time


class Progress:
    """A one-line progress display on stderr, shown only on a terminal unless
    asked for, and redrawn at most a few times a second."""

    def __init__(self, enabled: bool | None = None, *, stream=None):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self._last = 0.0

    def update(self, phase: str, step: int, total: int, loss: float, force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        self.stream.write(f"\r[{phase}] step {step}/{total}  loss {loss:.4e}   ")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
