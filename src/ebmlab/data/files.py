"""Reading data sets from files and writing samples to files.

Supported formats (by extension): ``.npy`` (numpy array, loaded with ``allow_pickle=False``),
``.csv`` (numeric, comma separated, one optional header row), ``.pt`` (a tensor, or a dict
holding the tensor under ``"x"`` or ``"data"``; loaded with ``torch.load(weights_only=True)``,
so no arbitrary object is ever unpickled).  Rows are samples.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .._core.errors import DataError
from .._core.validation import check_data

PathLike = Union[str, os.PathLike]

#: file extensions understood by :func:`load_data` and :func:`save_samples`
DATA_EXTENSIONS = (".npy", ".csv", ".pt")


def _extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in DATA_EXTENSIONS:
        raise DataError(
            f"unsupported data file extension {ext or '(none)'!r} for {str(path)!r}; "
            f"allowed extensions are: {', '.join(DATA_EXTENSIONS)}"
        )
    return ext


def _first_line(err: Exception) -> str:
    """A one-line summary of a third-party error (torch and numpy errors can span many lines)."""
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> np.ndarray:
    with open(path, "r", encoding="utf-8") as fh:
        lines = [ln.strip() for ln in fh]
    rows = [(i + 1, ln) for i, ln in enumerate(lines) if ln]
    if not rows:
        raise DataError(f"data file {str(path)!r} is empty")
    first = rows[0][1].split(",")
    if not all(_is_number(f.strip()) for f in first):
        rows = rows[1:]  # a header row: its fields are not all numbers
    values = []
    width = None
    for lineno, ln in rows:
        fields = [f.strip() for f in ln.split(",")]
        if width is None:
            width = len(fields)
        if len(fields) != width:
            raise DataError(f"{str(path)!r} line {lineno}: expected {width} comma-separated values, got {len(fields)}")
        try:
            values.append([float(f) for f in fields])
        except ValueError:
            raise DataError(f"{str(path)!r} line {lineno}: non-numeric value in {ln!r}") from None
    return np.asarray(values, dtype=np.float64).reshape(len(values), width or 0)


def _read_pt(path: Path) -> torch.Tensor:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any load failure is a bad file
        raise DataError(f"could not read {str(path)!r} as a tensor file: {_first_line(err)}") from None
    if isinstance(obj, dict):
        for key in ("x", "data"):
            if key in obj:
                return obj[key]
        raise DataError(f"{str(path)!r} holds a dict without a 'x' or 'data' entry (keys: {sorted(map(str, obj))})")
    if not isinstance(obj, torch.Tensor):
        raise DataError(f"{str(path)!r} must hold a tensor or a dict with key 'x' or 'data', got {type(obj).__name__}")
    return obj


def load_data(path: PathLike, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Load a data matrix (rows = samples) from a ``.npy``, ``.csv`` or ``.pt`` file.

    Parameters
    ----------
    path : str or PathLike
    dtype : torch.dtype
        Dtype of the returned tensor (default float32).

    Returns
    -------
    Tensor[n, d]
        Finite values, at least 2 rows.

    Raises
    ------
    DataError
        Missing file, unsupported extension, unreadable content, not 2-D, fewer than 2 rows or
        non-finite values.
    """
    path = Path(path)
    ext = _extension(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    if ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as err:  # noqa: BLE001
            raise DataError(f"could not read {str(path)!r} as a .npy array: {_first_line(err)}") from None
        data = torch.from_numpy(np.ascontiguousarray(arr))
    elif ext == ".csv":
        data = torch.from_numpy(_read_csv(path))
    else:
        data = _read_pt(path)
    return check_data(data, name=f"data in {str(path)!r}").to(dtype)


def save_samples(path: PathLike, x: torch.Tensor) -> Path:
    """Write samples to ``.npy``, ``.csv`` or ``.pt``, atomically.

    The file is written to a temporary file in the same directory and moved into place with
    ``os.replace``, so readers never see a half-written file.  Parent directories are created.
    CSV files get a header row ``x0,x1,...`` (which :func:`load_data` skips) and 9 (float32) or
    17 (float64) significant digits, enough to round-trip exactly.

    Parameters
    ----------
    path : str or PathLike
    x : Tensor or array [n, ...]
        Samples; a ``.csv`` needs a 2-D array.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    ext = _extension(path)
    t = torch.as_tensor(x).detach().cpu()
    if ext == ".csv" and t.ndim != 2:
        raise DataError(f"a .csv file needs 2-D samples [n, d], got shape {tuple(t.shape)}; use .npy or .pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if ext == ".npy":
                np.save(fh, t.numpy())
            elif ext == ".csv":
                digits = 17 if t.dtype == torch.float64 else 9
                header = ",".join(f"x{i}" for i in range(t.shape[1]))
                np.savetxt(fh, t.numpy(), delimiter=",", header=header, comments="", fmt=f"%.{digits}g")
            else:
                torch.save(t.clone(), fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def resolve_data(spec: Union[str, os.PathLike, torch.Tensor, np.ndarray], n: int = 10000,
                 seed: Union[int, None] = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Turn a data specification into a tensor: a toy set name, a file path, or an array.

    Parameters
    ----------
    spec : str, PathLike, Tensor or ndarray
        A name from :func:`ebmlab.data.toy_names` (``n`` points drawn with ``seed``), a path to a
        ``.npy`` / ``.csv`` / ``.pt`` file (all its rows; ``n`` and ``seed`` are not used), or an
        array (validated and returned).
    n : int
        Number of points drawn for a toy set.
    seed : int, optional
        Seed for a toy set (default 0: reproducible).
    dtype : torch.dtype
        Output dtype.

    Raises
    ------
    ConfigError
        ``spec`` is neither a toy name nor something that looks like a data file.
    DataError
        The file is missing or invalid.
    """
    from .._core.errors import ConfigError
    from .toy import toy, toy_names

    if isinstance(spec, (torch.Tensor, np.ndarray)):
        return check_data(spec).to(dtype)
    if isinstance(spec, str) and spec in toy_names():
        return toy(spec, n, generator=seed, dtype=dtype)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if path.suffix.lower() in DATA_EXTENSIONS or path.exists():
            return load_data(path, dtype=dtype)
    raise ConfigError(
        f"data {spec!r} is neither a toy data set ({', '.join(toy_names())}) nor a data file "
        f"with extension {', '.join(DATA_EXTENSIONS)}"
    )
