"""Atomic file writes: a reader never sees a half-written file."""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._errors import ExportError, SymmlError


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[str], None],
    *,
    error: type[SymmlError] = ExportError,
) -> Path:
    """Write a file through a temporary file in the same directory, then
    replace `path` with it in one step; on any failure the temporary file is
    removed and an existing `path` is left as it was.

    **Arguments:**

    - `path`: the file to write; its directory must exist.
    - `write`: called with the temporary file's name, writes the content
      there (e.g. `lambda tmp: fig.savefig(tmp, format="png")`).
    - `error`: the `SymmlError` subclass raised when the file cannot be written.

    **Returns:** the path written.
    """
    try:
        path = Path(path)
    except TypeError:
        raise error(
            f"`path` must be a file name or a `pathlib.Path`; got {path!r}."
        ) from None
    if path.is_dir():
        raise error(
            f"Cannot write `{path}`: it is a directory; give a file name inside it, "
            f"e.g. `{path / 'out'}`."
        )
    if not path.parent.is_dir():
        raise error(
            f"Cannot write `{path}`: the directory `{path.parent}` does not exist; "
            "create it first."
        )
    try:
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as e:
        raise error(
            f"Cannot write `{path}`: {e.strerror} in `{path.parent}`; choose a "
            "writable directory."
        ) from None
    os.close(fd)
    try:
        write(tmp)
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise error(f"Cannot write `{path}`: {e.strerror}.") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_text(
    path: str | os.PathLike, text: str, *, error: type[SymmlError] = ExportError
) -> Path:
    """Write `text` (UTF-8) to `path` atomically, flushed to disk."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write, error=error)


def write_bytes(
    path: str | os.PathLike, data: bytes, *, error: type[SymmlError] = ExportError
) -> Path:
    """Write `data` to `path` atomically, flushed to disk."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write, error=error)
