r"""Deep energy estimator networks, DEEN (Saremi, Mehrjou, Schölkopf & Hyvärinen 2018)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from .._core.validation import check_positive
from .base import OBJECTIVES, LossOutput, Objective
from .denoising_score_matching import DenoisingScoreMatching, is_noise_conditional
from .autograd import differentiable_input, energy_and_grad_graph


@OBJECTIVES.register("deen")
class DEEN(Objective):
    r"""DEEN loss (Saremi, Mehrjou, Schölkopf & Hyvärinen 2018, "Deep energy estimator networks",
    arXiv:1805.08306).

    With :math:`\tilde x = x + \sigma\varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`:

    .. math::

        J(\theta) = E_{x,\tilde x}\,\big\|x - \tilde x + \sigma^2 \nabla U_\theta(\tilde x)\big\|^2
                  = \sigma^4\, E\,\Big\|\nabla U_\theta(\tilde x) - \frac{\tilde x - x}{\sigma^2}\Big\|^2
                  = 2\sigma^4\, J_{DSM}(\theta),

    i.e. denoising score matching (:class:`DenoisingScoreMatching`) scaled by :math:`2\sigma^4`
    (the empirical Bayes / Miyasawa least-squares denoiser :math:`\hat x = \tilde x - \sigma^2\nabla U`).
    Its minimiser is therefore the same: the energy of the **σ-smoothed** data,
    :math:`U^\ast = -\log(p_{data} * \mathcal N(0,\sigma^2 I)) + c`; for Gaussian data with
    covariance C the optimal Gaussian has covariance :math:`C + \sigma^2 I`.  The scale makes the
    loss values small for small σ (Adam is insensitive to it; plain SGD is not).

    Parameters
    ----------
    sigma : float
        Noise level σ > 0 (default 0.1).

    Notes
    -----
    The noise is drawn from ``generator`` exactly as by ``DenoisingScoreMatching(sigma)``, so with
    the same generator state DEEN's loss is exactly 2σ⁴ times DSM's.  Noise-conditional energies
    are called as ``energy(x_tilde, sigma_rows)``.  Stats: ``score_sq`` (mean ‖∇U(x̃)‖²),
    ``denoise_mse`` (mean ‖x − x̂‖² per row of the denoiser x̂ = x̃ − σ²∇U(x̃), = the loss).
    """

    name = "deen"
    continuous = True

    def __init__(self, sigma: float = 0.1):
        self.sigma = check_positive("sigma", sigma)
        self._dsm = DenoisingScoreMatching(sigma=self.sigma)

    def perturb(
        self, batch: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw (x̃, ε, sigma_rows) exactly as :meth:`DenoisingScoreMatching.perturb`."""
        return self._dsm.perturb(batch, generator)

    def terms(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """Per-row ``loss`` = ‖x − x̃ + σ²∇U(x̃)‖² and ``score_sq`` = ‖∇U(x̃)‖²."""
        batch = differentiable_input(batch).detach()
        x_tilde, eps, sig = self.perturb(batch, generator)
        x_tilde = x_tilde.requires_grad_(True)
        args = (sig,) if is_noise_conditional(energy) else ()
        _, g = energy_and_grad_graph(energy, x_tilde, *args)
        b = batch.shape[0]
        # x - x_tilde = -sigma * eps exactly (computed from eps, free of cancellation error)
        residual = (self.sigma**2 * g - self.sigma * eps).reshape(b, -1)
        return {"loss": residual.pow(2).sum(-1), "score_sq": g.reshape(b, -1).pow(2).sum(-1)}

    def per_sample(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The loss of each row: Tensor[batch]."""
        return self.terms(energy, batch, generator)["loss"]

    def __call__(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> LossOutput:
        t = self.terms(energy, batch, generator)
        loss = t["loss"].mean()
        stats = {"score_sq": float(t["score_sq"].detach().mean()), "denoise_mse": float(loss.detach())}
        return LossOutput(loss, stats)
