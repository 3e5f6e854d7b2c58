r"""The latent posterior of a generalized EBM and how it is sampled (Arbel, Zhou & Gretton 2021, "Generalized
Energy Based Models", ICLR, Sec. 4).

For X = B(Z), Z ~ η = N(0, I), the model Q_{B,E} ∝ exp(−E) B#η is sampled exactly by X = B(Z) with Z drawn from

.. math::  \nu_\beta(z) \propto \eta(z)\, \exp(-\beta\, E(B(z))), \qquad U_\beta(z) = \tfrac12 \lVert z\rVert^2 + \beta\, E(B(z)),

at β = 1 (β = 1 / temperature; β > 1 sharpens the model toward its modes, as the paper's β = 100 samples).
:class:`LatentPosterior` is that U_β as an :class:`~ebmlab.energies.Energy`, so every gradient-based ebmlab sampler
(ULA, MALA, HMC, kinetic Langevin) runs on it unchanged through the chain runner :func:`ebmlab.samplers.sample`.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import nn

from .._core.errors import ConfigError, TrainingDivergedError
from .._core.validation import check_int, check_positive
from ..energies.base import Energy
from ..samplers.base import SAMPLERS, Sampler
from ..metrics.mcmc_diagnostics import importance_ess

#: the samplers offered for the latent posterior (gradient-based, continuous)
LATENT_SAMPLERS = ("mala", "ula", "hmc", "kinetic_langevin")


class LatentPosterior(Energy):
    """U_β(z) = ½‖z‖² + β E(B(z)) (module docstring), β = 1 / ``temperature``."""

    def __init__(self, energy: nn.Module, base: nn.Module, temperature: float = 1.0):
        super().__init__()
        self.energy = energy
        self.base = base
        self.temperature = check_temperature(temperature)
        self.beta = 1.0 / self.temperature

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 0.5 * z.reshape(z.shape[0], -1).pow(2).sum(1) + self.beta * self.energy(self.base(z))


def check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0 \
            or temperature != temperature or temperature == float("inf"):
        raise ConfigError(f"temperature must be a finite number > 0 (beta = 1/temperature), got {temperature!r}")
    return float(temperature)


def resolve_latent_sampler(sampler: Union[str, Sampler]) -> Sampler:
    """A latent sampler by name (one of :data:`LATENT_SAMPLERS`, built with its defaults) or a gradient-based
    :class:`Sampler` object."""
    if isinstance(sampler, str):
        if sampler not in LATENT_SAMPLERS:
            raise ConfigError(f"unknown latent sampler {sampler!r}; valid samplers are: {', '.join(LATENT_SAMPLERS)}")
        return SAMPLERS.build(sampler)
    if not isinstance(sampler, Sampler) or getattr(sampler, "discrete", False) or not sampler.uses_grad:
        raise ConfigError(f"sampler must be one of {', '.join(LATENT_SAMPLERS)} or a gradient-based Sampler "
                          f"object, got {sampler!r}")
    return sampler


def importance_resample(energy: nn.Module, base: nn.Module, n: int, *, candidates: int, latent_dim: int,
                        temperature: float = 1.0, generator: Optional[torch.Generator] = None,
                        dtype: Optional[torch.dtype] = None, device=None,
                        batch: int = 8192) -> Tuple[torch.Tensor, torch.Tensor, float]:
    r"""Sampling-importance-resampling (Rubin 1988) from ν_β with η as the proposal.

    Draw ``candidates`` = M latents z_j ~ η = N(0, I_k), weigh them by w_j ∝ exp(−β E(B(z_j))) (the density ratio
    ν_β / η up to a constant), and resample ``n`` of them with replacement with probabilities w_j / Σ w.  As
    M → ∞ the draws are exact draws of ν_β (the resampled law converges to ν_β in total variation, error
    O(1/M) for bounded weights), so B(z) is an asymptotically exact sample of Q_{B,E} at β = 1.  Its quality
    is measured by the effective sample size ESS = (Σ w)² / Σ w² ∈ [1, M]: with ESS ≫ n the n draws are nearly
    independent, with ESS ≲ n they repeat a few candidates (β ≫ 1 or an energy far from flat on B#η).

    Returns ``(B(z), z, ESS)`` with z Tensor[n, k].  The candidates are evaluated in blocks of ``batch``.  NaN
    semantics: an energy that is NaN or −∞ at any candidate raises TrainingDivergedError (it would hide a broken
    model); +∞ gives that candidate weight 0.
    """
    n = check_int("n", n)
    m = check_int("candidates", candidates)
    beta = 1.0 / check_temperature(temperature)
    zs, logw = [], []
    with torch.no_grad():
        for start in range(0, m, int(batch)):
            z = torch.randn((min(int(batch), m - start), int(latent_dim)), generator=generator, dtype=dtype,
                            device=device)
            zs.append(z)
            logw.append(-beta * energy(base(z)).reshape(-1))
        z, logw = torch.cat(zs), torch.cat(logw)
        bad = torch.isnan(logw) | (logw == float("inf"))
        if bool(bad.any()):
            raise TrainingDivergedError(f"importance resampling: the energy is NaN or -inf at {int(bad.sum())} of "
                                        f"the {m} candidates B(z), z ~ N(0, I); the model is not usable")
        if not bool(torch.isfinite(logw).any()):
            raise TrainingDivergedError("importance resampling: the energy is +inf at all of the "
                                        f"{m} candidates B(z), z ~ N(0, I)")
        w = torch.softmax(logw.to(torch.float64), 0)
        ess = importance_ess(logw)
        idx = torch.multinomial(w, n, replacement=True, generator=generator)
        z = z[idx]
        x = base(z)
    return x, z, ess


def sample_latent_posterior(energy: nn.Module, base: nn.Module, z0: torch.Tensor, *,
                            sampler: Union[str, Sampler] = "mala", temperature: float = 1.0, steps: int = 200,
                            step_size: Optional[float] = None,
                            generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor, object]:
    """Run ``steps`` steps of ``sampler`` on ν_β from ``z0`` (Tensor[chains, latent_dim]) with the chain runner and
    return ``(B(z), z, SampleInfo)`` for the final states.

    The first ``steps // 2`` steps are burn-in; adaptive samplers (MALA, HMC) tune their step size there by dual
    averaging, one step size per chain (``adapt="per_chain"``: chains started at z ~ η land in modes of ν_β of
    very different curvature, where one global step size leaves some chains stuck).  Unadjusted samplers (ULA,
    kinetic Langevin) use ``step_size``, else the step size of a given Sampler object, else (given by name) their
    default step size times min(1, temperature) (the curvature of U_β grows like β).  The remaining steps run
    the fixed kernel; the acceptance and stuck-chain statistics of ``SampleInfo`` are taken over them.
    """
    from ..samplers import sample as run_chains

    s = resolve_latent_sampler(sampler)
    t = check_temperature(temperature)
    steps = check_int("steps", steps)
    if step_size is not None:
        step_size = check_positive("step_size", step_size)
    elif not s.adaptive and isinstance(sampler, str):
        step_size = s.step_size * min(1.0, t)
    target = LatentPosterior(energy, base, t)
    burn_in = steps // 2
    adapt = "per_chain" if (s.adaptive and getattr(s, "per_chain_step_size", False) and burn_in > 0) else None
    z, info = run_chains(target, s, z0, steps=steps - burn_in, burn_in=burn_in, generator=generator, keep="last",
                         step_size=step_size, adapt=adapt)
    with torch.no_grad():
        x = base(z)
    return x, z, info
