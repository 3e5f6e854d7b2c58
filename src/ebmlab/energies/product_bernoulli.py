"""Product-Bernoulli distribution on {0,1}^d: an exactly normalised discrete energy, used as NCE noise."""
from __future__ import annotations

from typing import Optional

import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int, check_probability
from .base import Energy


class ProductBernoulli(Energy):
    r"""Independent bits: p(x) = Π_i p_i^{x_i} (1 - p_i)^{1 - x_i} on x in {0,1}^d.

    As an energy, ``U(x) = -Σ_i x_i logit(p_i)`` with the exact ``log Z = -Σ_i log(1 - p_i)``, so
    ``log_prob(x) = -U(x) - log Z``.  It has :meth:`sample` and :meth:`log_prob`, which makes it a
    valid noise distribution for noise-contrastive estimation on binary data (Gutmann & Hyvärinen
    2012): ``NoiseContrastiveEstimation(noise=BernoulliNoise.from_data(x))`` uses the data-mean
    Bernoulli as noise.  ``BernoulliNoise`` is the same class.

    Parameters
    ----------
    probs : Tensor[d]
        Success probabilities, strictly inside (0, 1).
    """

    discrete = True

    def __init__(self, probs: torch.Tensor):
        super().__init__()
        p = torch.as_tensor(probs)
        if not p.is_floating_point():
            p = p.to(torch.get_default_dtype())
        if p.ndim != 1 or p.numel() == 0:
            raise ConfigError(f"probs must be a non-empty 1-D tensor, got shape {tuple(p.shape)}")
        if not ((p > 0) & (p < 1)).all():
            raise ConfigError("probs must lie strictly inside (0, 1); clamp them (see ProductBernoulli.from_data)")
        self.register_buffer("probs", p.detach().clone())

    @classmethod
    def from_data(cls, data: torch.Tensor, eps: float = 1e-3) -> "ProductBernoulli":
        """The product Bernoulli with the data's bit means, clamped to [eps, 1 - eps]."""
        eps = check_probability("eps", eps, open_low=True, open_high=True)
        x = torch.as_tensor(data)
        if x.ndim != 2 or x.shape[0] < 1:
            raise DataError(f"data must be a 2-D tensor [n, d] of {{0,1}} values, got shape {tuple(x.shape)}")
        x = x.to(torch.get_default_dtype()) if not x.is_floating_point() else x
        return cls(x.mean(0).clamp(eps, 1 - eps))

    @property
    def dim(self) -> int:
        return self.probs.shape[0]

    def logits(self) -> torch.Tensor:
        return torch.log(self.probs) - torch.log1p(-self.probs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        return -(x @ self.logits().to(x.dtype))

    def log_normalizer(self) -> torch.Tensor:
        return -torch.log1p(-self.probs).sum()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = Σ_i x_i log p_i + (1 - x_i) log(1 - p_i)."""
        x = x.reshape(x.shape[0], -1)
        p = self.probs.to(x.dtype)
        return x @ torch.log(p) + (1 - x) @ torch.log1p(-p)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """U(flip_i x) - U(x) = (2 x_i - 1) logit(p_i)."""
        x = x.reshape(x.shape[0], -1)
        return (2 * x - 1) * self.logits().to(x.dtype)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """n independent draws, float tensor [n, d] in {0, 1}."""
        n = check_int("n", n)
        u = torch.rand((n, self.dim), dtype=self.probs.dtype, device=self.probs.device, generator=generator)
        return (u < self.probs).to(self.probs.dtype)


#: Alias: the product Bernoulli used as the noise distribution of NCE on binary data.
BernoulliNoise = ProductBernoulli
