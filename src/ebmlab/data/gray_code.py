"""2-D points as 32-bit Gray codes: continuous toy data turned into binary data.

The discrete energy-discrepancy and Gibbs-with-gradients/EB-GFN line of work (Grathwohl et al.
2021; Zhang et al. 2022; Schröder et al. 2024) benchmarks discrete EBMs on 2-D toy densities
quantised and written as bit strings.  The convention used here:

1. **Box.**  Each coordinate is restricted to the half-open interval ``[lo, hi)``, by default
   ``[-4, 4)`` (the range in which the FFJORD toy sets live; all but a tiny fraction of their
   mass, see :func:`gray_toy`).  Other boxes can be passed as ``box=(lo, hi)``.
2. **Quantisation.**  The box is cut into ``2**bits`` equal cells per coordinate (``bits = 16``,
   cell width ``(hi - lo) / 2**16 = 1.22e-4`` for the default box):
   ``q = floor((x - lo) / (hi - lo) * 2**bits)``, an integer in ``0 .. 2**bits - 1``.
3. **Gray code.**  The reflected binary Gray code ``g = q XOR (q >> 1)`` is written with the most
   significant bit first; the 2-D code is the concatenation ``[bits of g(x_1), bits of g(x_2)]``
   (32 bits for ``bits = 16``).  Neighbouring cells differ in exactly one bit, so a single bit
   flip moves a point to an adjacent cell for the low-order bits (this is why Gray codes, not
   plain binary, are used: local moves in bit space are local in the plane).
4. **Decoding** inverts the Gray code by a prefix XOR, ``q = g XOR (g >> 1) XOR (g >> 2) ...``, and
   returns the centre of the cell, ``lo + (q + 1/2) (hi - lo) / 2**bits``.  Encoding a decoded point
   gives back the same code exactly; decoding an encoded point moves it by at most half a cell.

Points outside the box raise :class:`~ebmlab.DataError` in :func:`encode_gray`; :func:`gray_toy`
instead draws the toy data set *conditioned on the box* (points outside are redrawn, so the
binary data set follows the exact truncated law).  Measured mass outside ``[-4, 4)^2``: 0 for
2spirals, checkerboard, circles, moons, rings, swissroll; 2e-4 for 8gaussians and pinwheel; 4e-3 for
8gaussians_unit; 87% for ``grid`` (modes at +-5): pass ``box=(-8, 8)`` for it.
"""
from __future__ import annotations

from typing import Union, Optional, Sequence, Tuple

import torch

from .._core.errors import ConfigError, DataError
from .._core.random import as_generator
from .._core.validation import check_int
from .toy import toy

#: Default bounding box [lo, hi) of each coordinate.
DEFAULT_BOX: Tuple[float, float] = (-4.0, 4.0)
#: Default number of bits per coordinate.
DEFAULT_BITS: int = 16


def _check_box(box: Sequence[float]) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"box must be a pair (lo, hi) of numbers, got {box!r}") from None
    if not (lo < hi) or not all(map(lambda v: abs(v) < float("inf"), (lo, hi))):
        raise ConfigError(f"box must be a finite pair (lo, hi) with lo < hi, got {box!r}")
    return lo, hi


def _check_bits(bits: int) -> int:
    return check_int("bits", bits, minimum=1, maximum=30)


def binary_to_gray(q: torch.Tensor) -> torch.Tensor:
    """Reflected binary Gray code of non-negative integers: ``g = q XOR (q >> 1)`` (Gray 1953).

    Parameters
    ----------
    q : LongTensor
        Non-negative integers.

    Returns
    -------
    LongTensor
        Gray codes, same shape.  Consecutive integers have codes differing in one bit.
    """
    q = q.long()
    return q ^ (q >> 1)


def gray_to_binary(g: torch.Tensor, bits: int = DEFAULT_BITS) -> torch.Tensor:
    """Inverse of :func:`binary_to_gray`: ``q = g XOR (g >> 1) XOR (g >> 2) XOR ...`` (prefix XOR).

    Parameters
    ----------
    g : LongTensor
        Gray codes of integers below ``2**bits``.
    bits : int
        Code width; ``ceil(log2(bits))`` shift-and-XOR rounds are done.
    """
    bits = _check_bits(bits)
    q = g.long().clone()
    shift = 1
    while shift < bits:
        q = q ^ (q >> shift)
        shift *= 2
    return q


