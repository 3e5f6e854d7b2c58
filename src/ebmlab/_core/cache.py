"""The one cache directory of ebmlab (trained feature classifiers, reference posteriors, ...).

``$EBMLAB_CACHE_DIR`` if set; else ``%LOCALAPPDATA%\\ebmlab`` on Windows; else ``$XDG_CACHE_HOME/ebmlab``
(``~/.cache/ebmlab`` when ``XDG_CACHE_HOME`` is unset), following the XDG base-directory specification.
Nothing is created here: callers create the sub-folder they write into.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    """Where ebmlab caches what it computes once (see the module docstring)."""
    env = os.environ.get("EBMLAB_CACHE_DIR")
    if env:
        return Path(env)
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "ebmlab"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ebmlab"
