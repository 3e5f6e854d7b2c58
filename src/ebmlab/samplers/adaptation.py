"""Step-size adaptation by dual averaging (Hoffman & Gelman 2014, JMLR 15, "The No-U-Turn
Sampler", Algorithm 5; Nesterov 2009)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch

from .._core.errors import ConfigError
from .._core.validation import check_positive, check_probability

Scalar = Union[float, torch.Tensor]


@dataclass(frozen=True)
class DualAveragingState:
    """Explicit state of :class:`DualAveraging` after ``t`` updates.

    Attributes
    ----------
    t : int
        Number of updates so far.
    log_step : float
        log h_t, the step size to use next.
    log_step_avg : float
        log h̄_t, the weighted average that is used after adaptation.
    error_avg : float
        H̄_t, the running average of (target - acceptance).
    mu : float
        Shrinkage point log(10 h_0).
    """

    t: int
    log_step: Scalar
    log_step_avg: Scalar
    error_avg: Scalar
    mu: Scalar

    @property
    def step_size(self) -> Scalar:
        """The step size to use for the next iteration, h_t = exp(log h_t) (a Tensor[chains] per chain)."""
        if isinstance(self.log_step, torch.Tensor):
            return torch.exp(self.log_step)
        return math.exp(self.log_step)


class DualAveraging:
    r"""Dual-averaging step-size adaptation toward a target mean acceptance δ.

    With α_t the mean acceptance probability observed at iteration t (Hoffman & Gelman 2014, Alg. 5):

    .. math::
        \bar H_t = (1 - \tfrac{1}{t + t_0}) \bar H_{t-1} + \tfrac{1}{t + t_0} (\delta - \alpha_t), \\
        \log h_t = \mu - \tfrac{\sqrt t}{\gamma} \bar H_t, \qquad
        \log \bar h_t = t^{-\kappa} \log h_t + (1 - t^{-\kappa}) \log \bar h_{t-1},

    with μ = log(10 h_0), H̄_0 = 0, log h̄_0 = 0. During burn-in use ``state.step_size`` (h_t);
    afterwards freeze the step at :meth:`final` (h̄_t).

    **Per chain.** Given a Tensor[chains] of step sizes to :meth:`init` and a Tensor[chains] of acceptance
    probabilities to :meth:`update`, the same recursion runs independently for each chain (elementwise; t is
    shared), which is what ``ebmlab.sample(..., adapt="per_chain")`` uses.

    **Bounds.** With ``bounds=(h_min, h_max)`` every log h_t (and so h̄_t) is clipped to [log h_min, log h_max]:
    on a nearly flat energy (an untrained network) every proposal is accepted and the unclipped recursion would
    grow h without limit.

    **NaN semantics.** A NaN acceptance probability counts as 0 (a step that produced NaNs is a rejection);
    values are clipped to [0, 1].

    Parameters
    ----------
    target_accept : float
        δ in (0, 1).
    gamma, t0, kappa : float
        Defaults 0.05, 10, 0.75 as in the paper (and Stan).
    bounds : (float, float), optional
        (h_min, h_max) with 0 < h_min <= h_max.

    Examples
    --------
    >>> da = DualAveraging(0.65)
    >>> s = da.init(0.1)
    >>> s = da.update(s, accept_prob=0.9)   # accepted too often -> larger step
    >>> s.step_size > 0.1
    True
    """

    def __init__(self, target_accept: float, gamma: float = 0.05, t0: float = 10.0, kappa: float = 0.75,
                 bounds: Optional[Tuple[float, float]] = None):
        self.target_accept = check_probability("target_accept", target_accept, open_low=True, open_high=True)
        self.gamma = check_positive("gamma", gamma)
        self.t0 = check_positive("t0", t0, allow_zero=True)
        self.kappa = check_positive("kappa", kappa)
        if bounds is not None:
            try:
                lo, hi = (check_positive("bounds[0]", bounds[0]), check_positive("bounds[1]", bounds[1]))
            except (TypeError, IndexError):
                raise ConfigError(f"bounds must be a pair (h_min, h_max), got {bounds!r}") from None
            if lo > hi:
                raise ConfigError(f"bounds must satisfy h_min <= h_max, got {bounds!r}")
            bounds = (math.log(lo), math.log(hi))
        self._log_bounds = bounds

    def _clip(self, log_h: Scalar) -> Scalar:
        if self._log_bounds is None:
            return log_h
        lo, hi = self._log_bounds
        if isinstance(log_h, torch.Tensor):
            return log_h.clamp(lo, hi)
        return min(max(log_h, lo), hi)

    def init(self, step_size: Scalar) -> DualAveragingState:
        """Start from h_0 = ``step_size`` (a float, or a Tensor[chains] for per-chain adaptation)."""
        if isinstance(step_size, torch.Tensor):
            h0 = step_size.detach().to(torch.float64)
            if not bool(torch.isfinite(h0).all()) or not bool((h0 > 0).all()):
                raise ConfigError("every per-chain step_size must be finite and > 0")
            log_h = self._clip(torch.log(h0))
            return DualAveragingState(t=0, log_step=log_h, log_step_avg=torch.zeros_like(h0),
                                      error_avg=torch.zeros_like(h0), mu=torch.log(10.0 * h0))
        h0 = check_positive("step_size", step_size)
        return DualAveragingState(t=0, log_step=self._clip(math.log(h0)), log_step_avg=0.0, error_avg=0.0,
                                  mu=math.log(10.0 * h0))

    def update(self, state: DualAveragingState, accept_prob: Scalar) -> DualAveragingState:
        """One dual-averaging update from the acceptance probability of the last step: a float (the mean over
        chains), or a Tensor[chains] when the state is per chain."""
        t = state.t + 1
        w = 1.0 / (t + self.t0)
        eta = t ** (-self.kappa)
        if isinstance(state.log_step, torch.Tensor):
            if not isinstance(accept_prob, torch.Tensor) or accept_prob.shape != state.log_step.shape:
                shape = tuple(accept_prob.shape) if isinstance(accept_prob, torch.Tensor) else "a float"
                raise ConfigError(f"a per-chain DualAveraging state needs one acceptance per chain "
                                  f"{tuple(state.log_step.shape)}, got {shape}")
            a = accept_prob.detach().to(state.log_step).nan_to_num(nan=0.0).clamp(0.0, 1.0)
        else:
            a = float(accept_prob)
            if not math.isfinite(a):
                a = 0.0
            a = min(max(a, 0.0), 1.0)
        error_avg = (1.0 - w) * state.error_avg + w * (self.target_accept - a)
        log_step = self._clip(state.mu - math.sqrt(t) / self.gamma * error_avg)
        log_step_avg = eta * log_step + (1.0 - eta) * state.log_step_avg
        return DualAveragingState(t=t, log_step=log_step, log_step_avg=log_step_avg, error_avg=error_avg, mu=state.mu)

    def final(self, state: DualAveragingState) -> Scalar:
        """The adapted step size h̄ = exp(log h̄_t) (the initial h_0 if no update was made)."""
        log_h = state.log_step if state.t == 0 else state.log_step_avg
        if isinstance(log_h, torch.Tensor):
            return torch.exp(log_h)
        return math.exp(log_h)
