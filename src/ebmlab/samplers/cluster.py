"""Cluster samplers for the ferromagnetic square-lattice Ising model: Swendsen–Wang and Wolff.

Both rest on the Fortuin–Kasteleyn / Edwards–Sokal coupling of spins s and bonds b: with
K = coupling >= 0 and p = 1 - exp(-2K),

    P(s, b) ∝ prod_<ij> [(1 - p) 1(b_ij = 0) + p 1(b_ij = 1) 1(s_i = s_j)] prod_i exp(field s_i),

whose spin marginal is the Ising law exp(K sum_<ij> s_i s_j + field sum_i s_i) / Z.  Given the
spins, each bond between ALIGNED neighbours is open with probability p, independently.  Given
the bonds, the connected clusters carry one spin each, chosen independently with

    P(cluster spin = +1) = sigmoid(2 field |C|)          (1/2 without field).

Swendsen–Wang alternates these two exact conditional draws (so the field is handled exactly,
no correction needed).  Wolff grows the single cluster of a uniformly chosen seed site and flips
it; with a field the flip is a Metropolis–Hastings move accepted with probability
min(1, exp(-2 field sum_{i in C} s_i)) (the bond part of the proposal ratio cancels the
coupling part of the target ratio).

Near the critical coupling (ln(1 + sqrt 2)/2 = 0.4407) these decorrelate in a few steps where
single-site Gibbs needs O(L^2.17) sweeps.

References
----------
R. H. Swendsen and J.-S. Wang (1987), Nonuniversal critical dynamics in Monte Carlo
simulations. Phys. Rev. Lett. 58, 86.  U. Wolff (1989), Collective Monte Carlo updating for
spin systems. Phys. Rev. Lett. 62, 361.  R. G. Edwards and A. D. Sokal (1988), Generalization
of the Fortuin-Kasteleyn-Swendsen-Wang representation and Monte Carlo algorithm. Phys. Rev. D 38.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .._core.errors import ConfigError
from ..energies.binary import check_discrete_state
from .accept import metropolis_hastings, select
from .base import SAMPLERS, Info, Sampler, SamplerState

__all__ = ["SwendsenWang", "Wolff"]


def _check_lattice(energy, who: str) -> Tuple[float, float]:
    if not (hasattr(energy, "side") and hasattr(energy, "periodic") and hasattr(energy, "coupling")):
        raise ConfigError(f"{who} needs an IsingLattice energy; got {type(energy).__name__} (use Gibbs or GWG)")
    K = float(torch.as_tensor(energy.coupling).detach())
    if K < 0:
        raise ConfigError(f"{who} needs a ferromagnetic coupling >= 0, got coupling={K}; use CheckerboardGibbs")
    return K, float(torch.as_tensor(energy.field).detach())


def _bond_masks(side: int, periodic: bool, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Which right / down bonds exist: all on the torus, not the last column / row if open."""
    right = torch.ones(side, side, dtype=torch.bool, device=device)
    down = torch.ones(side, side, dtype=torch.bool, device=device)
    if not periodic:
        right[:, -1] = False
        down[-1, :] = False
    return right, down


@SAMPLERS.register("swendsen_wang")
class SwendsenWang(Sampler):
    r"""Swendsen–Wang cluster sampler for :class:`~ebmlab.energies.IsingLattice` (coupling >= 0).

    One step: open each bond between aligned neighbours with probability 1 - exp(-2 coupling),
    label the connected clusters (``scipy.sparse.csgraph.connected_components`` on the
    block-diagonal graph of all chains), then give each cluster spin +1 with probability
    sigmoid(2 field |C|) (1/2 at zero field).  Both draws are exact conditionals of the
    Edwards–Sokal joint law, so the kernel leaves the Ising law invariant for any field.
    Open and periodic boundaries.  ``Info.n_grad_evals`` = 1 (the energy of the new state).
    """

    name = "swendsen_wang"
    uses_grad = False
    discrete = True

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        _check_lattice(energy, "SwendsenWang")
        x0 = check_discrete_state(energy, x0, "SwendsenWang")
        with torch.no_grad():
            u = energy(x0).detach()
        return SamplerState(x=x0, energy=u, grad=None, step_size=0.0, extra={})

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        K, field = _check_lattice(energy, "SwendsenWang")
        x = state.x
        B, n = x.shape
        L = energy.side
        p = -math.expm1(-2.0 * K)
        with torch.no_grad():
            g = x.reshape(B, L, L)
            right_ok, down_ok = _bond_masks(L, energy.periodic, x.device)
            r = torch.rand((2, B, L, L), device=x.device, generator=generator)
            open_r = (g == torch.roll(g, -1, 2)) & (r[0] < p) & right_ok
            open_d = (g == torch.roll(g, -1, 1)) & (r[1] < p) & down_ok
            ids = torch.arange(B * n, device=x.device).reshape(B, L, L)
            src = torch.cat([ids[open_r], ids[open_d]])
            dst = torch.cat([torch.roll(ids, -1, 2)[open_r], torch.roll(ids, -1, 1)[open_d]])
            src_np = src.cpu().numpy()
            dst_np = dst.cpu().numpy()
            graph = coo_matrix((np.ones(src_np.shape[0], dtype=np.int8), (src_np, dst_np)), shape=(B * n, B * n))
            n_clusters, labels_np = connected_components(graph, directed=False)
            labels = torch.from_numpy(labels_np.astype(np.int64)).to(x.device)
            v = torch.rand(B * n, device=x.device, generator=generator)
            if field == 0.0:
                up = v[:n_clusters] < 0.5
            else:
                size = torch.bincount(labels, minlength=n_clusters).to(torch.float64)
                up = v[:n_clusters].to(torch.float64) < torch.sigmoid(2.0 * field * size)
            x_new = up[labels].to(x.dtype).reshape(B, n)
            u_new = energy(x_new).detach()
        moved = (x_new != x).any(-1)
        info = Info(
            acceptance_rate=torch.ones(B, dtype=x.dtype, device=x.device),
            accepted=moved,
            divergent=~torch.isfinite(u_new),
            step_size=0.0,
            n_grad_evals=1,
        )
        return state.replace(x=x_new, energy=u_new), info


