r"""Exact score matching (Hyvärinen 2005), with the exact Laplacian.

Also home of the two autograd primitives that every score-matching estimator in ebmlab is
built from: :func:`energy_and_grad_graph` (U and ∇ₓU kept in the autograd graph, so a loss made
of them can be differentiated with respect to the energy's parameters) and :func:`divergence`
(the exact divergence of a row-wise vector field, one backward pass per input dimension).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from .._core.errors import DataError
from .base import OBJECTIVES, LossOutput, Objective


def differentiable_input(batch: torch.Tensor, *, name: str = "batch") -> torch.Tensor:
    """A detached copy of a continuous batch ``[batch, *event]`` that requires grad.

    Raises :class:`DataError` for non-tensors, non-floating dtypes and tensors without a batch
    dimension and an event dimension.
    """
    if not torch.is_tensor(batch):
        raise DataError(f"{name} must be a torch.Tensor of shape [batch, *event], got {type(batch).__name__}")
    if not batch.is_floating_point():
        raise DataError(f"{name} must be a floating-point tensor (continuous data), got dtype {batch.dtype}")
    if batch.ndim < 2 or batch.shape[0] < 1:
        raise DataError(f"{name} must have shape [batch, *event] with batch >= 1, got {tuple(batch.shape)}")
    return batch.detach().requires_grad_(True)


def energy_and_grad_graph(energy, x: torch.Tensor, *args) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Return :math:`U(x)` (``[batch]``) and :math:`\nabla_x U(x)` (shape of ``x``), both in the graph.

    The gradient is taken with ``create_graph=True``, so losses built from it can be
    back-propagated to the energy's parameters and differentiated again in ``x`` (Laplacians,
    Hessian-vector products).  ``x`` must require grad (see :func:`differentiable_input`); extra
    ``args`` are passed to the energy (e.g. the noise level of a noise-conditional energy).
    Rows are assumed independent: U of row i must not depend on other rows (no batch norm).
    """
    with torch.enable_grad():
        u = energy(x, *args)
        if u.shape != (x.shape[0],):
            raise DataError(
                f"energy must return one value per row, shape ({x.shape[0]},), got {tuple(u.shape)}"
            )
        if not u.requires_grad:  # U does not depend on x nor on any trainable parameter
            return u, torch.zeros_like(x)
        (g,) = torch.autograd.grad(u.sum(), x, create_graph=True, allow_unused=True)
    return u, (torch.zeros_like(x) if g is None else g)


def divergence(field: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Exact divergence :math:`\nabla\cdot f(x) = \sum_{i=1}^D \partial f_i / \partial x_i` per row.

    ``field`` is ``f(x)`` with the shape of ``x`` (``[batch, *event]``, flattened to ``D``
    coordinates), computed from ``x`` inside the autograd graph.  One backward pass per
    coordinate, each with ``create_graph=True``: cost O(D) backward passes, memory of one
    graph.  This is what makes exact score matching expensive in high dimension
    (Hyvärinen 2005; Song et al. 2019 motivate sliced score matching by it).

    Returns
    -------
    Tensor[batch]
        The divergence of each row (rows are assumed independent).
    """
    b = x.shape[0]
    flat = field.reshape(b, -1)
    total = torch.zeros(b, dtype=field.dtype, device=field.device)
    if not flat.requires_grad:  # a constant field has zero divergence
        return total
    with torch.enable_grad():
        for i in range(flat.shape[1]):
            (gi,) = torch.autograd.grad(flat[:, i].sum(), x, create_graph=True, allow_unused=True)
            if gi is not None:
                total = total + gi.reshape(b, -1)[:, i]
    return total


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
