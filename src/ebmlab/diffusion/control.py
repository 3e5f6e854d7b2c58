r"""The time-conditioned control network u_φ(x, t): a Fourier-feature MLP (Zhang & Chen 2022, "Path integral
sampler: a stochastic control approach for sampling", whose "Fourier MLP" embeds t by sinusoids).

    u_φ(x, t) = -σ(t) x + NN_φ([x, e(t)]) + g_φ(e(t)) ⊙ σ(t) clip(-∇U(x)),
    or, with ``score_interpolation``,
    u_φ(x, t) = σ(t) [(1 - t)(-x) + t clip(-∇U(x))] + NN_φ([x, e(t)]) + g_φ(e(t)) ⊙ σ(t) clip(-∇U(x)),
    e(t) = (sin 2π f_j t, cos 2π f_j t)_{j=1..m}, f_j = j,

where σ(t) = √β̄ at that step and clip bounds each coordinate of the target score to [-score_clip, score_clip].
The first term is the control of the stationary N(0, I) chain (the prior's score times σ), so at initialisation
(last layers of NN and g set to zero) the generative chain leaves N(0, I) invariant; the last term is the
"score-informed" part of Zhang & Chen (one extra ∇U evaluation per SDE step, switched off by
``use_energy_grad=False``).  The interpolated form starts training from the linear interpolation of the prior's
and the target's scores (the "lerp" control of Richter & Berner 2024's reference code, whose score gate starts at
one), which matters for targets such as Neal's funnel whose mass lies far from N(0, I).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from .._core.errors import ConfigError
from .._core.random import init_parameters_
from .._core.validation import check_int, check_positive
from .sde import VPSchedule


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class FourierControl(nn.Module):
    """u_φ(x, t) of the module docstring; called as ``control(x, k, grad_u)`` by :func:`~ebmlab.diffusion.sde.simulate`."""

    def __init__(self, dim: int, schedule: VPSchedule, hidden: Sequence[int] = (64, 64), n_frequencies: int = 8,
                 use_energy_grad: bool = True, score_clip: float = 100.0, score_interpolation: bool = False,
                 generator: Optional[torch.Generator] = None):
        """Weights are drawn from ``generator`` (PyTorch's default law, :func:`init_parameters_`); the global RNG is
        left untouched.  ``generator=None`` uses a generator seeded with 0.  ``score_interpolation=True`` (needs
        ``use_energy_grad``) replaces -σ x by the interpolation σ[(1 - t)(-x) + t clip(-∇U)] (module docstring)."""
        super().__init__()
        self.dim = check_int("dim", dim)
        self.n_frequencies = check_int("n_frequencies", n_frequencies)
        if isinstance(hidden, int) or not all(isinstance(h, int) and h >= 1 for h in hidden) or not hidden:
            raise ConfigError(f"hidden must be a non-empty list of positive integers, got {hidden!r}")
        self.hidden = [int(h) for h in hidden]
        if not isinstance(use_energy_grad, bool):
            raise ConfigError(f"use_energy_grad must be true or false, got {use_energy_grad!r}")
        self.uses_energy_grad = use_energy_grad
        self.score_clip = check_positive("score_clip", score_clip)
        if not isinstance(score_interpolation, bool):
            raise ConfigError(f"score_interpolation must be true or false, got {score_interpolation!r}")
        if score_interpolation and not use_energy_grad:
            raise ConfigError("score_interpolation=True needs use_energy_grad=True (it interpolates towards -∇U)")
        self.score_interpolation = score_interpolation
        self.schedule = schedule
        emb = 2 * self.n_frequencies
        with torch.random.fork_rng(devices=[]):
            self.net = _mlp([dim + emb, *self.hidden, dim])
            self.gate = _mlp([emb, self.hidden[0], dim]) if use_energy_grad else None
        init_parameters_(self, generator if generator is not None else torch.Generator().manual_seed(0))
        with torch.no_grad():
            for seq in (self.net, self.gate):
                if seq is not None:
                    seq[-1].weight.zero_()
                    seq[-1].bias.zero_()
        self.register_buffer("freqs", 2.0 * math.pi * torch.arange(1, self.n_frequencies + 1, dtype=torch.float32))

    def embed(self, k, dtype, device) -> torch.Tensor:
        """e(t_k): [2m] for an int step ``k``, [n, 2m] for a LongTensor of steps."""
        t = self.schedule.t[k]
        t = t.to(dtype=dtype, device=device) if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=dtype)
        f = t[..., None] * self.freqs.to(dtype=dtype, device=device)
        return torch.cat([torch.sin(f), torch.cos(f)], -1)

    def forward(self, x: torch.Tensor, k, grad_u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """u(x, t_k); ``k`` is one step index (int) or one per row (LongTensor [n], as denoising score matching
        draws them)."""
        if isinstance(k, torch.Tensor) and k.ndim == 1:
            sig = self.schedule.sigma[k].to(dtype=x.dtype, device=x.device)[:, None]
            t = self.schedule.t[k].to(dtype=x.dtype, device=x.device)[:, None]
            e = self.embed(k, x.dtype, x.device)
        else:
            sig = float(self.schedule.sigma[int(k)])
            t = float(self.schedule.t[int(k)])
            e = self.embed(int(k), x.dtype, x.device).expand(x.shape[0], -1)
        h = torch.cat([x, e], dim=1)
        lam = t if self.score_interpolation else 0.0
        u = -(1.0 - lam) * sig * x + self.net(h)
        if self.gate is not None:
            if grad_u is None:
                raise ConfigError("FourierControl(use_energy_grad=True) needs grad_u = ∇U(x)")
            score = (-grad_u).clamp(-self.score_clip, self.score_clip)
            u = u + (lam + self.gate(e)) * sig * score
        return u
