"""Monte Carlo maximum likelihood with importance-reweighted reference samples (Geyer & Thompson 1992; Geyer 1994).

For p_θ = exp(-U_θ)/Z_θ and samples y_1..y_n from a reference model p_ψ,

    Z_θ / Z_ψ = E_{p_ψ}[exp(U_ψ(y) - U_θ(y))] ≈ (1/n) Σ_j exp(U_ψ(y_j) - U_θ(y_j)),

so the negative log-likelihood ratio -(ℓ(θ) - ℓ(ψ)) of a data batch is estimated by

    L(θ) = (1/N) Σ_i U_θ(x_i) + log (1/n) Σ_j exp(U_ψ(y_j) - U_θ(y_j))     (+ terms free of θ),

whose gradient is the MLE gradient with the model expectation replaced by a self-normalised
importance-sampling average: ∇L = mean_i ∇U_θ(x_i) - Σ_j w̃_j ∇U_θ(y_j), w̃_j ∝ exp(U_ψ(y_j) - U_θ(y_j)).
The approximation degrades as θ moves away from ψ; Geyer's remedy is to re-sample the reference
when the importance weights degenerate, measured by their effective sample size
ESS = (Σ_j w_j)² / Σ_j w_j² (Kong 1992).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Union

import torch

from .._core.errors import ConfigError
from .._core.validation import check_int, check_positive, check_probability
from ..samplers.base import Sampler, build as build_sampler
from .base import OBJECTIVES, LossOutput, Objective

InitFn = Callable[[int, torch.Tensor, Optional[torch.Generator]], torch.Tensor]


def importance_ess_fraction(log_weights: torch.Tensor) -> float:
    r"""Effective sample size fraction of unnormalised log importance weights.

    .. math:: \mathrm{ESS}/n = \frac{(\sum_j w_j)^2}{n \sum_j w_j^2}
              = \exp\big(2\,\mathrm{lse}(\log w) - \mathrm{lse}(2 \log w) - \log n\big) \in [1/n, 1]

    (Kong 1992; Liu 2001, Sec. 2.5.3), computed in log space.
    """
    lw = log_weights.detach().double().reshape(-1)
    n = lw.numel()
    return float(torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0) - math.log(n)))


@OBJECTIVES.register("mcmc_mle")
class MCMCMLE(Objective):
    r"""MCMC-MLE: maximum likelihood with importance-reweighted MCMC reference samples (Geyer 1994).

    Loss for a data batch x_1..x_N and stored reference samples y_1..y_n with stored reference
    energies U_ψ(y_j):

    .. math::
        L(θ) = \frac1N \sum_i U_θ(x_i) + \log \frac1n \sum_j \exp\big(U_ψ(y_j) - U_θ(y_j)\big),

    an estimate of -(ℓ(θ) - ℓ(ψ)) (Geyer & Thompson 1992).  Before each evaluation the ESS fraction of
    the weights w_j ∝ exp(U_ψ(y_j) - U_θ(y_j)) (:func:`importance_ess_fraction`) is computed; when it
    is below ``ess_threshold`` the reference is refreshed: ``n_steps`` sampler steps under the current
    model U_θ, started from the old reference samples (persistent chains), then ψ := θ, i.e.
    U_ψ(y_j) := U_θ(y_j) (all weights equal again).

    Initial reference (first call): ``init(n_samples, batch, generator)`` if given (the PCD ``init``
    signature), otherwise ``n_samples`` rows of the first batch drawn with replacement, plus
    N(0, ``init_noise``²) noise for continuous energies (no noise for ``energy.discrete``), followed by
    ``burn_in`` sampler steps under the initial model.

    When the sampler is adaptive (has a ``target_accept``, e.g. MALA), its step size is adapted: after
    every step of the initial burn-in, h ← h·exp(½(acceptance - target_accept)), then once per refresh,
    h ← h·exp(mean acceptance - target_accept); within one refresh the kernel is fixed, so each refresh
    is a valid MCMC run.  The adapted step size stays within [h0/100, 10·h0] of the sampler's own h0:
    on a nearly flat untrained energy every proposal is accepted and unbounded adaptation would send
    the chains far outside the data, where a network energy extrapolates arbitrarily.

    Parameters
    ----------
    sampler : str or Sampler
        Sampler name or object (default ``"mala"``; any sampler under the contract, e.g. Gibbs for
        discrete exponential families).
    n_samples : int
        Number n of reference samples (default 1000).
    n_steps : int
        Sampler steps per refresh (default 20).
    ess_threshold : float
        Refresh when ESS/n < ess_threshold, in (0, 1] (default 0.5; 1 refreshes every iteration).
    step_size : float, optional
        Step size when the sampler is given by name (default: 0.01).
    burn_in : int
        Sampler steps on the initial reference (default 100).
    init : callable, optional
        ``init(n, like, generator) -> Tensor[n, *like.shape[1:]]`` for the initial reference.
    init_noise : float
        Standard deviation of the noise added to data rows for the default initial reference (default 0.1).
    """

    name = "mcmc_mle"
    needs_sampler = True
    #: the default sampler (MALA) is continuous; with a Gibbs sampler MCMC-MLE works on {0,1} data
    continuous = True

    def __init__(self, sampler: Union[str, Sampler] = "mala", n_samples: int = 1000, n_steps: int = 20,
                 ess_threshold: float = 0.5, step_size: Optional[float] = None, burn_in: int = 100,
                 init: Optional[InitFn] = None, init_noise: float = 0.1):
        if isinstance(sampler, Sampler):
            if step_size is not None:
                raise ConfigError("step_size applies only when the sampler is given by name; set it on the Sampler object")
            self.sampler = sampler
        elif isinstance(sampler, str):
            self.sampler = build_sampler(sampler, step_size=check_positive("step_size", 0.01 if step_size is None else step_size))
        else:
            raise ConfigError(f"sampler must be a sampler name or a Sampler object, got {sampler!r}")
        self.n_samples = check_int("n_samples", n_samples, minimum=2)
        self.n_steps = check_int("n_steps", n_steps, minimum=1)
        self.ess_threshold = check_probability("ess_threshold", ess_threshold, open_low=True)
        self.burn_in = check_int("burn_in", burn_in, minimum=0)
        if init is not None and not callable(init):
            raise ConfigError(f"init must be a callable init(n, like, generator) or None, got {init!r}")
        self.init = init
        self.init_noise = check_positive("init_noise", init_noise, allow_zero=True)
        self._ref: Optional[torch.Tensor] = None
        self._u_ref: Optional[torch.Tensor] = None
        self._step_size: Optional[float] = None
        self.refreshes = 0
        self.last_acceptance = float("nan")

    def __repr__(self) -> str:
        return (f"MCMCMLE(sampler={self.sampler!r}, n_samples={self.n_samples}, n_steps={self.n_steps}, "
                f"ess_threshold={self.ess_threshold}, burn_in={self.burn_in}, init={self.init!r}, "
                f"init_noise={self.init_noise})")

    # -- reference samples -------------------------------------------------------------------------
    @property
    def reference(self) -> Optional[torch.Tensor]:
        """The current reference samples y_j (``None`` before the first call)."""
        return self._ref

    def _initial(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        if self.init is not None:
            x0 = self.init(self.n_samples, batch, generator)
            if tuple(x0.shape) != (self.n_samples, *batch.shape[1:]):
                raise ConfigError(f"init returned shape {tuple(x0.shape)}; expected {(self.n_samples, *batch.shape[1:])}")
            return x0.detach().to(batch)
        idx = torch.randint(0, batch.shape[0], (self.n_samples,), generator=generator, device=batch.device)
        x0 = batch[idx].detach().clone()
        if not getattr(energy, "discrete", False) and self.init_noise > 0:
            x0 = x0 + self.init_noise * torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=generator)
        return x0

    def _run(self, energy, x0: torch.Tensor, n_steps: int, generator: Optional[torch.Generator],
             adapt_every_step: bool = False) -> torch.Tensor:
        state = self.sampler.init(energy, x0)
        target = getattr(self.sampler, "target_accept", None)
        adaptive = bool(getattr(self.sampler, "adaptive", False)) and target is not None
        if self._step_size is not None and adaptive:
            state = state.replace(step_size=self._step_size)
        acc = 0.0
        for _ in range(n_steps):
            state, info = self.sampler.step(energy, state, generator=generator)
            rate = float(info.acceptance_rate.detach().double().mean())
            acc += rate
            if adaptive and adapt_every_step:
                h = self._clamp_step(float(state.step_size) * math.exp(0.5 * (rate - float(target))))
                state = state.replace(step_size=h)
        acc /= max(n_steps, 1)
        self.last_acceptance = acc
        if adaptive and n_steps > 0:
            factor = 1.0 if adapt_every_step else math.exp(acc - float(target))
            self._step_size = self._clamp_step(float(state.step_size) * factor)
        return state.x.detach()

    def _clamp_step(self, h: float) -> float:
        """Keep an adapted step size within [h0/100, 10 h0] of the sampler's own step size h0."""
        h0 = float(self.sampler.step_size)
        return min(max(h, h0 / 100.0), 10.0 * h0)

    def refresh(self, energy, generator: Optional[torch.Generator] = None, n_steps: Optional[int] = None,
                burn_in: bool = False) -> None:
        """Re-sample the reference from the current model (persistent chains) and set ψ := θ.

        ``burn_in=True`` (the initial run) adapts an adaptive sampler's step size after every step.
        """
        if self._ref is None:
            raise ConfigError("MCMCMLE.refresh needs reference samples; call the objective on a data batch first")
        self._ref = self._run(energy, self._ref, self.n_steps if n_steps is None else n_steps, generator,
                              adapt_every_step=burn_in)
        with torch.no_grad():
            self._u_ref = energy(self._ref).detach()
        self.refreshes += 1

    # -- objective ---------------------------------------------------------------------------------
    def __call__(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> LossOutput:
        if self._ref is None or self._ref.shape[1:] != batch.shape[1:]:
            self._ref = self._initial(energy, batch, generator)
            self.refresh(energy, generator, n_steps=self.burn_in, burn_in=True)
        ref = self._ref.to(batch)
        u_ref_theta = energy(ref)
        log_w = self._u_ref.to(u_ref_theta) - u_ref_theta
        ess = importance_ess_fraction(log_w)
        refreshed = False
        if ess < self.ess_threshold:
            self.refresh(energy, generator)
            ref = self._ref.to(batch)
            u_ref_theta = energy(ref)
            log_w = self._u_ref.to(u_ref_theta) - u_ref_theta
            ess_after = importance_ess_fraction(log_w)
            refreshed = True
        else:
            ess_after = ess
        u_data = energy(batch)
        log_z_ratio = torch.logsumexp(log_w, 0) - math.log(log_w.numel())
        loss = u_data.mean() + log_z_ratio
        stats: Dict[str, float] = {
            "ess_fraction": ess_after,
            "ess_fraction_before_refresh": ess,
            "refreshed": float(refreshed),
            "refreshes": float(self.refreshes),
            "log_z_ratio": float(log_z_ratio.detach()),
            "energy_data": float(u_data.detach().mean()),
            "energy_ref": float(u_ref_theta.detach().mean()),
            "acceptance": self.last_acceptance,
        }
        if self._step_size is not None:
            stats["step_size"] = self._step_size
        return LossOutput(loss, stats)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        if self._ref is None:
            return {}
        state = {"reference": self._ref.detach().cpu(), "reference_energy": self._u_ref.detach().cpu(),
                 "refreshes": torch.tensor(self.refreshes, dtype=torch.int64)}
        if self._step_size is not None:
            state["step_size"] = torch.tensor(self._step_size, dtype=torch.float64)
        return state

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        unknown = set(state) - {"reference", "reference_energy", "refreshes", "step_size"}
        if unknown:
            raise ValueError(f"unexpected keys in an MCMC-MLE state: {sorted(unknown)}")
        if "reference" in state:
            self._ref = state["reference"].clone()
            self._u_ref = state["reference_energy"].clone()
            self.refreshes = int(state.get("refreshes", torch.tensor(0)))
        if "step_size" in state:
            self._step_size = float(state["step_size"])

    def to(self, device=None) -> "MCMCMLE":
        if self._ref is not None and device is not None:
            self._ref, self._u_ref = self._ref.to(device), self._u_ref.to(device)
        return self
