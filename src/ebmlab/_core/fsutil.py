"""Crash-safe file writing (standard library only, so the command can use it before importing torch).

Every file ebmlab writes into a run directory goes through :func:`atomic_write`: the bytes go to a temporary file
``.tmp-<name>.<random>`` in the same directory, are flushed and ``fsync``-ed, and the file is moved into place with
``os.replace`` (atomic on POSIX), then the directory entry is ``fsync``-ed.  A reader therefore sees the old file or
the new one, never a partial one; a process killed mid-write leaves at most a ``.tmp-*`` file, which
:func:`remove_stale_tmp` deletes when the run is next started or resumed.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, List, Union

from .errors import ConfigError

TMP_PREFIX = ".tmp-"

PathLike = Union[str, "os.PathLike[str]"]


def fsync_dir(directory: PathLike) -> None:
    """``fsync`` a directory so that a rename inside it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[object], None], *, binary: bool = True) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file in the same directory, which is flushed,
    fsync-ed and renamed onto ``path``.  On any failure (including KeyboardInterrupt) the temporary file is removed
    and ``path`` is left as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text), binary=False)


def remove_stale_tmp(directory: PathLike) -> List[str]:
    """Delete the ``.tmp-*`` files that a killed process left in ``directory``; returns their names."""
    directory = Path(directory)
    removed: List[str] = []
    if not directory.is_dir():
        return removed
    for p in sorted(directory.glob(f"{TMP_PREFIX}*")):
        if p.is_file():
            try:
                p.unlink()
                removed.append(p.name)
            except OSError:
                pass
    return removed


def check_writable_dir(directory: PathLike, what: str = "directory") -> Path:
    """Create ``directory`` if needed and prove that a file can be written in it (a probe file is written, fsync-ed
    and removed), so that a read-only or full file system is reported before any work instead of at the end."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{what} {directory} exists and is a file, not a directory; choose another path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f"{TMP_PREFIX}probe.", dir=str(directory))
        try:
            os.write(fd, b"ebmlab write probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as err:
        raise ConfigError(f"cannot write to {what} {directory}: {describe_os_error(err)}") from None
    return directory


def describe_os_error(err: OSError) -> str:
    """One line for an OSError: its reason (``Read-only file system``, ``No space left on device``...), and a hint
    for the common ones."""
    reason = err.strerror or str(err) or type(err).__name__
    hint = {errno.ENOSPC: "; free some space or choose another --out",
            errno.EROFS: "; choose a writable --out",
            errno.EACCES: "; choose a directory you may write to (--out)",
            errno.EDQUOT: "; free some space or choose another --out"}.get(err.errno, "")
    where = f" ({err.filename})" if getattr(err, "filename", None) else ""
    return f"{reason}{where}{hint}"
