"""Maximum likelihood with MCMC negatives: contrastive divergence, persistent CD, short-run MLE.

The gradient of the average log-likelihood of p_θ(x) = exp(-U_θ(x)) / Z_θ is

    ∇_θ E_data[log p_θ] = -E_data[∇_θ U_θ(x)] + E_{p_θ}[∇_θ U_θ(x)],

so the surrogate loss  L(θ) = mean U_θ(x_data) - mean U_θ(x_neg), with negatives x_neg drawn (approximately) from
p_θ by MCMC and treated as constants, has the MLE gradient (seed 001, eq. 9).  The three objectives differ only in
where the chains start:

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

from .._core.errors import ConfigError
from .._core.validation import check_int, check_positive, check_probability
from ..samplers.base import Sampler, build as build_sampler
from .base import OBJECTIVES, LossOutput, Objective

InitFn = Callable[[int, torch.Tensor, Optional[torch.Generator]], torch.Tensor]
_INIT_NAMES = ("uniform", "gaussian", "bernoulli")


def _make_sampler(sampler: Union[str, Sampler], step_size: Optional[float]) -> Sampler:
    if isinstance(sampler, Sampler):
        if step_size is not None:
            raise ConfigError("step_size applies only when the sampler is given by name; set it on the Sampler object")
        return sampler
    if not isinstance(sampler, str):
        raise ConfigError(f"sampler must be a sampler name or a Sampler object, got {sampler!r}")
    kwargs = {} if step_size is None else {"step_size": check_positive("step_size", step_size)}
    return build_sampler(sampler, **kwargs)


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


def run_chains(energy, sampler: Sampler, x0: torch.Tensor, n_steps: int,
               generator: Optional[torch.Generator] = None) -> tuple:
    """Run ``n_steps`` of ``sampler`` from ``x0``; return (final x detached, mean acceptance, step size)."""
    state = sampler.init(energy, x0.detach())
    acc = torch.zeros((), dtype=torch.float64)
    step_size = getattr(state, "step_size", 0.0)
    for _ in range(n_steps):
        state, info = sampler.step(energy, state, generator=generator)
        acc = acc + info.acceptance_rate.detach().double().mean().cpu()
    return state.x.detach(), float(acc) / max(n_steps, 1), step_size


class _MCMCObjective(Objective):
    needs_sampler = True

    def __init__(self, sampler, n_steps, step_size, energy_reg):
        self.sampler = _make_sampler(sampler, step_size)
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.energy_reg = check_positive("energy_reg", energy_reg, allow_zero=True)

    def _loss(self, energy, batch, negatives, acceptance) -> LossOutput:
        u_data = energy(batch)
        u_neg = energy(negatives)
        loss = u_data.mean() - u_neg.mean()
        if self.energy_reg > 0:
            loss = loss + self.energy_reg * (u_data.pow(2).mean() + u_neg.pow(2).mean())
        stats: Dict[str, float] = {
            "energy_data": float(u_data.detach().mean()),
            "energy_neg": float(u_neg.detach().mean()),
            "energy_gap": float(u_neg.detach().mean() - u_data.detach().mean()),
            "acceptance": acceptance,
        }
        return LossOutput(loss, stats)


@OBJECTIVES.register("cd")
class ContrastiveDivergence(_MCMCObjective):
    """CD-k (Hinton 2002): negatives from ``n_steps`` sampler steps started at the data batch.

    Loss: mean U(x) - mean U(x_neg) + energy_reg (mean U(x)² + mean U(x_neg)²), x_neg = K^k(x) detached, where K is
    the sampler's transition kernel.  Biased for finite k (Carreira-Perpiñán & Hinton 2005) but cheap.

    Parameters
    ----------
    sampler : str or Sampler
        Sampler name (``"ula"``, ``"mala"``, ``"hmc"``, ...) or object; default ``"ula"``.
    n_steps : int
        k, the number of sampler steps per iteration (default 10).
    step_size : float, optional
        Step size when the sampler is given by name (default: 0.01, the Langevin step of the ED notebook's CD baseline).
    energy_reg : float
        Weight of the energy-magnitude penalty (default 0).
    """

    name = "cd"

    def __init__(self, sampler: Union[str, Sampler] = "ula", n_steps: int = 10, step_size: Optional[float] = None,
                 energy_reg: float = 0.0):
        if isinstance(sampler, str) and step_size is None:
            step_size = 0.01
        super().__init__(sampler, n_steps, step_size, energy_reg)

    def __call__(self, energy, batch, generator=None) -> LossOutput:
        neg, acc, _ = run_chains(energy, self.sampler, batch, self.n_steps, generator)
        return self._loss(energy, batch, neg, acc)


@OBJECTIVES.register("pcd")
class PersistentCD(_MCMCObjective):
    """Persistent contrastive divergence with a replay buffer (Tieleman 2008; Du & Mordatch 2019).

    Each iteration draws ``batch`` chains from a buffer of ``buffer_size`` persistent states; each drawn chain is
    restarted from the noise distribution ``init`` with probability ``reinit_prob``; ``n_steps`` sampler steps
    are run and the results written back.  Loss as in :class:`ContrastiveDivergence`.

    Parameters
    ----------
    sampler : str or Sampler
        Default ``"ula"`` with step size 0.01.
    n_steps : int
        Sampler steps per iteration (default 20).
    buffer_size : int
        Number of persistent chains (default 10000).
    reinit_prob : float
        Probability that a drawn chain restarts from noise (default 0.05).
    init : {"uniform", "gaussian", "bernoulli"} or callable
        Noise distribution; a callable has signature ``init(n, like, generator) -> Tensor[n, *like.shape[1:]]``.
        ``"uniform"`` (default) is uniform on the data's bounding box (+10% margin).
    energy_reg : float
        Energy-magnitude penalty weight (default 0).
    """

    name = "pcd"

    def __init__(self, sampler: Union[str, Sampler] = "ula", n_steps: int = 20, step_size: Optional[float] = None,
                 buffer_size: int = 10000, reinit_prob: float = 0.05, init: Union[str, InitFn] = "uniform",
                 energy_reg: float = 0.0):
        if isinstance(sampler, str) and step_size is None:
            step_size = 0.01
        super().__init__(sampler, n_steps, step_size, energy_reg)
        self.buffer_size = check_int("buffer_size", buffer_size, minimum=1)
        self.reinit_prob = check_probability("reinit_prob", reinit_prob)
        self.init = _make_init(init)
        self._buffer: Optional[torch.Tensor] = None

    def prepare(self, data: torch.Tensor) -> None:
        """Fit the noise distribution to the training data (called by :func:`ebmlab.fit`)."""
        if hasattr(self.init, "prepare"):
            self.init.prepare(data)

    def __call__(self, energy, batch, generator=None) -> LossOutput:
        n = batch.shape[0]
        if self._buffer is None or self._buffer.shape[1:] != batch.shape[1:]:
            self._buffer = self.init(self.buffer_size, batch, generator).detach()
        buf = self._buffer.to(device=batch.device, dtype=batch.dtype)
        idx = torch.randint(0, buf.shape[0], (n,), generator=generator, device=buf.device)
        x0 = buf[idx]
        fresh = torch.rand(n, generator=generator, device=buf.device) < self.reinit_prob
        if bool(fresh.any()):
            noise = self.init(n, batch, generator)
            x0 = torch.where(fresh.reshape(-1, *([1] * (batch.ndim - 1))), noise, x0)
        neg, acc, _ = run_chains(energy, self.sampler, x0, self.n_steps, generator)
        buf = buf.clone() if buf is self._buffer else buf
        buf[idx] = neg
        self._buffer = buf
        out = self._loss(energy, batch, neg, acc)
        out.stats["reinit_fraction"] = float(fresh.float().mean())
        return out

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {} if self._buffer is None else {"buffer": self._buffer.detach().cpu()}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        if "buffer" in state:
            self._buffer = state["buffer"].clone()

    def negatives(self) -> Optional[torch.Tensor]:
        """The current persistent chains (``None`` before the first call)."""
        return self._buffer


@OBJECTIVES.register("short_run")
class ShortRunMLE(_MCMCObjective):
    """Short-run MLE (Nijkamp et al. 2019): every iteration starts fresh chains from the noise ``init``.

    Loss as in :class:`ContrastiveDivergence`; ``n_steps`` default 50, sampler ``"ula"`` with step size 0.01.
    """

    name = "short_run"

    def __init__(self, sampler: Union[str, Sampler] = "ula", n_steps: int = 50, step_size: Optional[float] = None,
                 init: Union[str, InitFn] = "uniform", energy_reg: float = 0.0):
        if isinstance(sampler, str) and step_size is None:
            step_size = 0.01
        super().__init__(sampler, n_steps, step_size, energy_reg)
        self.init = _make_init(init)

    def prepare(self, data: torch.Tensor) -> None:
        if hasattr(self.init, "prepare"):
            self.init.prepare(data)

    def __call__(self, energy, batch, generator=None) -> LossOutput:
        x0 = self.init(batch.shape[0], batch, generator)
        neg, acc, _ = run_chains(energy, self.sampler, x0, self.n_steps, generator)
        return self._loss(energy, batch, neg, acc)
