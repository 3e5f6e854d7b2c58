"""Energy changes of single-bit flips by brute force: the generic ``delta`` for binary energies.

For an energy on {0,1}^d, ``delta_i(x) = U(flip_i x) - U(x)`` for every site i is what Gibbs
samplers, Gibbs-with-gradients (exact variant) and pseudo-likelihood need.  Structured energies
(Ising) compute it in closed form; for any other energy (a neural net) it is obtained here by
evaluating U on the d flipped copies of every row, in one batched call of size ``batch * d``
(or in chunks of rows).  Cost: ``d + 1`` energy evaluations per row, O(d) times one forward pass;
memory ``batch * d * d`` for the flipped copies (bounded by ``chunk_size``).  Differentiable in
the energy's parameters.
"""
from __future__ import annotations

from typing import Optional

import torch

from .._core.validation import check_int


def flip_all(x: torch.Tensor) -> torch.Tensor:
    """All single-site flips of each row: ``out[b, i] = x[b]`` with site i replaced by ``1 - x[b, i]``.

    Parameters
    ----------
    x : Tensor[batch, d]
        {0,1}-valued states.

    Returns
    -------
    Tensor[batch, d, d]
    """
    d = x.shape[-1]
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    xe = x.unsqueeze(1)  # [b, 1, d]
    return xe + eye * (1 - 2 * xe)


def flip_delta(energy, x: torch.Tensor, chunk_size: Optional[int] = None) -> torch.Tensor:
    """``delta[b, i] = U(flip_i x_b) - U(x_b)`` by evaluating every flipped copy.

    Parameters
    ----------
    energy : callable
        ``energy(x) -> Tensor[batch]`` on {0,1}^d float rows.
    x : Tensor[batch, d]
        {0,1}-valued states (flattened).
    chunk_size : int, optional
        Rows of ``x`` processed per energy call (each call evaluates ``chunk_size * d`` states);
        default all rows at once.

    Returns
    -------
    Tensor[batch, d]
        Energy differences (differentiable w.r.t. the energy's parameters).
    """
    if x.ndim != 2:
        x = x.reshape(x.shape[0], -1)
    b, d = x.shape
    step = b if chunk_size is None else check_int("chunk_size", chunk_size)
    out = []
    for start in range(0, b, max(step, 1)):
        xc = x[start:start + step]
        u0 = energy(xc)
        u1 = energy(flip_all(xc).reshape(-1, d)).reshape(xc.shape[0], d)
        out.append(u1 - u0.unsqueeze(1))
    return torch.cat(out) if len(out) > 1 else out[0]
