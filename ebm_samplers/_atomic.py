"""Crash-safe file writes: write a temporary file beside the target, fsync it, rename it over the target,
then fsync the folder so the rename itself survives a power cut.

A process killed at any point leaves either the old file or the new one, never a mixture; at worst a
stray `.NAME.*.tmp` file remains next to it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary_path)` and move the result to `path` atomically; return `path`."""
    path = Path(path)
    if path.is_dir():  # else os.replace fails with a message about a temporary file the caller never named
        raise IsADirectoryError(f"{path} is a folder; expected the path of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600; what we save are ordinary files
    try:
        write(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def fsync_directory(folder: str | os.PathLike) -> None:
    """Make renames and deletions inside `folder` durable (a no-op where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened, and renames there are already durable
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
