"""Replay buffer of persistent chains (PCD, Tieleman 2008; JEM, Grathwohl et al. 2020; Du & Mordatch 2019)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int, check_probability


class ReplayBuffer:
    r"""A fixed-size store of sampler states that persistent chains start from.

    :meth:`sample` draws ``n_samples`` distinct stored rows uniformly (without replacement) and replaces
    each one, independently with probability ``reinit_prob``, by a fresh draw from ``noise``
    (Du & Mordatch 2019 use 5%; it keeps the chains from collapsing onto few modes). After running
    the sampler from the returned states, write them back with :meth:`update`. The buffer is filled
    lazily: the first :meth:`sample` fills all ``buffer_size`` rows from ``noise(buffer_size, generator)``,
    which also fixes the event shape, dtype and device.

    Parameters
    ----------
    buffer_size : int
        Number of stored states, >= 1.
    reinit_prob : float
        Probability in [0, 1] that a sampled row is replaced by fresh noise.
    noise : callable
        ``noise(n, generator) -> Tensor[n, *event_shape]``, the reinitialisation law.

    Examples
    --------
    >>> buf = ReplayBuffer(100, 0.05, lambda n, generator: torch.rand(n, 2, generator=generator) * 2 - 1)
    >>> x, idx = buf.sample(16, generator=torch.Generator().manual_seed(0))
    >>> buf.update(idx, x + 0.1)
    """

    def __init__(self, buffer_size: int, reinit_prob: float, noise: Callable[[int, Optional[torch.Generator]], torch.Tensor]):
        self.buffer_size = check_int("buffer_size", buffer_size, minimum=1)
        self.reinit_prob = check_probability("reinit_prob", reinit_prob)
        if not callable(noise):
            raise ConfigError(f"noise must be a callable noise(n, generator) -> Tensor[n, ...], got {noise!r}")
        self.noise = noise
        self.data: Optional[torch.Tensor] = None
        #: fraction of the rows returned by the last :meth:`sample` that were fresh noise
        self.last_reinit_fraction = 0.0

    def __len__(self) -> int:
        return 0 if self.data is None else self.buffer_size

    def _draw_noise(self, n: int, generator: Optional[torch.Generator]) -> torch.Tensor:
        x = self.noise(n, generator)
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] != n:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"noise({n}, generator) must return a Tensor with {n} rows, got {shape}")
        if self.data is not None and (x.shape[1:] != self.data.shape[1:] or x.dtype != self.data.dtype):
            raise DataError(
                f"noise returned rows of shape {tuple(x.shape[1:])} / {x.dtype}, the buffer holds "
                f"{tuple(self.data.shape[1:])} / {self.data.dtype}"
            )
        return x.detach()

    def sample(self, n_samples: int, generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n_samples`` <= buffer_size distinct rows; each is fresh noise with probability ``reinit_prob``.

        Returns
        -------
        x : Tensor[n_samples, *event_shape]
            A new tensor (editing it does not change the buffer).
        idx : Tensor[n_samples] (int64)
            The rows drawn, to pass to :meth:`update`.
        """
        n = check_int("n_samples", n_samples, minimum=1, maximum=self.buffer_size)
        if self.data is None:
            self.data = self._draw_noise(self.buffer_size, generator).clone()
        device = self.data.device
        gdev = generator.device if generator is not None else device
        idx = torch.randperm(self.buffer_size, generator=generator, device=gdev)[:n].to(device)
        x = self.data[idx]
        if self.reinit_prob > 0:
            fresh = self._draw_noise(n, generator).to(device)
            u = torch.rand(n, generator=generator, device=gdev).to(device)
            fresh_rows = u < self.reinit_prob
            self.last_reinit_fraction = float(fresh_rows.float().mean())
            x = torch.where(fresh_rows.reshape((n,) + (1,) * (x.ndim - 1)), fresh, x)
        else:
            self.last_reinit_fraction = 0.0
        return x, idx

    def update(self, idx: torch.Tensor, x: torch.Tensor) -> None:
        """Store ``x`` (detached) in rows ``idx``, in place (the buffer is never copied)."""
        if self.data is None:
            raise ConfigError("ReplayBuffer.update called before sample(): there are no rows to update yet")
        if x.shape[0] != idx.shape[0] or x.shape[1:] != self.data.shape[1:]:
            raise DataError(
                f"update got x of shape {tuple(x.shape)} for {idx.shape[0]} indices; rows must have shape "
                f"{tuple(self.data.shape[1:])}"
            )
        self.data[idx.to(self.data.device)] = x.detach().to(self.data.dtype)

    def state_dict(self) -> Dict[str, Any]:
        """Tensors and settings (the ``noise`` callable is not saved: pass it to the constructor)."""
        return {"buffer_size": self.buffer_size, "reinit_prob": self.reinit_prob, "data": self.data}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        data = state.get("data")
        if data is not None and (not isinstance(data, torch.Tensor) or data.shape[0] != int(state["buffer_size"])):
            raise DataError("ReplayBuffer state has data whose row count does not match its buffer_size")
        self.buffer_size = check_int("buffer_size", state["buffer_size"], minimum=1)
        self.reinit_prob = check_probability("reinit_prob", state["reinit_prob"])
        self.data = None if data is None else data.detach().clone()
