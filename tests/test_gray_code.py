"""Gray-code encoding of 2-D points (ebmlab.data.gray_code)."""
import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab.data.gray_code import (
    binary_to_gray,
    bits_to_int,
    decode_gray,
    encode_gray,
    gray_to_binary,
    gray_toy,
    int_to_bits,
)


def _popcount(v: torch.Tensor) -> torch.Tensor:
    return int_to_bits(v, 17, dtype=torch.int64).sum(-1)


def test_gray_property_all_16_bit_integers():
    q = torch.arange(2 ** 16)
    g = binary_to_gray(q)
    # a bijection of 0..2^16-1
    assert torch.equal(torch.sort(g).values, q)
    # consecutive integers differ in exactly one bit
    assert torch.all(_popcount(g[1:] ^ g[:-1]) == 1)
    # and the inverse is exact
    assert torch.equal(gray_to_binary(g, 16), q)


def test_known_codes():
    assert binary_to_gray(torch.arange(8)).tolist() == [0, 1, 3, 2, 6, 7, 5, 4]
    assert int_to_bits(torch.tensor(6), 4).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert bits_to_int(torch.tensor([0.0, 1.0, 1.0, 0.0])).item() == 6


def test_encode_box_corners_and_layout():
    pts = torch.tensor([[-4.0, -4.0], [3.99999, -4.0]], dtype=torch.float64)
    c = encode_gray(pts)
    assert c.shape == (2, 32)
    assert c[0].sum() == 0  # cell 0 of both coordinates -> all zero
    # cell 2^16 - 1 = 0xFFFF has Gray code 0x8000: only the MSB of the first coordinate set
    assert c[1, 0] == 1 and c[1, 1:].sum() == 0


def test_round_trip_codes_and_points():
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 2, (500, 32), generator=g).double()
    assert torch.equal(encode_gray(decode_gray(codes)), codes)
    pts = torch.rand(500, 2, generator=g, dtype=torch.float64) * 8 - 4
    dec = decode_gray(encode_gray(pts))
    half_cell = 8 / 2 ** 16 / 2
    assert (dec - pts).abs().max() <= half_cell * (1 + 1e-9)


def test_neighbouring_cells_differ_in_one_bit():
    width = 8 / 2 ** 16
    x = torch.tensor([[-4 + (k + 0.5) * width, 0.1] for k in range(0, 2 ** 16 - 1, 997)], dtype=torch.float64)
    x_next = x + torch.tensor([width, 0.0], dtype=torch.float64)
    assert torch.all((encode_gray(x) != encode_gray(x_next)).sum(1) == 1)


def test_bad_inputs():
    with pytest.raises(DataError):
        encode_gray(torch.tensor([[4.0, 0.0]]))  # hi is excluded
    with pytest.raises(DataError):
        encode_gray(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(DataError):
        decode_gray(torch.zeros(3, 31))
    with pytest.raises(ConfigError):
        encode_gray(torch.zeros(3, 2), box=(1.0, -1.0))
    with pytest.raises(ConfigError):
        gray_toy("8gaussians", 10, generator="zero")


def test_gray_toy_is_binary_reproducible_and_decodes_to_the_data_law():
    from ebmlab.data import toy

    a = gray_toy("8gaussians", 2000, generator=3)
    b = gray_toy("8gaussians", 2000, generator=3)
    assert a.shape == (2000, 32)
    assert torch.equal(a, b)
    assert bool(((a == 0) | (a == 1)).all())
    pts = decode_gray(a).double()
    # the same generator draws the same toy points: the in-box ones, in order, are the first codes,
    # each decoded to its cell centre (within half a cell of the point)
    raw = torch.as_tensor(toy("8gaussians", 2000, generator=torch.Generator().manual_seed(3))).double()
    inside = raw[((raw >= -4) & (raw < 4)).all(1)]
    assert inside.shape[0] > 1900
    assert (pts[: inside.shape[0]] - inside).abs().max() <= 8 / 2 ** 16 / 2 * (1 + 1e-6)
    assert pts.abs().max() < 4
