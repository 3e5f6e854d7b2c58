r"""Which sampler? Short adapted pilot runs of every applicable sampler, ranked by ESS per gradient evaluation.

For a continuous energy the candidates are the Metropolis-adjusted samplers whose step size ebmlab adapts — MALA
(Roberts & Tweedie 1996), HMC (Duane et al. 1987; Neal 2011) with a few leapfrog lengths, and random-walk
Metropolis — so every candidate targets exp(−U) exactly and the comparison is between valid kernels. Each pilot
runs through :func:`ebmlab.samplers.sample` from the same ``x0``, with per-chain dual-averaging adaptation during
its first half and the same budget of energy-and-gradient evaluations per chain. The score of a pilot is

.. math:: \text{ESS per gradient} = \min_i \text{ESS}_{\text{bulk}, i} \,/\, n_{\text{grad}},

the smallest bulk-ESS over coordinates (Vehtari et al. 2021) of the post-adaptation draws of all chains, divided by
the gradient evaluations all chains spent on them (one per chain per MALA / RWM step, L per HMC step). With ``groups = k`` the chains form k consecutive blocks that
target different distributions (e.g. the posteriors of k observations): ESS and R̂ are computed per block and the
worst block counts. Pilots with stuck chains (acceptance below 5 %), non-finite draws or R̂ above 1.1 are ranked
after the healthy ones, whatever their ESS.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from .._core.errors import ConfigError, DataError, SamplingWarning
from .._core.validation import check_int

#: candidate (name, constructor kwargs) for continuous energies
CANDIDATES = (("mala", {}), ("hmc", {"n_leapfrog": 5}), ("hmc", {"n_leapfrog": 10}), ("rwm", {}))
RHAT_HEALTHY = 1.1


@dataclass
class PilotResult:
    """One pilot: ``sampler`` (label), ``ess_per_grad`` (the score), ``ess_min`` (all chains), ``rhat_max``,
    ``stuck_chains``, ``acceptance_rate``, ``step_size`` (median adapted), ``n_grad_evals`` (per chain, sampling phase),
    ``healthy``."""

    sampler: str
    ess_per_grad: float
    ess_min: float
    rhat_max: float
    stuck_chains: int
    acceptance_rate: float
    step_size: float
    n_grad_evals: int
    healthy: bool
    kwargs: dict


@dataclass
class Advice:
    """Pilots ranked best first; :attr:`best` is a :class:`~ebmlab.samplers.base.Sampler` built like the winner."""

    ranking: List[PilotResult]

    @property
    def best(self):
        from .base import build

        top = self.ranking[0]
        return build(top.kwargs["name"], **{k: v for k, v in top.kwargs.items() if k != "name"})

    def table(self) -> str:
        rows = ["| sampler | ESS / grad | min ESS | max R-hat | stuck | acceptance | step size |", "|---|---|---|---|---|---|---|"]
        for p in self.ranking:
            rows.append(f"| {p.sampler} | {p.ess_per_grad:.4f} | {p.ess_min:.0f} | {p.rhat_max:.3f} | {p.stuck_chains} | "
                        f"{p.acceptance_rate:.2f} | {p.step_size:.3g} |")
        return "\n".join(rows)


def _label(name, kwargs):
    return name + "".join(f"({k}={v})" for k, v in kwargs.items())


def advise(energy, x0: torch.Tensor, budget: int = 20_000, *, candidates: Optional[Sequence] = None, groups: int = 1,
           generator: Optional[torch.Generator] = None) -> Advice:
    """Pilot runs of every applicable sampler on ``energy`` from ``x0`` [chains, d] (module docstring).

    Parameters
    ----------
    budget : int
        Energy-and-gradient evaluations per chain, over all pilots together (split evenly between candidates).
    candidates : sequence of (name, kwargs), optional
        Default :data:`CANDIDATES` (MALA, HMC with 5 and 10 leapfrog steps, RWM).
    groups : int
        Number of consecutive blocks of chains with different targets (chains must divide evenly).
    generator : torch.Generator, optional

    Returns
    -------
    Advice
    """
    from ..metrics.mcmc_diagnostics import ess_bulk, rhat
    from .base import build
    from .driver import sample

    if getattr(energy, "discrete", False):
        raise ConfigError("advise compares continuous samplers; this energy is discrete (use gibbs / gwg)")
    if not isinstance(x0, torch.Tensor) or x0.ndim != 2:
        raise DataError(f"x0 must be a Tensor [chains, d], got {getattr(x0, 'shape', x0)!r}")
    budget = check_int("budget", budget, minimum=100)
    groups = check_int("groups", groups, minimum=1)
    chains = x0.shape[0]
    if chains % groups or chains // groups < 2:
        raise ConfigError(f"x0 has {chains} chains, which must split into groups={groups} blocks of at least 2")
    candidates = CANDIDATES if candidates is None else tuple(candidates)
    per = budget // len(candidates)
    results = []
    for name, kwargs in candidates:
        sampler = build(name, **kwargs)
        cost = int(getattr(sampler, "n_leapfrog", 1))
        steps = max(16, per // cost)
        burn_in = steps // 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            draws, info = sample(energy, sampler, x0, steps - burn_in, burn_in=burn_in, generator=generator,
                                 adapt="per_chain", warn=False)
        n_grad = (steps - burn_in) * cost
        finite = bool(torch.isfinite(draws).all())
        if finite:
            blocks = draws.reshape(draws.shape[0], groups, chains // groups, -1)
            e = min(float(ess_bulk(blocks[:, j]).min()) for j in range(groups))
            r = max(float(rhat(blocks[:, j]).max()) for j in range(groups))
            e = e * groups          # ESS of all chains together, worst block scaled to the whole batch
        else:
            e, r = 0.0, math.inf
        healthy = finite and info.stuck_chains == 0 and r <= RHAT_HEALTHY
        results.append(PilotResult(sampler=_label(name, kwargs), ess_per_grad=e / (n_grad * chains) if finite else 0.0, ess_min=e,
                                   rhat_max=r, stuck_chains=info.stuck_chains, acceptance_rate=info.acceptance_rate,
                                   step_size=info.step_size, n_grad_evals=n_grad, healthy=healthy,
                                   kwargs={"name": name, **kwargs}))
    results.sort(key=lambda p: (not p.healthy, -p.ess_per_grad))
    if not results[0].healthy:
        warnings.warn("advise: no pilot run was healthy (stuck chains, non-finite draws or R-hat > 1.1); the ranking "
                      "is by ESS only — increase the budget or check the energy", SamplingWarning, stacklevel=2)
    return Advice(results)
