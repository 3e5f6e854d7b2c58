r"""Noise-conditional energies U(x, σ) for multi-level denoising score matching."""
from __future__ import annotations

from typing import Sequence, Union

import torch

from .._core.errors import ConfigError
from .._core.validation import check_int, check_positive
from .base import Energy
from .registry import ENERGIES
from .mlp import mlp


@ENERGIES.register("noise_conditional_mlp")
class NoiseConditionalMLPEnergy(Energy):
    r"""Noise-conditional MLP energy :math:`U_\theta(x, \sigma) = f_\theta([x, \log\sigma]) / \sigma`.

    One network for all noise levels, conditioned on :math:`\log\sigma` as an extra input, with
    the output divided by σ: the score :math:`-\nabla_x U = -\nabla_x f/\sigma` then has the
    :math:`1/\sigma` scale of the score of σ-smoothed data, so f stays O(1) across levels and the
    σ²-weighted multi-level loss :math:`\tfrac12\|\sigma\nabla U - \varepsilon\|^2` is well
    conditioned (the output scaling of Song & Ermon 2020, "Improved techniques for training
    score-based generative models", NeurIPS, technique 3, applied to an energy).

    Declares ``noise_conditional = True``, which tells :class:`ebmlab.objectives.DenoisingScoreMatching`
    and :class:`ebmlab.objectives.DEEN` to call ``energy(x_tilde, sigma_rows)``.

    Parameters
    ----------
    dim : int
        Input dimension (rows of any event shape are flattened).
    hidden : sequence of int
        Hidden widths (default ``(128, 128)``).
    activation : str
        Activation, as for :class:`ebmlab.energies.MLPEnergy` (default ``softplus``).
    sigma : float
        The level used when ``forward`` is called without σ, i.e. by samplers and metrics
        (default 0.1); set it to the smallest level the energy was trained at to sample the
        least-smoothed model.
    """

    noise_conditional = True

    def __init__(
        self, dim: int, hidden: Sequence[int] = (128, 128), activation: str = "softplus", sigma: float = 0.1
    ):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.hidden = tuple(check_int("hidden width", h) for h in hidden)
        self.activation = activation
        self.sigma = check_positive("sigma", sigma)
        self.net = mlp(self.dim + 1, self.hidden, activation)  # input [x, log σ]

    def forward(self, x: torch.Tensor, sigma: Union[None, float, torch.Tensor] = None) -> torch.Tensor:
        """U(x, σ) per row; ``sigma`` is a float, a 0-d tensor or ``Tensor[batch]`` (default ``self.sigma``)."""
        b = x.shape[0]
        flat = x.reshape(b, -1)
        if flat.shape[1] != self.dim:
            raise ConfigError(f"NoiseConditionalMLPEnergy(dim={self.dim}) got rows with {flat.shape[1]} elements")
        if sigma is None:
            sigma = self.sigma
        if torch.is_tensor(sigma):
            s = sigma.to(dtype=flat.dtype, device=flat.device)
            if s.ndim == 0:
                s = s.expand(b)
            elif tuple(s.shape) != (b,):
                raise ConfigError(f"sigma must be a number or a Tensor[{b}], got shape {tuple(s.shape)}")
        else:
            s = torch.full((b,), check_positive("sigma", sigma), dtype=flat.dtype, device=flat.device)
        f = self.net(torch.cat([flat, torch.log(s)[:, None]], dim=1)).squeeze(-1)
        return f / s

    def config(self) -> dict:
        """Constructor options that rebuild this energy's architecture (saved with checkpoints)."""
        return {"dim": self.dim, "hidden": list(self.hidden), "activation": self.activation, "sigma": self.sigma}
