"""Proper colourings of interaction graphs, for exact block (checkerboard) Gibbs updates.

Sites of one colour share no interaction, so given all other sites they are conditionally
independent and can be resampled together exactly.  The usual two-colour checkerboard
(r + c) mod 2 is proper on open lattices and on tori with an EVEN side only: on an odd periodic
side the wrap-around bonds join two sites of the same colour, and a "checkerboard" sweep then
updates neighbours simultaneously and samples the wrong law (measured: on a 5 x 5 torus at beta .35
it gives a nearest-neighbour correlation of .475 instead of the exact .514).

For an odd periodic side L the torus C_L x C_L has chromatic number 3; we use
c(r, c) = (f(r) + f(c)) mod 3 where f = (0, 1, 0, 1, ..., 0, 1, 2) is a proper 3-colouring of
the cycle C_L: horizontal neighbours differ by f(c+1) - f(c) != 0 (mod 3), vertical ones
likewise, so c is proper (the colouring of a Cartesian product of graphs).
"""
from __future__ import annotations

import torch

from .._core.errors import ConfigError
from .._core.validation import check_int

__all__ = ["lattice_colouring", "greedy_colouring", "is_proper_colouring"]


def lattice_colouring(side: int, periodic: bool = True) -> torch.Tensor:
    """Proper colouring of the ``side x side`` square lattice, LongTensor [side^2] (row-major).

    Two colours ((r + c) mod 2) for open lattices and even periodic sides; three colours
    ((f(r) + f(c)) mod 3, see the module docstring) for odd periodic sides.
    """
    L = check_int("side", side, minimum=2)
    r = torch.arange(L).unsqueeze(1)
    c = torch.arange(L).unsqueeze(0)
    if periodic and L % 2 == 1:
        f = torch.arange(L) % 2
        f[-1] = 2
        col = (f.unsqueeze(1) + f.unsqueeze(0)) % 3
    else:
        col = (r + c) % 2
    return col.reshape(-1).to(torch.int64)


def greedy_colouring(adjacency: torch.Tensor) -> torch.Tensor:
    """Proper colouring of a general graph (nonzero off-diagonal entries of ``adjacency`` [n, n]).

    Greedy in order of decreasing degree (Welsh & Powell 1967): at most max-degree + 1 colours.
    A dense coupling matrix gives n colours, i.e. single-site updates.
    """
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ConfigError(f"adjacency must be a square [n, n] matrix, got shape {tuple(adjacency.shape)}")
    A = (adjacency != 0).cpu()
    A.fill_diagonal_(False)
    A = A | A.T
    n = A.shape[0]
    order = torch.argsort(A.sum(1), descending=True, stable=True).tolist()
    colours = [-1] * n
    nbrs = [torch.nonzero(A[i]).flatten().tolist() for i in range(n)]
    for i in order:
        used = {colours[j] for j in nbrs[i] if colours[j] >= 0}
        k = 0
        while k in used:
            k += 1
        colours[i] = k
    return torch.tensor(colours, dtype=torch.int64)


def is_proper_colouring(adjacency: torch.Tensor, colours: torch.Tensor) -> bool:
    """True if no two adjacent sites (nonzero off-diagonal ``adjacency``) share a colour."""
    A = adjacency != 0
    A = A & ~torch.eye(A.shape[0], dtype=torch.bool, device=A.device)
    same = colours.unsqueeze(0) == colours.unsqueeze(1)
    return not bool((A & same.to(A.device)).any())
