"""Maximum likelihood with MCMC negatives: contrastive divergence, persistent CD, short-run MLE.

The gradient of the average log-likelihood of p_θ(x) = exp(-U_θ(x)) / Z_θ is

    ∇_θ E_data[log p_θ] = -E_data[∇_θ U_θ(x)] + E_{p_θ}[∇_θ U_θ(x)],

so the surrogate loss  L(θ) = mean U_θ(x_data) - mean U_θ(x_neg), with negatives x_neg drawn (approximately) from
p_θ by MCMC and treated as constants, has the MLE gradient (Song & Kingma 2021, "How to Train Your Energy-Based
Models", arXiv:2101.03288, Sec. 2).  The three objectives differ only in where the chains start (all of them run through the one chain runner, :func:`ebmlab.samplers.sample`):

- ``"cd"``: CD-k (Hinton 2002) starts the chains at the data batch and runs k sampler steps;
- ``"pcd"``: persistent CD (Tieleman 2008) keeps the chains in a replay buffer across iterations; a fraction
  ``reinit_prob`` of them restarts from a noise distribution (Du & Mordatch 2019);
- ``"short_run"``: short-run MLE (Nijkamp et al. 2019) starts every chain from noise.

An optional energy-magnitude regulariser (Du & Mordatch 2019) ``energy_reg * (mean U(x)^2 + mean U(x_neg)^2)`` keeps
energies near zero.  Any sampler that follows the contract of :mod:`ebmlab.samplers.base` works, continuous
(ULA, MALA, HMC, ...) or discrete (Gibbs, Gibbs-with-gradients).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Union

import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int, check_positive, check_probability
from ..samplers.base import Sampler
from ..samplers.buffer import ReplayBuffer
from ..samplers.driver import resolve_sampler, sample
from .base import OBJECTIVES, LossOutput, Objective

InitFn = Callable[[int, torch.Tensor, Optional[torch.Generator]], torch.Tensor]
_INIT_NAMES = ("uniform", "gaussian", "bernoulli")


class NoiseInit:
    """Noise distribution that (re)initialises MCMC chains, fitted to the data by :meth:`prepare`.

    ``"uniform"``: uniform on the data's bounding box enlarged by ``margin`` times its width on each side;
    ``"gaussian"``: a diagonal Gaussian with the data's mean and standard deviation;
    ``"bernoulli"``: independent bits with probability 1/2 (for {0,1} data).
    Before :meth:`prepare` is called, the box / moments come from the first batch it sees.
    """

    def __init__(self, kind: str = "uniform", margin: float = 0.1):
        if kind not in _INIT_NAMES:
            raise ConfigError(f"init must be one of {', '.join(_INIT_NAMES)} or a callable, got {kind!r}")
        self.kind = kind
        self.margin = check_positive("margin", margin, allow_zero=True)
        self.low: Optional[torch.Tensor] = None
        self.high: Optional[torch.Tensor] = None

    def prepare(self, data: torch.Tensor) -> None:
        flat = data.reshape(data.shape[0], -1)
        if self.kind == "uniform":
            lo, hi = flat.min(0).values, flat.max(0).values
            width = (hi - lo).clamp_min(1e-6)
            self.low, self.high = lo - self.margin * width, hi + self.margin * width
        elif self.kind == "gaussian":
            self.low, self.high = flat.mean(0), flat.std(0).clamp_min(1e-6)

    def __call__(self, n: int, like: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        shape = (n, *like.shape[1:])
        if self.kind == "bernoulli":
            return (torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device) < 0.5).to(like.dtype)
        if self.low is None:
            self.prepare(like)
        low = self.low.to(like).reshape(like.shape[1:])
        high = self.high.to(like).reshape(like.shape[1:])
        if self.kind == "uniform":
            u = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)
            return low + (high - low) * u
        z = torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
        return low + high * z


def _make_init(init: Union[str, InitFn]) -> InitFn:
    if callable(init):
        return init
    return NoiseInit(init)


class _MCMCObjective(Objective):
    needs_sampler = True

    def __init__(self, sampler, steps, energy_reg):
        self.sampler = resolve_sampler(sampler)
        self.steps = check_int("steps", steps, minimum=1)
        self.energy_reg = check_positive("energy_reg", energy_reg, allow_zero=True)

    def _chains(self, energy, x0: torch.Tensor, generator: Optional[torch.Generator]):
        """``steps`` sampler steps from ``x0`` through the one chain runner (final state only)."""
        return sample(energy, self.sampler, x0.detach(), self.steps, keep="last", adapt=False, warn=False,
                      generator=generator)

    def _loss(self, energy, batch, negatives, info) -> LossOutput:
        u_data = energy(batch)
        u_neg = energy(negatives)
        loss = u_data.mean() - u_neg.mean()
        if self.energy_reg > 0:
            loss = loss + self.energy_reg * (u_data.pow(2).mean() + u_neg.pow(2).mean())
        stats: Dict[str, float] = {
            "energy_data": float(u_data.detach().mean()),
            "energy_neg": float(u_neg.detach().mean()),
            "energy_gap": float(u_neg.detach().mean() - u_data.detach().mean()),
            "acceptance": info.acceptance_rate,
            "stuck_fraction": info.stuck_fraction,
        }
        return LossOutput(loss, stats)


@OBJECTIVES.register("cd")
class ContrastiveDivergence(_MCMCObjective):
    """CD-k (Hinton 2002): negatives from ``steps`` sampler steps started at the data batch.

    Loss: mean U(x) - mean U(x_neg) + energy_reg (mean U(x)² + mean U(x_neg)²), x_neg = K^k(x) detached, where K is
    the sampler's transition kernel.  Biased for finite k (Carreira-Perpiñán & Hinton 2005) but cheap.

    Parameters
    ----------
    sampler : Sampler or str
        A sampler object (``ULA(step_size=0.01)``, ``MALA(...)``, ``Gibbs()``, ...) or a registered name, built
        once with that sampler's defaults; default ``"ula"`` (ULA's default step size 0.01, the Langevin step of the
        CD baseline in Schröder et al. 2023, "Energy Discrepancies", NeurIPS 2023).
    steps : int
        k, the number of sampler steps per iteration (default 10).
    energy_reg : float
        Weight of the energy-magnitude penalty (default 0).
    """

    name = "cd"

    def __init__(self, sampler: Union[str, Sampler] = "ula", steps: int = 10, energy_reg: float = 0.0):
        super().__init__(sampler, steps, energy_reg)

    def __call__(self, energy, batch, generator=None) -> LossOutput:
        neg, info = self._chains(energy, batch, generator)
        return self._loss(energy, batch, neg, info)


@OBJECTIVES.register("pcd")
class PersistentCD(_MCMCObjective):
    """Persistent contrastive divergence with a replay buffer (Tieleman 2008; Du & Mordatch 2019).

    Each iteration draws ``batch`` distinct chains from a :class:`~ebmlab.samplers.ReplayBuffer` of ``buffer_size``
    persistent states; each drawn chain is restarted from the noise distribution ``init`` with probability
    ``reinit_prob``; ``steps`` sampler steps are run and the results written back in place.  Loss as in
    :class:`ContrastiveDivergence`.

    Parameters
    ----------
    sampler : Sampler or str
        Default ``"ula"`` (ULA's default step size 0.01).
    steps : int
        Sampler steps per iteration (default 20).
    buffer_size : int
        Number of persistent chains (default 10000), at least the batch size.
    reinit_prob : float
        Probability that a drawn chain restarts from noise (default 0.05).
    init : {"uniform", "gaussian", "bernoulli"} or callable
        Noise distribution; a callable has signature ``init(n, like, generator) -> Tensor[n, *like.shape[1:]]``.
        ``"uniform"`` (default) is uniform on the data's bounding box (+10% margin).
    energy_reg : float
        Energy-magnitude penalty weight (default 0).
    """

    name = "pcd"
    #: state split by rows over the processes of a distributed run (see ebmlab.train.distributed)
    sharded_state = ("buffer",)

    def __init__(self, sampler: Union[str, Sampler] = "ula", steps: int = 20, buffer_size: int = 10000,
                 reinit_prob: float = 0.05, init: Union[str, InitFn] = "uniform", energy_reg: float = 0.0):
        super().__init__(sampler, steps, energy_reg)
        self.buffer_size = check_int("buffer_size", buffer_size, minimum=1)
        self.reinit_prob = check_probability("reinit_prob", reinit_prob)
        self.init = _make_init(init)
        self.buffer: Optional[ReplayBuffer] = None
        self._restored: Optional[torch.Tensor] = None

    def prepare(self, data: torch.Tensor) -> None:
        """Fit the noise distribution to the training data (called by :func:`ebmlab.fit`)."""
        if hasattr(self.init, "prepare"):
            self.init.prepare(data)

    def _buffer_for(self, batch: torch.Tensor) -> ReplayBuffer:
        if self.buffer is not None and self.buffer.data is not None and self.buffer.data.shape[1:] == batch.shape[1:]:
            return self.buffer
        like = batch[:1].detach()
        self.buffer = ReplayBuffer(self.buffer_size, self.reinit_prob, lambda n, generator: self.init(n, like, generator))
        if self._restored is not None and self._restored.shape[1:] == batch.shape[1:]:
            self.buffer.load_state_dict({"buffer_size": self.buffer_size, "reinit_prob": self.reinit_prob,
                                         "data": self._restored.to(device=batch.device, dtype=batch.dtype)})
        self._restored = None
        return self.buffer

    def __call__(self, energy, batch, generator=None) -> LossOutput:
        n = batch.shape[0]
        if n > self.buffer_size:
            raise ConfigError(f"PCD draws {n} distinct chains per batch but buffer_size is {self.buffer_size}; "
                              f"use buffer_size >= batch_size")
        buffer = self._buffer_for(batch)
        x0, idx = buffer.sample(n, generator=generator)
        neg, info = self._chains(energy, x0, generator)
        buffer.update(idx, neg)
        out = self._loss(energy, batch, neg, info)
        out.stats["reinit_fraction"] = buffer.last_reinit_fraction
        return out

    def state_dict(self) -> Dict[str, torch.Tensor]:
        chains = self.negatives()  # the live buffer, or one restored by load_state_dict and not used yet
        return {} if chains is None else {"buffer": chains.detach().cpu()}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        if "buffer" in state:
            data = state["buffer"]
            if data.shape[0] != self.buffer_size:
                raise DataError(f"a saved PCD buffer holds {data.shape[0]} chains, this objective has "
                                f"buffer_size={self.buffer_size}")
            self.buffer, self._restored = None, data.detach().clone()

    def negatives(self) -> Optional[torch.Tensor]:
        """The current persistent chains (``None`` before the first call)."""
        if self.buffer is not None and self.buffer.data is not None:
            return self.buffer.data
        return self._restored


@OBJECTIVES.register("short_run")
class ShortRunMLE(_MCMCObjective):
    """Short-run MLE (Nijkamp et al. 2019): every iteration starts fresh chains from the noise ``init``.

    Loss as in :class:`ContrastiveDivergence`; ``steps`` default 50, sampler ``"ula"`` (step size 0.01).
    """

    name = "short_run"

    def __init__(self, sampler: Union[str, Sampler] = "ula", steps: int = 50, init: Union[str, InitFn] = "uniform",
                 energy_reg: float = 0.0):
        super().__init__(sampler, steps, energy_reg)
        self.init = _make_init(init)

    def prepare(self, data: torch.Tensor) -> None:
        if hasattr(self.init, "prepare"):
            self.init.prepare(data)

    def __call__(self, energy, batch, generator=None) -> LossOutput:
        x0 = self.init(batch.shape[0], batch, generator)
        neg, info = self._chains(energy, x0, generator)
        return self._loss(energy, batch, neg, info)
