"""Reading data sets from files and writing samples to files.

Supported formats (by extension): ``.npy`` (numpy array, loaded with ``allow_pickle=False``),
``.csv`` (numeric, comma separated, one optional header row; UTF-8, a byte-order mark is allowed), ``.pt`` (a tensor, or a dict
holding the tensor under ``"x"`` or ``"data"``; loaded with ``torch.load(weights_only=True)``,
so no arbitrary object is ever unpickled).  Rows are samples.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .._core.errors import DataError
from .._core.fsutil import atomic_write
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
    try:  # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first field
        with open(path, "r", encoding="utf-8-sig") as fh:
            lines = [ln.strip() for ln in fh]
    except UnicodeDecodeError:
        raise DataError(f"{str(path)!r} is not a UTF-8 text file; a .csv must hold comma-separated numbers") from None
    if any("\x00" in ln for ln in lines):
        raise DataError(f"{str(path)!r} holds NUL bytes: it is a binary file, not a comma-separated text file")
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
            raise DataError(f"{str(path)!r} line {lineno}: non-numeric value in {ln[:80]!r}") from None
    return np.asarray(values, dtype=np.float64).reshape(len(values), width or 0)


def _read_pt(path: Path) -> torch.Tensor:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any load failure is a bad file
        # torch's own message advises loading with weights_only=False, i.e. unpickling arbitrary code: not relayed
        import zipfile

        unsafe = zipfile.is_zipfile(path) and ("weights_only" in str(err) or "Unsupported global" in str(err))
        why = ("it holds Python objects other than tensors, which ebmlab never unpickles" if unsafe
               else "it is not a file written by torch.save")
        raise DataError(f"could not read {str(path)!r} as a tensor file: {why}; save a tensor (or a dict "
                        f"{{'x': tensor}}) with torch.save, or use .npy / .csv") from None
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
    if path.is_dir():
        raise DataError(f"data path {str(path)!r} is a directory; give a {ext} file")
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    if ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as err:  # noqa: BLE001
            # numpy's message for object arrays advises allow_pickle=True (unpickling arbitrary code): not relayed
            why = ("it holds Python objects, which ebmlab never unpickles" if "allow_pickle" in str(err)
                   else f"it is not a valid .npy file ({_first_line(err)[:120]})")
            raise DataError(f"could not read {str(path)!r} as a .npy array: {why}; save a numeric array with "
                            f"numpy.save") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            kind = getattr(getattr(arr, "dtype", None), "name", type(arr).__name__)
            raise DataError(f"data in {str(path)!r} must be numeric (bool, integer or float), got dtype {kind}")
        data = torch.from_numpy(np.ascontiguousarray(arr))
    elif ext == ".csv":
        data = torch.from_numpy(_read_csv(path))
    else:
        data = _read_pt(path)
        if not isinstance(data, torch.Tensor):
            raise DataError(f"{str(path)!r}: the 'x'/'data' entry must be a tensor, got {type(data).__name__}")
        if data.is_complex() or not (data.is_floating_point() or data.dtype in (torch.bool, torch.uint8, torch.int8,
                                                                               torch.int16, torch.int32, torch.int64)):
            raise DataError(f"data in {str(path)!r} must be numeric (bool, integer or float), got dtype {data.dtype}")
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
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a directory; give a file name ending in {', '.join(DATA_EXTENSIONS)}")
    t = torch.as_tensor(x).detach().cpu()
    if ext == ".csv" and t.ndim != 2:
        raise DataError(f"a .csv file needs 2-D samples [n, d], got shape {tuple(t.shape)}; use .npy or .pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    def write(fh) -> None:
        if ext == ".npy":
            np.save(fh, t.numpy())
        elif ext == ".csv":
            digits = 17 if t.dtype == torch.float64 else 9
            header = ",".join(f"x{i}" for i in range(t.shape[1]))
            np.savetxt(fh, t.numpy(), delimiter=",", header=header, comments="", fmt=f"%.{digits}g")
        else:
            torch.save(t.clone(), fh)

    return atomic_write(path, write)


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