@SAMPLERS.register("wolff")
class Wolff(Sampler):
    r"""Wolff single-cluster sampler for :class:`~ebmlab.energies.IsingLattice` (coupling >= 0).

    One step per chain: pick a seed site uniformly, grow its Fortuin–Kasteleyn cluster (each
    bond from a newly added site to an aligned neighbour outside the cluster is tested once,
    open with probability 1 - exp(-2 coupling)), then flip the cluster.  The growth is a
    breadth-first search vectorised over chains: one iteration per layer of the cluster.  With a
    field the flip is accepted with probability min(1, exp(-2 field sum_{i in C} s_i))
    (Metropolis–Hastings correction); at zero field it is always accepted.
    The cluster sizes of the last step are in ``state.extra["cluster_size"]``.
    """

    name = "wolff"
    uses_grad = False
    discrete = True

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        _check_lattice(energy, "Wolff")
        x0 = check_discrete_state(energy, x0, "Wolff")
        with torch.no_grad():
            u = energy(x0).detach()
        return SamplerState(x=x0, energy=u, grad=None, step_size=0.0, extra={})

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        K, field = _check_lattice(energy, "Wolff")
        x = state.x
        B, n = x.shape
        L = energy.side
        p = -math.expm1(-2.0 * K)
        with torch.no_grad():
            g = x.reshape(B, L, L) > 0.5
            seed = torch.randint(n, (B,), device=x.device, generator=generator)
            rows = torch.arange(B, device=x.device)
            cluster = torch.zeros(B, n, dtype=torch.bool, device=x.device)
            cluster[rows, seed] = True
            cluster = cluster.reshape(B, L, L)
            sigma = g.reshape(B, n)[rows, seed].reshape(B, 1, 1)
            aligned = g == sigma
            right_ok, down_ok = _bond_masks(L, energy.periodic, x.device)
            # (shift, dim, mask of target sites whose bond in that direction exists)
            moves = (
                (1, 2, torch.roll(right_ok, 1, 1)),   # from the left neighbour
                (-1, 2, right_ok),                     # from the right neighbour
                (1, 1, torch.roll(down_ok, 1, 0)),    # from the upper neighbour
                (-1, 1, down_ok),                      # from the lower neighbour
            )
            frontier = cluster
            while bool(frontier.any()):
                r = torch.rand((4, B, L, L), device=x.device, generator=generator)
                grow = torch.zeros_like(cluster)
                for k, (shift, dim, ok) in enumerate(moves):
                    grow |= torch.roll(frontier, shift, dim) & ok & (r[k] < p)
                frontier = grow & aligned & ~cluster
                cluster = cluster | frontier
            cluster = cluster.reshape(B, n)
            size = cluster.sum(-1)
            if field == 0.0:
                log_ratio = torch.zeros(B, dtype=x.dtype, device=x.device)  # always accepted
            else:
                s_sum = (2.0 * sigma.reshape(B).to(torch.float64) - 1.0) * size.to(torch.float64)
                log_ratio = (-2.0 * field * s_sum).to(x.dtype)
            accept, acc_prob = metropolis_hastings(log_ratio, generator)
            x_new = select(accept, torch.where(cluster, 1.0 - x, x), x)
            u_new = energy(x_new).detach()
        info = Info(
            acceptance_rate=acc_prob,
            accepted=accept,
            divergent=~torch.isfinite(u_new),
            step_size=0.0,
            n_grad_evals=1,
        )
        return state.replace(x=x_new, energy=u_new, extra={"cluster_size": size}), info
