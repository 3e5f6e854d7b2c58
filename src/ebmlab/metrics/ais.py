r"""Annealed importance sampling (Neal 2001, "Annealed importance sampling", Statistics and Computing 11) of log Z.

Geometric path from a normalised Gaussian base p₀ = N(0, σ₀² I) to the target exp(-U)/Z:

    U_β(x) = (1 - β) U₀(x) + β U(x),   U₀(x) = |x|²/(2σ₀²) + (d/2) log(2π σ₀²),   0 = β₀ < β₁ < ... < β_J = 1.

Each chain starts at x ~ p₀; for j = 1..J its log weight gains -(β_j - β_{j-1}) (U(x) - U₀(x)) at the current x,
then x moves by ``transitions`` MALA steps that leave exp(-U_{β_j}) invariant (ebmlab's MALA kernel through the
chain runner :func:`ebmlab.samplers.sample`, Metropolis–Hastings in :mod:`ebmlab.samplers.accept`).  Then
E[exp(log w)] = Z, log Ẑ = logsumexp(log w) - log n, with the delta-method standard error
sqrt(mean((w/w̄ - 1)²)/n).  The default schedule is β_j = (j/J)⁴ (dense near the base, where the path changes
fastest for a broad target).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from .._core.errors import ConfigError
from .._core.random import as_generator
from .._core.validation import check_int, check_positive
from ..energies.base import Energy


class _Geometric(Energy):
    """U_β = (1 - β) U₀ + β U with analytic gradient of the Gaussian part."""

    def __init__(self, energy, base_std: float, dim: int):
        super().__init__()
        self.target = energy
        self.base_std = base_std
        self.dim = dim
        self.beta = 0.0
        self.const = 0.5 * dim * math.log(2.0 * math.pi * base_std**2)

    def base(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x * x).sum(-1) / self.base_std**2 + self.const

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.beta) * self.base(x) + self.beta * self.target(x)

    def energy_and_grad(self, x: torch.Tensor):
        u, g = self.target.energy_and_grad(x)
        b = self.beta
        return (1.0 - b) * self.base(x) + b * u, (1.0 - b) * x / self.base_std**2 + b * g


@dataclass(frozen=True)
class AISResult:
    """``log_z`` ± ``standard_error``; ``ess`` (Kish, of the final weights); ``log_weights`` [n] (float64);
    ``samples`` [n, d] (the final states; weighted by ``log_weights`` they estimate target expectations);
    ``energy_evals`` per chain; ``acceptance_rate`` (mean MALA acceptance over temperatures)."""

    log_z: float
    standard_error: float
    ess: float
    log_weights: torch.Tensor
    samples: torch.Tensor
    energy_evals: int
    acceptance_rate: float


def ais_log_z(
    energy,
    dim: int,
    *,
    n_samples: int = 1000,
    n_temperatures: int = 100,
    transitions: int = 1,
    step_size: float = 0.05,
    base_std: float = 1.0,
    betas: Optional[Sequence[float]] = None,
    generator: Union[torch.Generator, int, None] = None,
    dtype: torch.dtype = torch.float64,
) -> AISResult:
    """Estimate log Z of exp(-U) by AIS (module docstring).

    Parameters
    ----------
    energy : Energy
        The target U (with ``energy_and_grad``).
    dim : int
        Dimension of x.
    n_samples : int
        Number of independent AIS chains (importance samples).
    n_temperatures : int
        J, the number of intermediate distributions (ignored when ``betas`` is given).
    transitions : int
        MALA steps per temperature.
    step_size : float
        MALA step size h (fixed: every MALA step with any h leaves its π_β invariant).
    base_std : float
        σ₀ of the Gaussian base.
    betas : sequence of float, optional
        The schedule β₁ < ... < β_J = 1 (β₀ = 0 is implicit); default (j/J)⁴.
    generator : torch.Generator or int, optional
    """
    from ..samplers import sample
    from ..samplers.mala import MALA
    from ..diffusion.sampler import effective_sample_size_from_log_weights, log_z_from_log_weights

    dim = check_int("dim", dim)
    n_samples = check_int("n_samples", n_samples, minimum=2)
    transitions = check_int("transitions", transitions)
    base_std = check_positive("base_std", base_std)
    kernel = MALA(step_size=check_positive("step_size", step_size))
    if betas is None:
        j = check_int("n_temperatures", n_temperatures)
        bs = [(i / j) ** 4 for i in range(1, j + 1)]
    else:
        bs = [float(b) for b in betas]
        if not bs or any(not (0.0 < b <= 1.0) for b in bs) or any(b2 <= b1 for b1, b2 in zip(bs, bs[1:])) \
                or bs[-1] != 1.0:
            raise ConfigError(f"betas must increase strictly in (0, 1] and end at 1, got {list(betas)!r}")
    gen = as_generator(generator)
    path = _Geometric(energy, base_std, dim)
    x = base_std * torch.randn(n_samples, dim, generator=gen, dtype=dtype)
    log_w = torch.zeros(n_samples, dtype=torch.float64)
    prev, evals, acc = 0.0, 0, 0.0
    for b in bs:
        with torch.no_grad():
            log_w -= (b - prev) * (energy(x) - path.base(x)).to(torch.float64)
        evals += 1
        path.beta = b
        x, info = sample(path, kernel, x, transitions, generator=gen, adapt=False, keep="last", warn=False)
        evals += info.n_grad_evals
        acc += info.acceptance_rate
        prev = b
    est, se = log_z_from_log_weights(log_w)
    return AISResult(log_z=est, standard_error=se, ess=effective_sample_size_from_log_weights(log_w),
                     log_weights=log_w, samples=x, energy_evals=evals, acceptance_rate=acc / len(bs))