def int_to_bits(q: torch.Tensor, bits: int = DEFAULT_BITS, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Write integers as bit vectors, most significant bit first.

    Returns a float tensor in {0, 1} of shape ``q.shape + (bits,)``.
    """
    bits = _check_bits(bits)
    shifts = torch.arange(bits - 1, -1, -1, device=q.device)
    out = (q.long().unsqueeze(-1) >> shifts) & 1
    return out.to(dtype or torch.get_default_dtype())


def bits_to_int(b: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`int_to_bits`: bit vectors (last dim, MSB first) to integers."""
    bits = b.shape[-1]
    weights = torch.pow(2, torch.arange(bits - 1, -1, -1, device=b.device, dtype=torch.long))
    return (b.round().long() * weights).sum(-1)


def encode_gray(points: torch.Tensor, box: Sequence[float] = DEFAULT_BOX, bits: int = DEFAULT_BITS) -> torch.Tensor:
    """Encode points of ``[lo, hi)^k`` as Gray-code bit strings of length ``k * bits``.

    ``q_c = floor((x_c - lo) / (hi - lo) * 2**bits)``, ``g_c = q_c XOR (q_c >> 1)``, bits MSB first,
    coordinates concatenated (see the module docstring).

    Parameters
    ----------
    points : Tensor[n, k]
        Points (k = 2 for the toy sets).
    box : (lo, hi)
        Bounding interval of every coordinate (default ``(-4, 4)``).
    bits : int
        Bits per coordinate (default 16).

    Returns
    -------
    Tensor[n, k * bits]
        Float tensor in {0, 1} (default dtype).

    Raises
    ------
    DataError
        If a point is non-finite or lies outside ``[lo, hi)``.
    """
    lo, hi = _check_box(box)
    bits = _check_bits(bits)
    x = torch.as_tensor(points)
    if x.ndim != 2:
        raise DataError(f"points must be a 2-D tensor [n, k], got shape {tuple(x.shape)}")
    x = x.double()
    if not torch.isfinite(x).all():
        raise DataError("points contain non-finite values (NaN or inf)")
    outside = (x < lo) | (x >= hi)
    if outside.any():
        bad = x[outside][0].item()
        raise DataError(
            f"{int(outside.any(1).sum())} points lie outside the box [{lo}, {hi}) (e.g. coordinate {bad:.4g}); "
            "enlarge `box` or drop them"
        )
    n_cells = 2 ** bits
    q = torch.floor((x - lo) / (hi - lo) * n_cells).long().clamp_(0, n_cells - 1)
    g = binary_to_gray(q)
    return int_to_bits(g, bits).reshape(x.shape[0], -1)


def decode_gray(codes: torch.Tensor, box: Sequence[float] = DEFAULT_BOX, bits: int = DEFAULT_BITS) -> torch.Tensor:
    """Decode Gray-code bit strings into the centres of their cells.

    ``q_c = gray_to_binary(g_c)``, ``x_c = lo + (q_c + 1/2) (hi - lo) / 2**bits``.

    Parameters
    ----------
    codes : Tensor[n, k * bits]
        {0, 1}-valued codes (values are rounded, so relaxed samples near {0,1} decode too).
    box, bits
        As in :func:`encode_gray`.

    Returns
    -------
    Tensor[n, k]
        Cell centres, in the dtype of ``codes`` if floating, else the default dtype.
    """
    lo, hi = _check_box(box)
    bits = _check_bits(bits)
    b = torch.as_tensor(codes)
    if b.ndim != 2 or b.shape[1] % bits != 0:
        raise DataError(f"codes must have shape [n, k * {bits}], got {tuple(b.shape)}")
    if not ((b.round() == 0) | (b.round() == 1)).all():
        raise DataError("codes must be {0, 1}-valued")
    k = b.shape[1] // bits
    g = bits_to_int(b.reshape(b.shape[0], k, bits))
    q = gray_to_binary(g, bits)
    width = (hi - lo) / 2 ** bits
    out = lo + (q.double() + 0.5) * width
    return out.to(b.dtype if b.is_floating_point() else torch.get_default_dtype())


def gray_toy(
    name: str,
    n_samples: int,
    generator: Union[int, torch.Generator, None] = None,
    box: Sequence[float] = DEFAULT_BOX,
    bits: int = DEFAULT_BITS,
) -> torch.Tensor:
    """A 2-D toy data set (``ebmlab.data.toy(name, ...)``) as binary Gray codes.

    Points are drawn from the toy law conditioned on the box ``[lo, hi)^2`` (points outside are
    redrawn; the redraw loop gives up with a DataError if under 1% of the mass is inside), then
    encoded by :func:`encode_gray`.

    Parameters
    ----------
    name : str
        Toy data set name (``ebmlab.data.toy_names()``), e.g. ``"8gaussians"``, ``"2spirals"``.
    n_samples : int
        Number of samples.
    generator : torch.Generator or int, optional
        Randomness: a CPU generator or an int seed (``None``: a fresh OS-seeded generator, as :func:`toy`).
    box, bits
        Quantisation (default ``[-4, 4)`` and 16 bits: 32-bit codes).

    Returns
    -------
    Tensor[n_samples, 2 * bits]
        {0, 1} float tensor.
    """
    n = check_int("n_samples", n_samples)
    lo, hi = _check_box(box)
    if generator is None:
        g = torch.Generator()
        g.seed()
    else:
        g = as_generator(generator)
    kept = []
    n_kept = 0
    drawn = 0
    while n_kept < n:
        want = max(n - n_kept, 16)
        pts = torch.as_tensor(toy(name, want, generator=g))
        drawn += want
        inside = ((pts >= lo) & (pts < hi)).all(1)
        kept.append(pts[inside])
        n_kept += int(inside.sum())
        if drawn > 100 * n + 1000 and n_kept < 0.01 * drawn:
            raise DataError(f"toy set {name!r}: under 1% of the samples fall in the box [{lo}, {hi})^2; enlarge `box`")
    pts = torch.cat(kept)[:n]
    return encode_gray(pts, box=(lo, hi), bits=bits)
