"""Step-size adaptation by dual averaging (Hoffman & Gelman 2014, JMLR 15, "The No-U-Turn
Sampler", Algorithm 5; Nesterov 2009)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .._core.validation import check_positive, check_probability


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
    log_step: float
    log_step_avg: float
    error_avg: float
    mu: float

    @property
    def step_size(self) -> float:
        """The step size to use for the next iteration, h_t = exp(log h_t)."""
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

    Parameters
    ----------
    target_accept : float
        δ in (0, 1).
    gamma, t0, kappa : float
        Defaults 0.05, 10, 0.75 as in the paper (and Stan).

    Examples
    --------
    >>> da = DualAveraging(0.65)
    >>> s = da.init(0.1)
    >>> s = da.update(s, accept_prob=0.9)   # accepted too often -> larger step
    >>> s.step_size > 0.1
    True
    """

    def __init__(self, target_accept: float, gamma: float = 0.05, t0: float = 10.0, kappa: float = 0.75):
        self.target_accept = check_probability("target_accept", target_accept, open_low=True, open_high=True)
        self.gamma = check_positive("gamma", gamma)
        self.t0 = check_positive("t0", t0, allow_zero=True)
        self.kappa = check_positive("kappa", kappa)

    def init(self, step_size: float) -> DualAveragingState:
        h0 = check_positive("step_size", step_size)
        return DualAveragingState(t=0, log_step=math.log(h0), log_step_avg=0.0, error_avg=0.0, mu=math.log(10.0 * h0))

    def update(self, state: DualAveragingState, accept_prob: float) -> DualAveragingState:
        """One dual-averaging update from the mean acceptance probability of the last step
        (NaN counts as 0: a step that produced NaNs is treated as a rejection)."""
        a = float(accept_prob)
        if not math.isfinite(a):
            a = 0.0
        a = min(max(a, 0.0), 1.0)
        t = state.t + 1
        w = 1.0 / (t + self.t0)
        error_avg = (1.0 - w) * state.error_avg + w * (self.target_accept - a)
        log_step = state.mu - math.sqrt(t) / self.gamma * error_avg
        eta = t ** (-self.kappa)
        log_step_avg = eta * log_step + (1.0 - eta) * state.log_step_avg
        return DualAveragingState(t=t, log_step=log_step, log_step_avg=log_step_avg, error_avg=error_avg, mu=state.mu)

    def final(self, state: DualAveragingState) -> float:
        """The adapted step size h̄ = exp(log h̄_t) (the initial h_0 if no update was made)."""
        if state.t == 0:
            return math.exp(state.log_step)
        return math.exp(state.log_step_avg)
