"""Atomic file writes: a reader never sees a half-written file."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .._errors import ExportError


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file through a temporary file in the same directory, then
    replace `path` with it in one step; on any failure the temporary file is
    removed and an existing `path` is left as it was.

    **Arguments:**

    - `path`: the file to write; its directory must exist.
    - `write`: called with the temporary file's name, writes the content
      there (e.g. `lambda tmp: fig.savefig(tmp, format="png")`).

    **Returns:** the path written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(
            f"Cannot write `{path}`: the directory `{path.parent}` does not exist; "
            "create it first."
        )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically, flushed to disk."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)
