r"""Pseudo-likelihood for energies on binary vectors (Besag 1975).

J. Besag (1975), "Statistical analysis of non-lattice data", The Statistician 24(3).  The
likelihood of a binary model needs Z; the product of the full conditionals does not:

.. math::
    \log PL(x) = \sum_{i=1}^d \log p(x_i \mid x_{-i}),
    \qquad p(x_i \mid x_{-i}) = \frac{e^{-U(x)}}{e^{-U(x)} + e^{-U(\mathrm{flip}_i x)}}
                              = \sigma(\delta_i(x)),

with ``delta_i(x) = U(flip_i x) - U(x)`` and σ the logistic function.  Maximising it is a
consistent estimator for identifiable exponential families (Ising: it is the logistic regression of
every spin on the others; for the lattice it is Besag's coding-free PL).
"""
from __future__ import annotations

from typing import Optional

import torch

from .._core.errors import DataError
from .._core.validation import check_int
from ..energies.flip_delta import flip_delta
from .base import OBJECTIVES, LossOutput, Objective

__all__ = ["PseudoLikelihood", "pseudo_likelihood_loss"]


def pseudo_likelihood_loss(delta: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Negative log pseudo-likelihood from the flip energy changes: mean_b Σ_i w_i log(1 + e^{-δ_bi}).

    With δ_i(x) = U(flip_i x) - U(x), -log p(x_i | x_-i) = -log σ(δ_i) = log(1 + e^{-δ_i}) (Besag 1975),
    computed as ``logaddexp(0, -δ)`` (exact for every δ, where ``softplus`` switches to the identity above 20).

    Parameters
    ----------
    delta : Tensor[batch, d]
        Flip energy changes of every row and site.
    weights : Tensor[d], optional
        Per-site weights (multiplicities of sites sharing a row of the design, e.g. the MPLE's distinct
        (change statistic, response) rows); default 1.

    Returns
    -------
    Tensor
        0-dim loss, differentiable through ``delta``.
    """
    nll = torch.logaddexp(-delta, torch.zeros((), dtype=delta.dtype, device=delta.device))
    if weights is not None:
        nll = nll * weights.to(delta.dtype)
    return nll.sum(1).mean()


@OBJECTIVES.register("pseudo_likelihood")
class PseudoLikelihood(Objective):
    r"""Negative log pseudo-likelihood: loss = mean_b Σ_i log(1 + exp(-delta_i(x_b))) (:func:`pseudo_likelihood_loss`).

    Since ``-log σ(δ) = log(1 + exp(-δ))``,

    .. math::
        \mathcal L(U) = \frac1N \sum_{b=1}^N \sum_{i=1}^d \log\big(1 + e^{-(U(\mathrm{flip}_i x_b) - U(x_b))}\big)
                      = -\frac1N \sum_b \log PL(x_b)

    (Besag 1975).  For an exponential family δ is linear in θ and this is a logistic regression; on an
    :class:`~ebmlab.energies.ERGMEnergy` and one observed graph its minimiser is the ERGM's MPLE (Strauss &
    Ikeda 1990), which :func:`ebmlab.ergm.estimation.mple.fit_mple` computes with this loss.  ``delta`` is
    taken from ``energy.delta(x)`` when the energy provides it (Ising: one matmul, differentiable in J and h;
    ERGM: its change statistics); otherwise the d flipped copies of each row are
    evaluated in one batched call (:func:`ebmlab.energies.flip_delta.flip_delta`): cost d + 1 energy
    evaluations per data point, O(d) times a forward pass, memory batch · d².

    Parameters
    ----------
    chunk_size : int, optional
        Rows per energy call in the brute-force path (bounds memory); default all rows at once.
    check_data : bool
        Check that every batch is {0,1}-valued (default True; DataError otherwise).

    Notes
    -----
    Stats: ``nlpl_per_site`` (the loss divided by d) and ``cond_accuracy`` (fraction of sites whose
    observed value is the more probable one under p(x_i | x_-i)).
    """

    name = "pseudo_likelihood"
    continuous = False

    def __init__(self, chunk_size: Optional[int] = None, check_data: bool = True):
        self.chunk_size = None if chunk_size is None else check_int("chunk_size", chunk_size)
        self.check_data = bool(check_data)

    def deltas(self, energy, batch: torch.Tensor) -> torch.Tensor:
        """delta_i(x) = U(flip_i x) - U(x) for every row and site, [batch, d]."""
        x = batch.reshape(batch.shape[0], -1)
        if callable(getattr(energy, "delta", None)):
            return energy.delta(x)
        return flip_delta(energy, x, chunk_size=self.chunk_size)

    def __call__(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> LossOutput:
        """The loss on a data batch; deterministic (``generator`` is accepted for the common signature and unused)."""
        if self.check_data and not ((batch == 0) | (batch == 1)).all():
            raise DataError("pseudo-likelihood needs {0,1}-valued data (spins s = 2x - 1: convert with from_spins)")
        delta = self.deltas(energy, batch)
        loss = pseudo_likelihood_loss(delta)
        with torch.no_grad():
            stats = {
                "nlpl_per_site": float(loss) / delta.shape[1],
                "cond_accuracy": float((delta > 0).to(delta.dtype).mean()),
            }
        return LossOutput(loss, stats)
