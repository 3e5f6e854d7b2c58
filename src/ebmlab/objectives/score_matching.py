r"""Exact score matching (Hyvärinen 2005), with the exact Laplacian.

Built from the autograd primitives of :mod:`ebmlab.objectives.autograd`:
:func:`~ebmlab.objectives.autograd.energy_and_grad_graph` and
:func:`~ebmlab.objectives.autograd.divergence`.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from .autograd import differentiable_input, divergence, energy_and_grad_graph
from .base import OBJECTIVES, LossOutput, Objective


@OBJECTIVES.register("sm")
class ExactScoreMatching(Objective):
    r"""Exact score matching (Hyvärinen 2005, "Estimation of non-normalized statistical models by
    score matching", JMLR 6).

    With the model score :math:`s_\theta = \nabla_x \log p_\theta = -\nabla_x U_\theta`, the Fisher
    divergence :math:`\tfrac12 E_{p_{data}}\|s_\theta - \nabla\log p_{data}\|^2` equals, after
    integration by parts and up to a constant independent of θ,

    .. math::

        J(\theta) = E_{p_{data}}\Big[\tfrac12\|s_\theta(x)\|^2 + \operatorname{tr}\nabla_x s_\theta(x)\Big]
                  = E_{p_{data}}\Big[\tfrac12\|\nabla_x U_\theta(x)\|^2 - \Delta_x U_\theta(x)\Big].

    The Laplacian :math:`\Delta U = \sum_i \partial^2 U/\partial x_i^2` is computed **exactly**
    with one extra backward pass per input dimension (``create_graph=True``; see
    :func:`divergence`): O(D) cost, fine for low-dimensional data, use ``"ssm"`` or ``"dsm"`` in
    high dimension.  Inputs of any event shape are flattened to D coordinates.  The energy must
    be twice differentiable in x (``softplus``/``silu``/``tanh`` nets, not ``relu``, whose
    Laplacian is zero almost everywhere).

    For a Gaussian family :math:`U = \tfrac12(x-\mu)^\top P (x-\mu)` the minimiser on a sample is
    the sample mean and the biased (1/n) sample covariance, :math:`P = S^{-1}`.  Score matching
    is blind to the weights of well-separated mixture components (the scores do not see them).

    Stats: ``score_sq`` (mean ‖∇U‖²), ``laplacian`` (mean ΔU).
    """

    name = "sm"
    continuous = True

    def __init__(self) -> None:
        pass

    def terms(self, energy, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-row ``score_sq`` = ‖∇U(x)‖² and ``laplacian`` = ΔU(x) (both in the graph)."""
        x = differentiable_input(batch)
        _, g = energy_and_grad_graph(energy, x)
        score_sq = g.reshape(x.shape[0], -1).pow(2).sum(-1)
        return {"score_sq": score_sq, "laplacian": divergence(g, x)}

    def per_sample(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """½‖∇U(xᵢ)‖² − ΔU(xᵢ) for every row (``generator`` is unused: the loss is deterministic)."""
        t = self.terms(energy, batch)
        return 0.5 * t["score_sq"] - t["laplacian"]

    def __call__(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> LossOutput:
        t = self.terms(energy, batch)
        loss = (0.5 * t["score_sq"] - t["laplacian"]).mean()
        stats = {
            "score_sq": float(t["score_sq"].detach().mean()),
            "laplacian": float(t["laplacian"].detach().mean()),
        }
        return LossOutput(loss, stats)
