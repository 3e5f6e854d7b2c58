"""Ising models on {0,1} states: a general pairwise model and the square lattice.

State conventions (float {0,1} tensors of shape [batch, n_sites], spins s = 2x - 1, lattices
flattened row-major) are those of :mod:`ebmlab.energies.binary`.

Both classes are exponential families, U(x) = -theta . T(x), and provide the fast local changes
used by discrete samplers and estimators:

- ``delta(x)[b, i] = U(flip_i x_b) - U(x_b)`` for every site (dense matmul for :class:`Ising`,
  a roll-based neighbour sum for :class:`IsingLattice`);
- ``site_delta(x, idx)`` the same for one site per row (O(n) resp. O(1) per row);
- ``energy_and_grad(x)`` analytic gradient of the multilinear relaxation (the polynomial
  ``forward`` evaluated at real-valued x), used by Gibbs-with-gradients.

References
----------
E. Ising (1925), Beitrag zur Theorie des Ferromagnetismus. Z. Physik 31.
W. Grathwohl et al. (2021), Oops I took a gradient: scalable sampling for discrete
distributions. ICML (lattice Ising set-up, J = sigma * A).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .._core.errors import ConfigError, DataError
from .._core.validation import check_choice, check_int
from .._core.tensors import as_float_tensor
from .base import Energy
from .binary import to_spins
from .registry import ENERGIES

__all__ = ["Ising", "IsingLattice"]


def _check_shape(x: torch.Tensor, n_sites: int) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != n_sites:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"states must have shape [batch, {n_sites}] ({{0,1}} floats), got {shape}")


class Ising(Energy):
    r"""General pairwise Ising model (Boltzmann machine without hidden units).

    .. math::

        U(s) = -\sum_{i<j} J_{ij} s_i s_j - \sum_i h_i s_i
             = -\tfrac12 s^\top J s - h^\top s,

    with s = 2x - 1 in {-1,+1} (``spins="pm1"``, the physics convention) or s = x in {0,1}
    (``spins="01"``, the Boltzmann-machine convention).  J is symmetric with zero diagonal.

    Exponential-family view: ``statistics(x)`` = [s_i s_j for the pairs (i<j) in ``pairs``,
    s_1..s_n] and ``theta`` = [J_ij for those pairs, h_1..h_n], so U(x) = -theta . T(x) exactly
    (no constant).  ``pairs`` are the pairs with J_ij != 0 at construction, or all i<j pairs when
    ``learnable=True``.

    Parameters
    ----------
    J : array-like [n, n]
        Symmetric coupling matrix with zero diagonal (checked; ConfigError otherwise).
    h : array-like [n], optional
        External fields (default zero).
    spins : {"pm1", "01"}
        Spin convention (see above).
    learnable : bool
        If True, J and h are ``nn.Parameter`` s: the stored weight W is symmetrised and its
        diagonal removed in ``J`` (J = (W + W^T)/2 off the diagonal), so any gradient step keeps
        a valid model.  Estimators (pseudo-likelihood, PCD, energy discrepancy) learn J and h.

    Notes
    -----
    ``delta(x)`` uses one dense matmul, O(batch n^2):
    delta_i(x) = -c (1 - 2x_i) ((J s)_i + h_i) with c = ds/dx (2 for "pm1", 1 for "01").
    """

    discrete = True

    def __init__(self, J, h=None, spins: str = "pm1", learnable: bool = False):
        super().__init__()
        J = as_float_tensor("J", J)
        if J.ndim != 2 or J.shape[0] != J.shape[1] or J.shape[0] < 1:
            raise ConfigError(f"J must be a square [n, n] matrix, got shape {tuple(J.shape)}")
        n = J.shape[0]
        tol = 1e-6 * max(1.0, float(J.abs().max()))
        if not torch.allclose(J, J.T, atol=tol, rtol=0):
            raise ConfigError("J must be symmetric (J_ij = J_ji); symmetrise it with (J + J.T) / 2")
        if float(J.diagonal().abs().max()) > tol:
            raise ConfigError(
                "J must have a zero diagonal (J_ii s_i^2 is a constant for +-1 spins and a field for {0,1} "
                "states: put it in h); set J.fill_diagonal_(0)"
            )
        J = 0.5 * (J + J.T)  # exactly symmetric (the check above allows rounding-level asymmetry)
        J.fill_diagonal_(0.0)
        if h is None:
            h = torch.zeros(n, dtype=J.dtype)
        h = as_float_tensor("h", h, dtype=J.dtype)
        if h.shape != (n,):
            raise ConfigError(f"h must have shape [{n}] to match J, got {tuple(h.shape)}")
        self.spins = check_choice("spins", spins, ["pm1", "01"])
        self.n_sites = n
        self.learnable = bool(learnable)
        self._c = 2.0 if self.spins == "pm1" else 1.0
        if self.learnable:
            self.weight = nn.Parameter(J.clone())
            self.bias = nn.Parameter(h.clone())
            self.register_buffer("_offdiag", 1.0 - torch.eye(n, dtype=J.dtype), persistent=False)
            iu = torch.triu_indices(n, n, offset=1)
        else:
            self.register_buffer("_J", J.clone())
            self.register_buffer("_h", h.clone())
            iu = torch.triu_indices(n, n, offset=1)
            iu = iu[:, J[iu[0], iu[1]] != 0]
        self.register_buffer("pairs", iu, persistent=False)

    # -- parameters ---------------------------------------------------------------------------
    @property
    def J(self) -> torch.Tensor:
        """The symmetric, zero-diagonal coupling matrix [n, n]."""
        if self.learnable:
            return 0.5 * (self.weight + self.weight.T) * self._offdiag
        return self._J

    @property
    def h(self) -> torch.Tensor:
        """The field vector [n]."""
        return self.bias if self.learnable else self._h

    @property
    def theta(self) -> torch.Tensor:
        """Natural parameters [J_ij for (i, j) in pairs, h_1..h_n] (differentiable if learnable)."""
        J = self.J
        return torch.cat([J[self.pairs[0], self.pairs[1]], self.h])

    def statistics(self, x: torch.Tensor) -> torch.Tensor:
        """Sufficient statistics T(x) = [s_i s_j for (i, j) in pairs, s_1..s_n], shape [batch, p]."""
        _check_shape(x, self.n_sites)
        s = self._spins(x)
        return torch.cat([s[:, self.pairs[0]] * s[:, self.pairs[1]], s], dim=1)

    # -- energy ---------------------------------------------------------------------------------
    def _spins(self, x: torch.Tensor) -> torch.Tensor:
        return to_spins(x) if self.spins == "pm1" else x

    def local_field(self, s: torch.Tensor) -> torch.Tensor:
        """Local fields (J s)_i + h_i of spins ``s`` (in this model's convention), [batch, n].

        With spins "pm1", delta_i = 2 s_i * local_field_i(s); with "01",
        delta_i = -(1 - 2 x_i) * local_field_i(x).
        """
        return s @ self.J.to(s.dtype) + self.h.to(s.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """U(x) = -1/2 s^T J s - h^T s, shape [batch]."""
        _check_shape(x, self.n_sites)
        s = self._spins(x)
        J = self.J.to(s.dtype)
        return -0.5 * ((s @ J) * s).sum(-1) - s @ self.h.to(s.dtype)

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Analytic (U(x), grad_x U(x)) of the relaxation: grad = -c (J s + h), detached."""
        _check_shape(x, self.n_sites)
        with torch.no_grad():
            s = self._spins(x)
            J = self.J.to(s.dtype)
            h = self.h.to(s.dtype)
            Js = s @ J
            u = -0.5 * (Js * s).sum(-1) - s @ h
            return u, -self._c * (Js + h)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """U(flip_i x) - U(x) for all sites: -c (1 - 2x) * (J s + h), shape [batch, n]."""
        _check_shape(x, self.n_sites)
        s = self._spins(x)
        return -self._c * (1.0 - 2.0 * x) * self.local_field(s)

    def site_delta(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """U(flip_{idx_b} x_b) - U(x_b) for one site per row, shape [batch] (O(n) per row)."""
        _check_shape(x, self.n_sites)
        rows = torch.arange(x.shape[0], device=x.device)
        s = self._spins(x)
        J = self.J.to(s.dtype)
        local = (s * J[idx]).sum(-1) + self.h.to(s.dtype)[idx]
        return -self._c * (1.0 - 2.0 * x[rows, idx]) * local

    def extra_repr(self) -> str:
        return f"n_sites={self.n_sites}, spins={self.spins!r}, learnable={self.learnable}"


class IsingLattice(Energy):
    r"""Nearest-neighbour Ising model on a ``side x side`` square lattice.

    .. math::

        U(s) = -\text{coupling} \sum_{\langle ij \rangle} s_i s_j - \text{field} \sum_i s_i,
        \qquad s = 2x - 1,

    each nearest-neighbour pair counted once (2 side^2 bonds on the torus, 2 side (side-1) with
    open boundaries).  ``coupling`` is the usual inverse temperature beta (J = 1): the critical
    point of the infinite lattice is ln(1 + sqrt 2)/2 = 0.4407.  Grathwohl et al. (2021) write
    log p = s^T J s + b^T s with J = sigma A (A the symmetric adjacency), which counts every pair
    twice: their sigma is ``coupling = 2 sigma`` and ``field = b`` here.

    Exponential family: ``statistics(x)`` = [sum_<ij> s_i s_j, sum_i s_i], ``theta`` =
    [coupling, field].

    Parameters
    ----------
    side : int
        Lattice side; n_sites = side^2, flattened row-major.  Periodic lattices need side >= 3: on
        a 2 x 2 torus each pair of neighbours would be joined by two bonds (the wrap-around bond
        and the direct one), i.e. an open 2 x 2 lattice with doubled coupling; use
        ``periodic=False`` (side >= 2) for that.
    coupling : float
        Per-bond coupling (> 0 ferromagnetic, < 0 antiferromagnetic).
    field : float
        Uniform external field.
    periodic : bool
        Torus (default) or open boundaries.
    learnable : bool
        Coupling and field as ``nn.Parameter`` scalars.
    """

    discrete = True

    def __init__(self, side: int, coupling: float, field: float = 0.0, periodic: bool = True, learnable: bool = False):
        super().__init__()
        self.periodic = bool(periodic)
        self.side = check_int("side", side, minimum=3 if self.periodic else 2)
        self.n_sites = self.side * self.side
        self.learnable = bool(learnable)
        c = as_float_tensor("coupling", coupling, dtype=torch.float64)
        f = as_float_tensor("field", field, dtype=torch.float64)
        if c.ndim != 0 or f.ndim != 0:
            raise ConfigError("coupling and field must be scalars (use Ising(J, h) for site-dependent values)")
        if self.learnable:
            self.coupling = nn.Parameter(c.to(torch.get_default_dtype()))
            self.field = nn.Parameter(f.to(torch.get_default_dtype()))
        else:
            # float64 0-dim buffers: exact values; 0-dim tensors do not change the dtype of x.
            self.register_buffer("coupling", c)
            self.register_buffer("field", f)
        L = self.side
        r, col = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
        nbrs = []
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = r + dr, col + dc
            if self.periodic:
                idx = (rr % L) * L + (cc % L)
            else:
                inside = (rr >= 0) & (rr < L) & (cc >= 0) & (cc < L)
                idx = torch.where(inside, rr.clamp(0, L - 1) * L + cc.clamp(0, L - 1), torch.full_like(rr, L * L))
            nbrs.append(idx.reshape(-1))
        # neighbours[i] = the 4 neighbour sites of i; index n_sites marks "no neighbour" (open boundary)
        self.register_buffer("neighbours", torch.stack(nbrs, dim=1), persistent=False)

    @classmethod
    def from_ones_and_agreements(cls, side: int, alpha: float, beta: float, periodic: bool = True) -> "IsingLattice":
        r"""The lattice from weights on two counts: the number of ones and the number of agreeing neighbour pairs.

        p(y) ∝ exp(alpha sum_i y_i + beta sum_{i~j} 1[y_i = y_j]) on y in {0,1}^n (the two-state Potts
        form of the Ising model, with sufficient statistics "number of ones" and "number of
        nearest-neighbour pairs that agree").

        With y in {0,1}, y_i = (1 + s_i)/2 and 1[y_i = y_j] = (1 + s_i s_j)/2, so

            alpha sum y_i + beta sum_{i~j} 1[y_i = y_j]
              = (alpha/2) sum s_i + (beta/2) sum_{i~j} s_i s_j + alpha n/2 + beta n_bonds/2,

        i.e. an :class:`IsingLattice` with ``coupling = beta/2`` and ``field = alpha/2`` (U is
        minus the exponent, up to the constant ``alpha n/2 + beta n_bonds/2``).  ``i ~ j`` runs
        over each nearest-neighbour pair once.
        """
        return cls(side, coupling=0.5 * float(beta), field=0.5 * float(alpha), periodic=periodic)

    @property
    def n_bonds(self) -> int:
        """Number of nearest-neighbour pairs: 2 side^2 (torus) or 2 side (side - 1) (open)."""
        L = self.side
        return 2 * L * L if self.periodic else 2 * L * (L - 1)

    # -- exponential family ------------------------------------------------------------------------
    @property
    def theta(self) -> torch.Tensor:
        """[coupling, field]."""
        return torch.stack([self.coupling, self.field])

    def statistics(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) = [sum_<ij> s_i s_j, sum_i s_i], shape [batch, 2]."""
        _check_shape(x, self.n_sites)
        s = to_spins(x)
        return torch.stack([self._bond_sum(s), s.sum(-1)], dim=1)

    @property
    def J(self) -> torch.Tensor:
        """Dense coupling matrix coupling * A [n, n] (A the adjacency of the lattice)."""
        n = self.n_sites
        A = torch.zeros(n, n + 1, dtype=self.coupling.dtype, device=self.coupling.device)
        A.scatter_(1, self.neighbours, 1.0)
        return self.coupling * A[:, :n]

    @property
    def h(self) -> torch.Tensor:
        """Field vector field * 1 [n]."""
        return self.field * torch.ones(self.n_sites, dtype=self.field.dtype, device=self.field.device)

    def to_ising(self) -> Ising:
        """The same model as a general :class:`Ising` (dense J, spins "pm1")."""
        return Ising(self.J.detach(), self.h.detach(), spins="pm1")

    # -- energy ---------------------------------------------------------------------------------
    def _grid(self, s: torch.Tensor) -> torch.Tensor:
        return s.reshape(s.shape[0], self.side, self.side)

    def _bond_sum(self, s: torch.Tensor) -> torch.Tensor:
        g = self._grid(s)
        if self.periodic:
            return (g * torch.roll(g, -1, 2)).sum((1, 2)) + (g * torch.roll(g, -1, 1)).sum((1, 2))
        return (g[:, :, :-1] * g[:, :, 1:]).sum((1, 2)) + (g[:, :-1, :] * g[:, 1:, :]).sum((1, 2))

    def neighbour_sum(self, s: torch.Tensor) -> torch.Tensor:
        """sum_{j ~ i} s_j for every site, [batch, n] (rolls on the torus, zero padding if open)."""
        g = self._grid(s)
        if self.periodic:
            out = torch.roll(g, 1, 1) + torch.roll(g, -1, 1) + torch.roll(g, 1, 2) + torch.roll(g, -1, 2)
        else:
            out = (
                F.pad(g[:, :-1, :], (0, 0, 1, 0))
                + F.pad(g[:, 1:, :], (0, 0, 0, 1))
                + F.pad(g[:, :, :-1], (1, 0))
                + F.pad(g[:, :, 1:], (0, 1))
            )
        return out.reshape(s.shape[0], -1)

    #: Spin convention (always s = 2x - 1 for the lattice).
    spins = "pm1"

    def local_field(self, s: torch.Tensor) -> torch.Tensor:
        """Local fields coupling * sum_{j~i} s_j + field of spins ``s`` [batch, n];
        delta_i = 2 s_i * local_field_i(s)."""
        loc = self.coupling * self.neighbour_sum(s)
        if self.learnable or float(self.field) != 0.0:
            loc = loc + self.field
        return loc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """U(x) = -coupling sum_<ij> s_i s_j - field sum_i s_i, shape [batch]."""
        _check_shape(x, self.n_sites)
        s = to_spins(x)
        return -self.coupling * self._bond_sum(s) - self.field * s.sum(-1)

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Analytic (U, grad_x U) of the relaxation: grad = -2 (coupling * nbr_sum + field)."""
        _check_shape(x, self.n_sites)
        with torch.no_grad():
            s = to_spins(x)
            local = self.coupling * self.neighbour_sum(s) + self.field
            u = -0.5 * (s * (local + self.field)).sum(-1)
            return u, -2.0 * local

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """U(flip_i x) - U(x) = 2 s_i (coupling * sum_{j~i} s_j + field), shape [batch, n]."""
        _check_shape(x, self.n_sites)
        s = to_spins(x)
        return 2.0 * s * (self.coupling * self.neighbour_sum(s) + self.field)

    def site_delta(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """U(flip_{idx_b} x_b) - U(x_b) for one site per row, shape [batch] (O(1) per row)."""
        _check_shape(x, self.n_sites)
        rows = torch.arange(x.shape[0], device=x.device)
        s = to_spins(x)
        s_pad = F.pad(s, (0, 1))  # column n = 0: the missing neighbour of open boundaries
        nb = s_pad[rows.unsqueeze(1), self.neighbours[idx]].sum(-1)
        return 2.0 * s[rows, idx] * (self.coupling * nb + self.field)

    def extra_repr(self) -> str:
        return (
            f"side={self.side}, coupling={float(self.coupling.detach()):.4g}, field={float(self.field.detach()):.4g}, "
            f"periodic={self.periodic}, learnable={self.learnable}"
        )


@ENERGIES.register("ising")
def learnable_ising(dim: int, spins: str = "pm1") -> Ising:
    """A learnable fully connected :class:`Ising` model on ``dim`` sites, started at J = 0, h = 0 (for the CLI and
    :class:`ebmlab.EnergyModel`: ``energy="ising"``)."""
    dim = check_int("dim", dim)
    return Ising(torch.zeros(dim, dim), torch.zeros(dim), spins=spins, learnable=True)


learnable_ising.discrete = True  # read by the CLI before the energy is built
