"""The objective contract.

An objective is a plain callable::

    out = objective(energy, batch, generator=g)     # LossOutput(loss, stats)
    out.loss.backward()

Objectives that draw random numbers (noise, negatives, projections) draw them from ``generator``
(a ``torch.Generator``; ``None`` uses torch's default generator); :func:`ebmlab.fit` passes its
seeded generator, so training is reproducible.

Objectives for conditional energies U(x | c) (energy discrepancy, NCE, denoising score matching) also take
``context=`` (one context row per batch row, default ``None``): the energy is then called as
``energy(x, context=c)`` and only x is perturbed or contrasted (:mod:`ebmlab.energies.conditional`).

Hyper-parameters go in the constructor; state only where the method needs it (the PCD replay
buffer, NCE's log-normaliser, MCMC-MLE's reference samples).  No optimizer lives inside an
objective.  Objectives with learnable parameters of their own (NCE's log Z) expose them through
``parameters()`` so that :func:`ebmlab.fit` optimises them with the energy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Optional

import torch

from .._core.registry import Registry

#: name -> objective class; ``objectives.build("cd", ...)``.
OBJECTIVES = Registry("objective")


@dataclass
class LossOutput:
    """Result of an objective: the scalar ``loss`` to minimise and ``stats`` to log (floats)."""

    loss: torch.Tensor
    stats: Dict[str, float] = field(default_factory=dict)


class Objective:
    """Base class for objectives (subclasses implement ``__call__``)."""

    name: str = ""
    #: True if the objective needs a sampler (CD/PCD/short-run MLE/MCMC-MLE).
    needs_sampler: bool = False

    def __call__(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(energy, batch, generator=None)")

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """Learnable parameters owned by the objective (none by default)."""
        return iter(())

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Tensors to checkpoint (replay buffers, log-normalisers)."""
        return {}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state to load, got keys {sorted(state)}")

    def to(self, device: Optional[torch.device]) -> "Objective":
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def build(name: str, **kwargs: Any) -> Objective:
    """Build a registered objective by name; unknown names raise ConfigError listing valid ones."""
    return OBJECTIVES.build(name, **kwargs)


def available() -> list:
    return OBJECTIVES.names()
