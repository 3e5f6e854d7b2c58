"""Monte Carlo MLE with standard errors for any discrete exponential-family energy (Ising models, ...).

An exponential-family energy exposes ``statistics(x) -> Tensor[batch, p]`` and ``theta`` with
U(x) = -theta . T(x) (ebmlab's :class:`~ebmlab.energies.Ising` and :class:`~ebmlab.energies.IsingLattice`).
For N i.i.d. observations x_1..x_N the log-likelihood is

    l(theta) = N [theta . T_bar - log Z(theta)],   T_bar = (1/N) sum_n T(x_n),

and :func:`fit_exponential_family` maximises it with the same driver as the ERGM's MCMC-MLE
(:func:`.geyer_thompson.geyer_thompson_mle`: Geyer & Thompson 1992 importance sampling with Hummel, Hunter &
Handcock 2012's step length, damped restarts when the chains do not mix). Simulation runs the library's chain
runner (:func:`ebmlab.samplers.sample`, single-site :class:`~ebmlab.samplers.Gibbs` by default) on
:class:`TiltedStatistics`, the energy U_theta(x) = -theta . T(x) at each trial theta, with ``n_chains``
independent chains started from data rows and continued between iterations. Standard errors: model part
I(theta_hat)^{-1} / N, MCMC part I^{-1} V I^{-1} (Hunter & Handcock 2006, §3.3), as for the ERGM.

The driver is numpy; this module only adapts a torch energy to it, so energies never depend on
``ebmlab.ergm``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..._core.errors import ConfigError, DataError
from ..._core.random import as_generator
from ..._core.validation import check_int, check_positive
from ...energies.base import Energy
from .geyer_thompson import SimulatedStatistics, geyer_thompson_mle

__all__ = ["TiltedStatistics", "ExponentialFamilyFit", "fit_exponential_family"]


class TiltedStatistics(Energy):
    """U_theta(x) = -theta . T(x), with the sufficient statistics T of another exponential-family energy.

    Parameters
    ----------
    base : Energy
        Provides ``statistics(x)`` (and ``n_sites`` / ``discrete``, copied here).
    theta : array-like [p]
        Natural parameters (a float64 buffer).
    """

    def __init__(self, base: Energy, theta):
        super().__init__()
        self.base = base
        self.discrete = bool(getattr(base, "discrete", False))
        if hasattr(base, "n_sites"):
            self.n_sites = base.n_sites
        self.register_buffer("theta", torch.as_tensor(np.asarray(theta, dtype=np.float64)).clone())

    def statistics(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.statistics(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.base.statistics(x)
        return -(t.to(torch.float64) @ self.theta).to(x.dtype)


@dataclass
class ExponentialFamilyFit:
    """Result of :func:`fit_exponential_family`.

    ``theta`` the MCMC-MLE (in the order of ``energy.theta``), ``stderr`` its standard errors (model + MCMC
    error; NaN where there is no information), ``mcmc_se`` the MCMC part, ``cov`` the covariance,
    ``converged`` (Hummel's criterion and a final sample that mixed), ``stderr_reliable`` (False when the
    information was singular or ill-conditioned), ``labels``, ``n_obs`` (N), ``energy`` a
    :class:`TiltedStatistics` at ``theta``, ``diagnostics`` (iterations, restarts, step length, effective
    sample size, condition number, history).
    """

    theta: np.ndarray
    stderr: np.ndarray
    mcmc_se: np.ndarray
    cov: np.ndarray
    converged: bool
    stderr_reliable: bool
    labels: List[str]
    n_obs: int
    energy: TiltedStatistics
    diagnostics: Dict[str, Any] = field(default_factory=dict)

    @property
    def z(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.theta / self.stderr


def _as_states(data, energy) -> torch.Tensor:
    x = torch.as_tensor(data)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    n = getattr(energy, "n_sites", None)
    if x.ndim != 2 or x.shape[0] < 1 or (n is not None and x.shape[1] != n):
        raise DataError(f"data must be a [N, {n if n is not None else 'n_sites'}] tensor of {{0,1}} states, got "
                        f"shape {tuple(x.shape)}")
    if not bool(((x == 0) | (x == 1)).all()):
        raise DataError("data must hold {0,1} states only")
    return x


def fit_exponential_family(energy: Energy, data, *, sampler: Union[str, Any] = "gibbs",
                           init: Optional[Sequence[float]] = None, n_chains: int = 32, n_samples: int = 1024,
                           burn_in: int = 100, warm_burn_in: int = 20, thin: int = 1, max_iter: int = 30,
                           margin: float = 0.05, final_sample_factor: int = 2, max_restarts: int = 10,
                           labels: Optional[Sequence[str]] = None,
                           generator: Union[torch.Generator, int, None] = None) -> ExponentialFamilyFit:
    """Fit the natural parameters of a discrete exponential-family energy by Monte Carlo MLE.

    Parameters
    ----------
    energy : Energy
        Has ``statistics(x)`` and ``theta`` (U = -theta . T); only its statistics are used, and it is not
        modified (the fit is in the result).
    data : Tensor [N, n_sites]
        Observed {0,1} states (i.i.d.).
    sampler : Sampler or str
        Discrete sampler for :func:`ebmlab.samplers.sample` (default single-site Gibbs).
    init : sequence of float, optional
        Starting theta (default ``energy.theta``).
    n_chains, n_samples : int
        Independent chains and draws per iteration (``n_samples / n_chains`` per chain).
    burn_in, warm_burn_in, thin : int
        Sampler steps before the first draw of fresh chains / of chains continued from the previous
        iteration, and between draws.
    max_iter, margin, final_sample_factor, max_restarts
        As in :func:`.geyer_thompson.geyer_thompson_mle`. The safe restart point is theta = 0 (the uniform
        distribution on {0,1}^n, where every chain mixes).
    labels : sequence of str, optional
        Names of the parameters (default ``theta[k]``).
    generator : torch.Generator or int, optional
        Randomness of the chains.
    """
    if not (hasattr(energy, "statistics") and hasattr(energy, "theta")):
        raise ConfigError(f"fit_exponential_family needs an exponential-family energy with statistics(x) and theta; "
                          f"{type(energy).__name__} has {'no statistics' if not hasattr(energy, 'statistics') else 'no theta'}")
    from ...samplers.driver import resolve_sampler, sample

    x = _as_states(data, energy)
    n_chains = check_int("n_chains", n_chains, minimum=4)
    n_samples = check_int("n_samples", n_samples, minimum=16)
    burn_in = check_int("burn_in", burn_in, minimum=0)
    warm_burn_in = check_int("warm_burn_in", warm_burn_in, minimum=0)
    thin = check_int("thin", thin)
    max_iter = check_int("max_iter", max_iter)
    margin = check_positive("margin", margin, allow_zero=True)
    final_sample_factor = check_int("final_sample_factor", final_sample_factor)
    max_restarts = check_int("max_restarts", max_restarts, minimum=0)
    sampler = resolve_sampler(sampler)
    g = as_generator(generator)
    with torch.no_grad():
        observed = energy.statistics(x).to(torch.float64).mean(0).numpy()
        theta0 = (np.asarray(init, dtype=np.float64) if init is not None
                  else energy.theta.detach().to(torch.float64).cpu().numpy().copy())
    p = observed.size
    if theta0.shape != (p,) or not np.all(np.isfinite(theta0)):
        raise ConfigError(f"init must hold {p} finite numbers (one per statistic), got {np.asarray(theta0).tolist()}")
    labels = [f"theta[{k}]" for k in range(p)] if labels is None else list(labels)
    if len(labels) != p:
        raise ConfigError(f"labels must name {p} parameters, got {len(labels)}")
    per_chain = max(2, -(-n_samples // n_chains))
    chains = {"x": None}

    def simulate(theta: np.ndarray, n_draws: int, fresh: bool) -> SimulatedStatistics:
        tilted = TiltedStatistics(energy, theta)
        if fresh or chains["x"] is None:
            x0, burn = x[torch.arange(n_chains) % x.shape[0]].clone(), burn_in
        else:
            x0, burn = chains["x"], warm_burn_in
        draws, info = sample(tilted, sampler, x0, n_draws * thin, burn_in=burn, thin=thin, generator=g,
                             warn=False)
        chains["x"] = info.state.x
        with torch.no_grad():
            stats = tilted.statistics(draws.reshape(-1, draws.shape[-1])).to(torch.float64)
        return SimulatedStatistics(stats.reshape(draws.shape[0], draws.shape[1], p).numpy(),
                                   float(info.acceptance_rate))

    gt = geyer_thompson_mle(observed, simulate, theta0, n_draws=per_chain, safe_theta=np.zeros(p),
                            n_obs=int(x.shape[0]), max_iter=max_iter, margin=margin,
                            final_sample_factor=final_sample_factor, max_restarts=max_restarts, labels=labels,
                            where="fit_exponential_family", move="proposal", safe_name="theta = 0")
    if not gt.converged and gt.problem is None:
        warnings.warn(f"fit_exponential_family did not converge in {max_iter} iterations (last step length "
                      f"{gt.step_length:.3f}); increase max_iter or n_samples, or check that the mean observed "
                      "statistics are not at the edge of what the model can produce (then the MLE does not exist)",
                      UserWarning, stacklevel=2)
    diagnostics = {"iterations": gt.n_iter, "restarts": gt.restarts, "final_step_length": gt.step_length,
                   "effective_sample_size": gt.effective_sample_size,
                   "information_condition_number": gt.condition_number, "mixing_problem": gt.problem,
                   "history": gt.history}
    return ExponentialFamilyFit(gt.theta, gt.stderr, gt.mcmc_se, gt.cov, gt.converged, gt.stderr_reliable, labels,
                                int(x.shape[0]), TiltedStatistics(energy, gt.theta), diagnostics)
