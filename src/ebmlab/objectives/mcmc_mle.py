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
from ..samplers.adaptation import DualAveraging, DualAveragingState
from ..samplers.base import Sampler
from ..samplers.driver import resolve_sampler, sample
from .base import OBJECTIVES, LossOutput, Objective

InitFn = Callable[[int, torch.Tensor, Optional[torch.Generator]], torch.Tensor]


def importance_ess_fraction(log_weights: torch.Tensor) -> float:
    r"""Effective sample size fraction of unnormalised log importance weights.

    .. math:: \mathrm{ESS}/n = \frac{(\sum_j w_j)^2}{n \sum_j w_j^2}
              = \exp\big(2\,\mathrm{lse}(\log w) - \mathrm{lse}(2 \log w) - \log n\big) \in [1/n, 1]

    (Kong 1992; Liu 2001, Sec. 2.5.3), computed in log space.
    """
    from ..metrics.mcmc_diagnostics import importance_ess

    return importance_ess(log_weights) / log_weights.numel()


@OBJECTIVES.register("mcmc_mle")
class MCMCMLE(Objective):
    r"""MCMC-MLE: maximum likelihood with importance-reweighted MCMC reference samples (Geyer 1994).

    Loss for a data batch x_1..x_N and stored reference samples y_1..y_n with stored reference
    energies U_ψ(y_j):

    .. math::
        L(θ) = \frac1N \sum_i U_θ(x_i) + \log \frac1n \sum_j \exp\big(U_ψ(y_j) - U_θ(y_j)\big),

    an estimate of -(ℓ(θ) - ℓ(ψ)) (Geyer & Thompson 1992).  Before each evaluation the ESS fraction of
    the weights w_j ∝ exp(U_ψ(y_j) - U_θ(y_j)) (:func:`importance_ess_fraction`) is computed; when it
    is below ``ess_threshold`` the reference is refreshed: ``steps`` sampler steps under the current
    model U_θ, started from the old reference samples (persistent chains), then ψ := θ, i.e.
    U_ψ(y_j) := U_θ(y_j) (all weights equal again).

    Initial reference (first call): ``init(n_samples, batch, generator)`` if given (the PCD ``init``
    signature), otherwise ``n_samples`` rows of the first batch drawn with replacement, plus
    N(0, ``init_noise``²) noise for continuous energies (no noise for ``energy.discrete``), followed by
    ``burn_in`` sampler steps under the initial model.

    All chains run through the one chain runner, :func:`ebmlab.samplers.sample`. When the sampler is adaptive
    (MALA, HMC, RWM), its step size is tuned by dual averaging (:class:`~ebmlab.samplers.DualAveraging`, Hoffman &
    Gelman 2014) during the initial burn-in; afterwards the same dual-averaging recursion is continued once per
    refresh, on that refresh's mean acceptance, and the averaged step size h̄ is used for the next refresh, so
    within one refresh the kernel is fixed and each refresh is a valid MCMC run.  The adapted step size stays
    within [h0/100, 10·h0] of the sampler's own h0: on a nearly flat untrained energy every proposal is accepted
    and unbounded adaptation would send the chains far outside the data, where a network energy extrapolates
    arbitrarily.

    Parameters
    ----------
    sampler : Sampler or str
        A sampler object or a registered name built once with its defaults (default ``"mala"``; any sampler under
        the contract, e.g. Gibbs for discrete exponential families).
    n_samples : int
        Number n of reference samples (default 1000).
    steps : int
        Sampler steps per refresh (default 20).
    ess_threshold : float
        Refresh when ESS/n < ess_threshold, in (0, 1] (default 0.5; 1 refreshes every iteration).
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

    def __init__(self, sampler: Union[str, Sampler] = "mala", n_samples: int = 1000, steps: int = 20,
                 ess_threshold: float = 0.5, burn_in: int = 100, init: Optional[InitFn] = None,
                 init_noise: float = 0.1):
        self.sampler = resolve_sampler(sampler)
        self.n_samples = check_int("n_samples", n_samples, minimum=2)
        self.steps = check_int("steps", steps, minimum=1)
        self.ess_threshold = check_probability("ess_threshold", ess_threshold, open_low=True)
        self.burn_in = check_int("burn_in", burn_in, minimum=0)
        if init is not None and not callable(init):
            raise ConfigError(f"init must be a callable init(n, like, generator) or None, got {init!r}")
        self.init = init
        self.init_noise = check_positive("init_noise", init_noise, allow_zero=True)
        self._ref: Optional[torch.Tensor] = None
        self._u_ref: Optional[torch.Tensor] = None
        self._step_size: Optional[float] = None
        self._da_state: Optional[DualAveragingState] = None
        self.refreshes = 0
        self.last_acceptance = float("nan")
        self.last_stuck_fraction = 0.0

    def __repr__(self) -> str:
        return (f"MCMCMLE(sampler={self.sampler!r}, n_samples={self.n_samples}, steps={self.steps}, "
                f"ess_threshold={self.ess_threshold}, burn_in={self.burn_in}, init={self.init!r}, "
                f"init_noise={self.init_noise})")

    @property
    def _adaptive(self) -> bool:
        return bool(self.sampler.adaptive) and self.sampler.target_accept is not None

    def _dual_averaging(self) -> DualAveraging:
        h0 = float(self.sampler.step_size)
        return DualAveraging(self.sampler.target_accept, bounds=(h0 / 100.0, 10.0 * h0))

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

    def _run(self, energy, x0: torch.Tensor, steps: int, generator: Optional[torch.Generator],
             burn_in: bool = False) -> torch.Tensor:
        adaptive = self._adaptive
        if burn_in:
            # the initial run: dual averaging from the sampler's own step size, every step
            h0 = float(self.sampler.step_size) if adaptive else None
            x, info = sample(energy, self.sampler, x0, 1, burn_in=steps, adapt=adaptive, keep="last", warn=False,
                             step_size_bounds=(h0 / 100.0, 10.0 * h0) if adaptive else None, generator=generator)
            if adaptive:
                self._da_state = info.adaptation_state
                self._step_size = float(info.step_size)
        else:
            x, info = sample(energy, self.sampler, x0, steps, adapt=False, keep="last", warn=False,
                             step_size=self._step_size if adaptive else None, generator=generator)
            if adaptive:
                da = self._dual_averaging()
                if self._da_state is None:
                    self._da_state = da.init(float(info.step_size))
                self._da_state = da.update(self._da_state, info.acceptance_rate)
                self._step_size = float(da.final(self._da_state))
        self.last_acceptance = info.acceptance_rate
        self.last_stuck_fraction = info.stuck_fraction
        return x.detach()

    def refresh(self, energy, generator: Optional[torch.Generator] = None, steps: Optional[int] = None,
                burn_in: bool = False) -> None:
        """Re-sample the reference from the current model (persistent chains) and set ψ := θ.

        ``burn_in=True`` (the initial run) adapts an adaptive sampler's step size at every step.
        """
        if self._ref is None:
            raise ConfigError("MCMCMLE.refresh needs reference samples; call the objective on a data batch first")
        n = self.steps if steps is None else steps
        if n > 0:
            self._ref = self._run(energy, self._ref, n, generator, burn_in=burn_in)
        with torch.no_grad():
            self._u_ref = energy(self._ref).detach()
        self.refreshes += 1

    # -- objective ---------------------------------------------------------------------------------
    def __call__(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> LossOutput:
        if self._ref is None or self._ref.shape[1:] != batch.shape[1:]:
            self._ref = self._initial(energy, batch, generator)
            self.refresh(energy, generator, steps=self.burn_in, burn_in=True)
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
            "stuck_fraction": self.last_stuck_fraction,
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
        if self._da_state is not None:
            d = self._da_state
            state["dual_averaging"] = torch.tensor([d.t, d.log_step, d.log_step_avg, d.error_avg, d.mu],
                                                   dtype=torch.float64)
        return state

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        unknown = set(state) - {"reference", "reference_energy", "refreshes", "step_size", "dual_averaging"}
        if unknown:
            raise ValueError(f"unexpected keys in an MCMC-MLE state: {sorted(unknown)}")
        if "reference" in state:
            self._ref = state["reference"].clone()
            self._u_ref = state["reference_energy"].clone()
            self.refreshes = int(state.get("refreshes", torch.tensor(0)))
        if "step_size" in state:
            self._step_size = float(state["step_size"])
        if "dual_averaging" in state:
            t, log_step, log_step_avg, error_avg, mu = (float(v) for v in state["dual_averaging"])
            self._da_state = DualAveragingState(t=int(t), log_step=log_step, log_step_avg=log_step_avg,
                                                error_avg=error_avg, mu=mu)

    def to(self, device=None) -> "MCMCMLE":
        if self._ref is not None and device is not None:
            self._ref, self._u_ref = self._ref.to(device), self._u_ref.to(device)
        return self
