"""Data files: round trips, header detection, atomic writes, every error path, resolve_data."""
import os

import numpy as np
import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.data import load_data, resolve_data, save_samples, toy

F64 = torch.float64


@pytest.fixture
def x64():
    return torch.randn(20, 3, generator=torch.Generator().manual_seed(0), dtype=F64)


@pytest.mark.parametrize("ext", [".npy", ".csv", ".pt"])
def test_round_trip_exact(tmp_path, x64, ext):
    path = save_samples(tmp_path / f"sub/samples{ext}", x64)
    assert path.exists()
    back = load_data(path, dtype=F64)
    assert torch.equal(back, x64)
    assert load_data(path).dtype == torch.float32
    x32 = x64.float()
    save_samples(tmp_path / f"s32{ext}", x32)
    assert torch.equal(load_data(tmp_path / f"s32{ext}"), x32)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n1,2\n3.5,-4e-1\n")
    (tmp_path / "n.csv").write_text("1,2\n3.5,-4e-1\n\n")
    expected = torch.tensor([[1.0, 2.0], [3.5, -0.4]], dtype=F64)
    assert torch.equal(load_data(tmp_path / "h.csv", dtype=F64), expected)
    assert torch.equal(load_data(tmp_path / "n.csv", dtype=F64), expected)


def test_pt_dict_keys(tmp_path, x64):
    torch.save({"x": x64}, tmp_path / "a.pt")
    torch.save({"data": x64, "labels": torch.arange(20)}, tmp_path / "b.pt")
    assert torch.equal(load_data(tmp_path / "a.pt", dtype=F64), x64)
    assert torch.equal(load_data(tmp_path / "b.pt", dtype=F64), x64)


def test_integer_npy_is_converted(tmp_path):
    np.save(tmp_path / "i.npy", np.arange(6).reshape(3, 2))
    out = load_data(tmp_path / "i.npy")
    assert out.dtype == torch.float32 and out.tolist() == [[0, 1], [2, 3], [4, 5]]


def test_save_replaces_existing_file(tmp_path, x64):
    p = tmp_path / "s.npy"
    save_samples(p, torch.zeros(4, 2))
    save_samples(p, x64)
    assert torch.equal(load_data(p, dtype=F64), x64)


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d / "missing.npy", "does not exist"),
        (lambda d: _write(d / "data.txt", "1,2\n3,4\n"), "allowed extensions"),
        (lambda d: _write(d / "noext", "1,2\n"), "allowed extensions"),
        (lambda d: _write(d / "bad.csv", "1,2\n3,x\n"), "non-numeric"),
        (lambda d: _write(d / "ragged.csv", "1,2\n3,4,5\n"), "expected 2"),
        (lambda d: _write(d / "empty.csv", ""), "empty"),
        (lambda d: _write(d / "onerow.csv", "1,2\n"), "at least 2 rows"),
        (lambda d: _write(d / "nan.csv", "1,2\nnan,4\n"), "non-finite"),
        (lambda d: (np.save(d / "vec.npy", np.arange(5.0)), d / "vec.npy")[1], "2-D"),
        (lambda d: (np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object)), d / "obj.npy")[1], "could not read"),
        (lambda d: _write(d / "junk.npy", b"not an array"), "could not read"),
        (lambda d: _write(d / "junk.pt", b"not a tensor file"), "could not read"),
        (lambda d: (torch.save({"y": torch.zeros(3, 2)}, d / "nokey.pt"), d / "nokey.pt")[1], "'x' or 'data'"),
        (lambda d: (torch.save([1, 2, 3], d / "list.pt"), d / "list.pt")[1], "must hold a tensor"),
    ],
)
def test_load_errors(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(DataError, match=match) as info:
        load_data(path)
    assert "\n" not in str(info.value)


def test_load_error_names_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.csv"):
        load_data(tmp_path / "missing.csv")


def test_save_errors(tmp_path):
    with pytest.raises(DataError, match="allowed extensions"):
        save_samples(tmp_path / "s.json", torch.zeros(3, 2))
    with pytest.raises(DataError, match="2-D"):
        save_samples(tmp_path / "s.csv", torch.zeros(3, 2, 2))
    save_samples(tmp_path / "img.npy", torch.zeros(3, 2, 2))  # .npy/.pt keep any shape
    assert np.load(tmp_path / "img.npy").shape == (3, 2, 2)
    assert list(tmp_path.glob(".*tmp")) == []


def test_resolve_data(tmp_path, x64):
    torch.testing.assert_close(resolve_data("moons", 50, seed=3), toy("moons", 50, generator=3))
    save_samples(tmp_path / "d.npy", x64)
    assert torch.equal(resolve_data(str(tmp_path / "d.npy"), dtype=F64), x64)
    assert torch.equal(resolve_data(tmp_path / "d.npy", dtype=F64), x64)
    assert torch.equal(resolve_data(x64, dtype=F64), x64)
    with pytest.raises(ConfigError, match="8gaussians"):
        resolve_data("not_a_set", 10)
    with pytest.raises(DataError, match="does not exist"):
        resolve_data(str(tmp_path / "nope.csv"), 10)
    assert os.path.exists(tmp_path / "d.npy")
