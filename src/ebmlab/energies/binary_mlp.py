"""Neural energies on binary vectors: an MLP plus a Bernoulli base measure."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .._core.errors import ConfigError
from .base import Energy
from .flip_delta import flip_delta
from .mlp import mlp
from .registry import ENERGIES


@ENERGIES.register("binary_mlp")
class BinaryMLPEnergy(Energy):
    """Binary EBM: ``U(x) = f_theta(x) - log Bern(x; p)`` on x in {0,1}^d.

    ``f_theta`` is an MLP ``d -> hidden... -> 1`` and
    ``log Bern(x; p) = sum_i x_i log p_i + (1 - x_i) log(1 - p_i)`` a fixed product-Bernoulli base
    measure (typically the data means, :func:`~ebmlab.energies.bernoulli_base_probs`), so that the untrained
    network (f ~ const) already models the data marginals and learning only has to add the
    dependencies.  This is the discrete energy-discrepancy architecture (Schröder et al., NeurIPS
    2024, "Energy-based modelling for discrete and mixed data via heat equations on structured
    spaces", and its reference code: MLP 32-256-256-256-1 minus log Bernoulli(data mean)).

    Parameters
    ----------
    dim : int
        Number of bits d.
    hidden : sequence of int
        Hidden widths (default ``(256, 256, 256)``).
    base_probs : Tensor[d] or None
        Bernoulli base probabilities in (0, 1); ``None`` means no base term (equivalently p = 1/2,
        up to a constant).
    activation : str
        Hidden activation (default ``"silu"``, i.e. Swish); see :func:`ebmlab.energies.mlp.activation_names`.
    delta_chunk_size : int, optional
        Rows per batched call in :meth:`delta`.

    Notes
    -----
    :meth:`delta` evaluates the network on the d flipped copies of every row (cost ``d + 1`` forward
    passes per row, memory ``batch * d * d``); see :mod:`ebmlab.energies.flip_delta`.
    """

    discrete = True

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (256, 256, 256),
        base_probs: Optional[torch.Tensor] = None,
        activation: str = "silu",
        delta_chunk_size: Optional[int] = None,
    ):
        super().__init__()
        self.net = mlp(dim, hidden, activation)
        dim = int(dim)
        hidden = [int(h) for h in hidden]
        if base_probs is not None:
            p = torch.as_tensor(base_probs).detach().clone()
            if not p.is_floating_point():
                p = p.to(torch.get_default_dtype())
            if p.shape != (dim,):
                raise ConfigError(f"base_probs must have shape ({dim},), got {tuple(p.shape)}")
            if not ((p > 0) & (p < 1)).all():
                raise ConfigError("base_probs must lie strictly inside (0, 1); clamp them (see bernoulli_base_probs)")
            self.register_buffer("base_logits", torch.log(p) - torch.log1p(-p))
            self.register_buffer("base_log1m", torch.log1p(-p))
        else:
            self.base_logits = None
            self.base_log1m = None
        self.dim = dim
        self.hidden = tuple(hidden)
        self.activation = activation
        self.delta_chunk_size = delta_chunk_size

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log Bern(x; p) = x . logit(p) + sum log(1 - p) (zero when there is no base term)."""
        if self.base_logits is None:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return x @ self.base_logits.to(x.dtype) + self.base_log1m.to(x.dtype).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        return self.net(x).squeeze(-1) - self.base_log_prob(x)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """``U(flip_i x) - U(x)`` for every bit i, by batched evaluation of the flipped copies."""
        return flip_delta(self, x.reshape(x.shape[0], -1), chunk_size=self.delta_chunk_size)

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": list(self.hidden), "activation": self.activation}
