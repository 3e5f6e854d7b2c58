"""Product-Bernoulli distribution on {0,1}^d: an exactly normalised discrete energy, used as NCE noise."""
from __future__ import annotations

from typing import Optional

import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int, check_probability
from .base import Energy


def bernoulli_base_probs(data, eps: float = 1e-3) -> torch.Tensor:
    """Per-bit data means clamped to ``[eps, 1 - eps]``: the maximum-likelihood product Bernoulli.

    p_i = clamp((1/n) Σ_r x_ri, eps, 1 - eps), the mean accumulated in float64.  It is the base
    measure of :class:`~ebmlab.energies.BinaryMLPEnergy` and :meth:`ProductBernoulli.from_data`.

    Parameters
    ----------
    data : Tensor[n, d]
        {0,1}-valued data (n >= 1; values in [0, 1] are accepted and read as bit probabilities).
    eps : float
        Clamp in (0, 1/2), so that bits constant in the data keep a finite log-probability.

    Returns
    -------
    Tensor[d] in the data's floating dtype (the default dtype for integer or bool data).
    """
    eps = check_probability("eps", eps, open_low=True, open_high=True)
    if eps >= 0.5:
        raise ConfigError(f"eps must be in (0, 0.5) so that [eps, 1 - eps] is an interval, got {eps!r}")
    try:
        x = torch.as_tensor(data)
    except Exception as err:  # noqa: BLE001 - anything unconvertible is a data error
        raise DataError(f"data could not be converted to a tensor: {err}") from None
    if x.ndim != 2 or x.shape[0] < 1:
        raise DataError(f"data must be a 2-D tensor [n, d] of {{0,1}} values with n >= 1, got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32,
                                                 torch.int64)):
        raise DataError(f"data must hold {{0,1}} values, got dtype {x.dtype}")
    xd = x.double()
    if not bool(((xd >= 0) & (xd <= 1)).all()):  # also rejects NaN
        raise DataError("data must hold {0,1} values (bits; values in [0, 1] as bit probabilities); got values outside [0, 1] or NaN")
    out_dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    return xd.mean(0).clamp(eps, 1 - eps).to(out_dtype)


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
        """The product Bernoulli with the data's bit means, clamped to [eps, 1 - eps]
        (:func:`bernoulli_base_probs`)."""
        return cls(bernoulli_base_probs(data, eps))

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
