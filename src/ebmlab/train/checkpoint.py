"""Atomic, pickle-free checkpoints.

A checkpoint is ONE ``.safetensors`` file: tensors (energy parameters and buffers, optimizer state, objective state
such as a PCD replay buffer, EMA weights, RNG state) plus a JSON document in the safetensors metadata (step,
configuration, optimizer hyper-parameters, history).  It is written to a temporary file in the same directory and
fsync-ed and moved into place with ``os.replace``, so a crash never leaves a half-written checkpoint, and loading never unpickles.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._core.errors import DataError
from .._core.fsutil import TMP_PREFIX, fsync_dir

CHECKPOINT_NAME = "checkpoint.safetensors"
_META_KEY = "ebmlab"


def _flatten(prefix: str, tree: Dict[str, torch.Tensor], out: Dict[str, torch.Tensor]) -> None:
    for k, v in tree.items():
        out[f"{prefix}{k}"] = v.detach().cpu().contiguous()


def save_checkpoint(path, tensors: Dict[str, Dict[str, torch.Tensor]], meta: Dict[str, Any]) -> Path:
    """Write ``tensors`` (groups of named tensors) and JSON-able ``meta`` atomically to ``path``.

    ``tensors`` maps a group name (``"energy"``, ``"optim"``, ``"objective"``, ...) to a flat dict of tensors.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat: Dict[str, torch.Tensor] = {}
    for group, tree in tensors.items():
        _flatten(f"{group}/", tree, flat)
    # safetensors refuses shared storage: clone views
    flat = {k: v.clone() for k, v in flat.items()}
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=".safetensors", dir=str(path.parent))
    os.close(fd)
    try:
        save_file(flat, tmp, metadata={_META_KEY: json.dumps(meta)})
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the bytes are on disk before the rename makes them the checkpoint
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fsync_dir(path.parent)
    return path


def read_checkpoint_meta(path) -> Dict[str, Any]:
    """The JSON metadata of a checkpoint or model file (step, configuration, ...) without reading its tensors;
    a missing, non-safetensors or foreign file raises DataError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
        if raw is None:
            raise DataError(f"{path} is a safetensors file but not an ebmlab checkpoint (no '{_META_KEY}' metadata)")
        meta = json.loads(raw)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"checkpoint {path} is corrupted or unreadable ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(meta, dict):
        raise DataError(f"checkpoint {path} has malformed metadata (not a JSON object)")
    return meta


def load_checkpoint(path) -> Tuple[Dict[str, Dict[str, torch.Tensor]], Dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; a missing or corrupted file raises DataError."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise DataError(f"no checkpoint at {path}")
    try:
        flat = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta_raw = (f.metadata() or {}).get(_META_KEY)
        if meta_raw is None:
            raise DataError(f"{path} is a safetensors file but not an ebmlab checkpoint (no '{_META_KEY}' metadata)")
        meta = json.loads(meta_raw)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"checkpoint {path} is corrupted or unreadable ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from None
    groups: Dict[str, Dict[str, torch.Tensor]] = {}
    for k, v in flat.items():
        group, _, name = k.partition("/")
        groups.setdefault(group, {})[name] = v
    return groups, meta


# --- optimizer state (tensors to safetensors, the rest to JSON) ---------------------------------------------

def load_model_file(path, file_name: str, key: str, kind: str) -> Tuple[Path, Dict[str, Dict[str, torch.Tensor]], Dict[str, Any]]:
    """``(file, groups, meta)`` of a model written by a facade's ``save``: ``path`` is the directory holding
    ``file_name`` or the file itself; ``meta`` must hold the facade's configuration under ``key``.  One-line
    :class:`DataError` when the file is missing or belongs to another kind of model (``kind`` names it)."""
    path = Path(path)
    file = path / file_name if path.is_dir() else path
    if not file.exists():
        raise DataError(f"no {kind} model at {path}: expected {file_name} written by {kind}.save")
    groups, meta = load_checkpoint(file)
    if key not in meta:
        raise DataError(f"{file} is not a {kind} model (no {key!r} configuration in its metadata)")
    return file, groups, meta


def optimizer_state_to_tensors(opt: torch.optim.Optimizer) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    sd = opt.state_dict()
    tensors: Dict[str, torch.Tensor] = {}
    scalars: Dict[str, Dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{pid}.{key}"] = val
            else:
                scalars.setdefault(str(pid), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_from_tensors(opt: torch.optim.Optimizer, tensors: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> None:
    state: Dict[int, Dict[str, Any]] = {}
    for name, val in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    for pid, st in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def generator_state(g: Optional[torch.Generator]) -> Dict[str, torch.Tensor]:
    return {} if g is None else {"state": g.get_state()}
