r"""The tie / no-tie (TNT) Metropolis–Hastings sampler for discrete energies on {0,1}^D.

statnet's default ERGM proposal (Morris, Handcock & Hunter 2008), written for any discrete energy: a
"tie" is a site with x_d = 1 (for an :class:`~ebmlab.energies.ERGMEnergy`, a present edge). With
E = sum_d x_d ties among D sites, one step per chain

- with probability 1/2, if E > 0, proposes to flip a uniformly chosen tie (1 -> 0);
- otherwise flips a uniformly chosen site (either way);

so q(add) = 1/D if E = 0 else 1/(2D), and q(remove) = 1/(2E) + 1/(2D). The Hastings ratio
q(x' -> x) / q(x -> x') is (D + 1)/2 for an addition to the empty state, 1 + D/(E + 1) for other
additions, 2/(D + 1) for removing the last tie and E/(D + E) for other removals (statnet's ``MH_TNT``).
On sparse graphs, where a uniform dyad is almost always a non-tie, this proposes removals far more often
than a uniform flip and so mixes faster. The accept/reject decision is
:func:`ebmlab.samplers.accept.metropolis_hastings` with

    log_ratio = -(U(x') - U(x)) + log q(x' -> x) - log q(x -> x').

References
----------
M. Morris, M. S. Handcock and D. R. Hunter (2008), Specification of exponential-family random graph
models: terms and computational aspects. J. Stat. Softw. 24(4).
W. K. Hastings (1970), Monte Carlo sampling methods using Markov chains and their applications.
Biometrika 57.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..energies.binary import check_discrete_state
from .accept import metropolis_hastings
from .base import SAMPLERS, Info, Sampler, SamplerState

__all__ = ["TieNoTie", "tnt_log_q_ratios"]


def tnt_log_q_ratios(n_sites: int, *, dtype: torch.dtype = torch.float64, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """log q(x' -> x) - log q(x -> x') of the TNT proposal as a function of the current number of ties E.

    Returns ``(log_q_add, log_q_remove)``, each of shape [n_sites + 1] indexed by E: the log ratio of a proposal
    that adds a tie (valid for E < D) and of one that removes a tie (valid for E >= 1; entry 0 is -inf).
    """
    D = n_sites
    E = torch.arange(D + 1, dtype=torch.float64)
    log_add = torch.log1p(D / (E + 1.0))
    log_add[0] = math.log(0.5 * D + 0.5)
    log_remove = torch.log(E / (D + E))  # E = 0: log 0 = -inf (never used: no tie to remove)
    if D >= 1:
        log_remove[1] = -math.log(0.5 * D + 0.5)
    return log_add.to(dtype=dtype, device=device), log_remove.to(dtype=dtype, device=device)


@SAMPLERS.register("tnt")
class TieNoTie(Sampler):
    r"""Tie / no-tie Metropolis–Hastings (see the module docstring), batched over chains.

    One ``step`` is **one proposal per chain** (statnet counts ``MCMC.interval`` in proposals), so a chain
    runner's ``thin`` (and :meth:`ebmlab.ergm.ERGM.simulate`'s) is statnet's ``MCMC.interval``. The energy change of the proposed flip is
    ``energy.site_delta(x, idx)`` when the energy has it (ERGM, Ising: O(n) per chain), else
    ``energy(x') - U(x)`` with the cached U (any discrete energy). ``Info.n_grad_evals`` = 1 counts that call.

    The proposal draws three uniforms and one integer per chain from ``generator`` (branch, tie, site) and the
    accept step one more.
    """

    name = "tnt"
    uses_grad = False
    discrete = True

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        x0 = check_discrete_state(energy, x0, "TieNoTie")
        with torch.no_grad():
            u = energy(x0).detach()
        log_add, log_remove = tnt_log_q_ratios(x0.shape[1], dtype=x0.dtype, device=x0.device)
        return SamplerState(x=x0, energy=u, grad=None, step_size=0.0,
                            extra={"log_q_add": log_add, "log_q_remove": log_remove})

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        x, u = state.x, state.energy
        B, D = x.shape
        with torch.no_grad():
            rows = torch.arange(B, device=x.device)
            ties = x.sum(1)
            n_ties = ties.round().to(torch.int64)
            r = torch.rand((2, B), dtype=torch.float64, device=x.device, generator=generator)
            site = torch.randint(D, (B,), device=x.device, generator=generator)
            # the k-th tie (k uniform in 0..E-1): first position where the running tie count reaches k + 1
            k = torch.minimum((r[1] * n_ties).to(torch.int64), (n_ties - 1).clamp(min=0))
            tie = torch.searchsorted(x.cumsum(1), (k + 1).to(x.dtype).unsqueeze(1)).squeeze(1).clamp_(max=D - 1)
            idx = torch.where((r[0] < 0.5) & (n_ties > 0), tie, site)
            xi = x[rows, idx]
            adding = xi < 0.5
            log_q = torch.where(adding, state.extra["log_q_add"][n_ties], state.extra["log_q_remove"][n_ties])
            if hasattr(energy, "site_delta"):
                d = energy.site_delta(x, idx)
            else:
                xf = x.clone()
                xf[rows, idx] = 1.0 - xi
                d = energy(xf) - u
            d = d.detach().to(u.dtype)
            accepted, rate = metropolis_hastings(log_q.to(u.dtype) - d, generator)
            x_new = x.clone()
            x_new[rows, idx] = torch.where(accepted, 1.0 - xi, xi)
            u_new = u + torch.where(accepted, d, torch.zeros_like(d))
        info = Info(acceptance_rate=rate.to(x.dtype), accepted=accepted, divergent=~torch.isfinite(d),
                    step_size=0.0, n_grad_evals=1)
        return state.replace(x=x_new, energy=u_new), info
