r"""Autograd primitives shared by the score-matching family of objectives.

:func:`energy_and_grad_graph` keeps U and ∇ₓU in the autograd graph, so a loss made of them can
be differentiated with respect to the energy's parameters (and again in x, for Laplacians and
Hessian-vector products); :func:`divergence` is the exact divergence of a row-wise vector field,
one backward pass per input dimension; :func:`differentiable_input` makes the detached,
grad-requiring copy of a continuous batch that both start from.  Used by exact, sliced,
denoising and diffusion score matching and DEEN.
"""
from __future__ import annotations

from typing import Tuple

import torch

from .._core.errors import DataError


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
