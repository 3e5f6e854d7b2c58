r"""Batched posterior MCMC over many observations at once.

For k observations x_1..x_k and c chains per observation, the k·c chains live in one batch and advance together
in one :func:`ebmlab.samplers.sample` call with ``adapt="per_chain"`` (each chain tunes its own step size by dual
averaging, since the k posteriors have different scales). Chains move in the unconstrained space φ (θ = T(φ),
:class:`ebmlab.sbi.tasks.Box`), where the target is

.. math:: U(φ \mid x_j) = -\log \tilde p(x_j \mid T(φ)) - \log p(T(φ)) - \log |\det ∂T/∂φ|,

so a bounded prior's support is respected by construction. Chains start from prior draws resampled by importance
weights exp(−U) (sampling–importance–resampling, Rubin 1988; ``init="sir"``) or from plain prior draws
(``init="prior"``). Per observation, the result reports split-R̂ and bulk-ESS (Vehtari et al. 2021), acceptance,
stuck chains and divergences; an observation whose chains are stuck, diverge or disagree (R̂ above
``rhat_threshold``) raises a :class:`ebmlab.SamplingWarning` that names it.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch

from .._core.errors import ConfigError, DataError, SamplingWarning
from .._core.validation import check_int
from ..energies.base import Energy

#: R-hat above this flags an observation (Vehtari et al. 2021 recommend 1.01 for final analyses; 1.05 here because
#: the check runs on every call, with ~100 chains of short length)
RHAT_THRESHOLD = 1.05
_INITS = ("sir", "prior")
#: an observation whose post-burn-in transitions are divergent more often than this is flagged (a proposal outside a
#: hard likelihood support, e.g. two_moons' half-plane, counts as divergent: it is rejected, which is correct)
DIVERGENCE_THRESHOLD = 0.2


@dataclass
class ObservationDiagnostics:
    """Diagnostics of the chains of one observation."""

    observation: int
    rhat_max: float
    ess_bulk_min: float
    acceptance_rate: float
    stuck_chains: int
    divergence_rate: float
    step_size_median: float
    chains: int
    #: Kish ESS of the SIR start's importance weights and the prior draws it took (NaN / 0 for ``init="prior"``):
    #: the mode weights of the draws are only as good as this ESS (:func:`sir_init`)
    init_ess: float = math.nan
    init_proposals: int = 0

    def ok(self, rhat_threshold: float = RHAT_THRESHOLD) -> bool:
        return (self.stuck_chains == 0 and self.divergence_rate <= DIVERGENCE_THRESHOLD and math.isfinite(self.rhat_max)
                and self.rhat_max <= rhat_threshold)


@dataclass
class PosteriorInfo:
    """Result of a batched posterior run: ``per_observation`` diagnostics and the run's totals (divergent
    transitions summed over all chains are in ``extra["divergences"]``)."""

    per_observation: List[ObservationDiagnostics]
    sampler: str
    wall_time: float
    n_grad_evals: int
    steps: int
    burn_in: int
    thin: int
    chains_per_observation: int
    advice: Optional[object] = None
    extra: dict = field(default_factory=dict)

    @property
    def rhat_max(self) -> float:
        return max(d.rhat_max for d in self.per_observation)

    @property
    def ess_bulk_min(self) -> float:
        return min(d.ess_bulk_min for d in self.per_observation)

    def summary(self) -> str:
        rows = [f"obs {d.observation}: R-hat {d.rhat_max:.3f}, ESS {d.ess_bulk_min:.0f}, acc {d.acceptance_rate:.2f}, "
                f"stuck {d.stuck_chains}/{d.chains}, divergent {100 * d.divergence_rate:.1f}%"
                + (f", SIR start ESS {d.init_ess:.0f} of {d.init_proposals} prior draws" if d.init_proposals else "")
                for d in self.per_observation]
        return "\n".join(rows)


class RowContextPotential(Energy):
    """U(φ) = potential(φ, x_rows): one observation row per chain (``x_rows`` [chains, dx]), as an :class:`Energy`
    on φ alone, so every sampler runs on it unchanged."""

    def __init__(self, potential: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x_rows: torch.Tensor):
        super().__init__()
        self.potential = potential
        self.x_rows = x_rows

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        return self.potential(phi, self.x_rows)


#: proposals evaluated per potential call in :func:`sir_init` (bounds memory for large ``n_proposals``)
SIR_CHUNK = 65_536


def sir_init(potential, x_obs: torch.Tensor, chains: int, propose: Callable[[int], torch.Tensor], n_proposals: int,
             generator: Optional[torch.Generator], *, min_init_ess: float = 0.0, max_proposals: Optional[int] = None,
             return_info: bool = False):
    """For each observation, ``chains`` draws resampled (with replacement) from proposals φ with weights
    ∝ exp(−U(φ | x_j) − log q(φ)), q the prior in φ (``propose`` returns draws and their log q). The potential is
    evaluated in chunks of :data:`SIR_CHUNK` proposals.

    ``n_proposals`` are drawn first; while the weights' Kish ESS (:func:`ebmlab.metrics.importance_ess`) is below
    ``min_init_ess``, the pool is doubled, up to ``max_proposals`` in all (default ``n_proposals``: no doubling). A
    posterior much narrower than the prior needs this: on two_moons the ESS of 10⁴ prior draws is 4–75 for
    ebmlab's observations 1–10 under a model trained on 10⁴ simulations, that of 10⁶ draws 470–5,600.

    Chains do not cross between well-separated modes (e.g. two_moons' mirror-image crescents), so the final
    draws' mode weights are the resampled starts' weights: their error is that of self-normalised importance
    sampling, about sqrt(w(1 − w) / ESS), plus the multinomial error sqrt(w(1 − w) / chains) of resampling. Both
    fall only with a larger ESS and more chains.

    Returns Tensor[k · chains, d] (observation-major), or with ``return_info=True`` also the ESS and the number of
    proposals per observation (two lists of length k)."""
    from ..metrics.mcmc_diagnostics import importance_ess

    n_proposals = check_int("n_proposals", n_proposals)
    max_proposals = n_proposals if max_proposals is None else check_int("max_proposals", max_proposals)
    if isinstance(min_init_ess, bool) or not isinstance(min_init_ess, (int, float)) or not min_init_ess >= 0:
        raise ConfigError(f"min_init_ess must be a number >= 0, got {min_init_ess!r}")
    if max_proposals < n_proposals:
        raise ConfigError(f"max_proposals must be >= n_proposals, got {max_proposals} < {n_proposals}")
    out, esses, totals = [], [], []
    for j in range(x_obs.shape[0]):
        phis, logws, total, m = [], [], 0, n_proposals
        while True:
            phi, log_q = propose(m)
            with torch.no_grad():
                u = torch.cat([potential(part, x_obs[j].expand(part.shape[0], -1))
                               for part in phi.split(SIR_CHUNK)])
            phis.append(phi)
            logws.append((-u - log_q).nan_to_num(nan=-math.inf).double())
            total += m
            logw = torch.cat(logws)
            finite = bool(torch.isfinite(logw).any())
            ess = importance_ess(logw) if finite else 0.0
            if ess >= min_init_ess or total >= max_proposals:
                break
            m = min(total, max_proposals - total)
        if not finite:
            raise DataError(f"observation {j}: no finite importance weight among {total} prior draws; "
                            f"the posterior is zero wherever the prior was sampled")
        w = torch.softmax(logw, 0)
        idx = torch.multinomial(w, chains, replacement=True, generator=generator)
        out.append(torch.cat(phis)[idx])
        esses.append(float(ess))
        totals.append(total)
    start = torch.cat(out)
    return (start, esses, totals) if return_info else start


def initial_states(potential, x_obs: torch.Tensor, chains: int, propose: Callable[[int], torch.Tensor], *,
                   init: str = "sir", n_proposals: int = 10_000, min_init_ess: float = 0.0,
                   max_proposals: Optional[int] = None, generator: Optional[torch.Generator] = None):
    """``chains`` starting points per observation → (φ₀ [k · chains, d], ESS per observation, proposals per
    observation): a SIR draw (:func:`sir_init`) for ``init="sir"``, plain prior draws (ESS NaN, 0 proposals) for
    ``init="prior"``."""
    if init not in _INITS:
        raise ConfigError(f"init must be one of {', '.join(_INITS)}, got {init!r}")
    k = x_obs.shape[0]
    if init == "sir":
        return sir_init(potential, x_obs, chains, propose, n_proposals, generator, min_init_ess=min_init_ess,
                        max_proposals=max_proposals, return_info=True)
    return propose(k * chains)[0], [math.nan] * k, [0] * k


def sample_batched(potential: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x_obs: torch.Tensor, n_samples: int,
                   *, dim: int, propose: Callable[[int], torch.Tensor], to_theta: Callable[[torch.Tensor], torch.Tensor],
                   sampler="hmc", chains_per_observation: int = 100, burn_in: int = 500, thin: int = 5,
                   init: str = "sir", n_proposals: int = 10_000, min_init_ess: float = 0.0,
                   max_proposals: Optional[int] = None, generator: Optional[torch.Generator] = None,
                   rhat_threshold: float = RHAT_THRESHOLD, warn: bool = True, labels=None,
                   canonical: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, start=None):
    """Draw ``n_samples`` posterior samples for every row of ``x_obs`` ([k, dx]) in one batched chain run.

    Parameters
    ----------
    potential : callable (φ [m, d], x [m, dx]) -> Tensor[m]
        U(φ | x) in the unconstrained space (module docstring).
    propose : callable n -> (φ [n, d], log q(φ) [n])
        Prior draws in φ and their log density (initialisation).
    to_theta : callable φ -> θ
        The map back to parameter space.
    sampler : str or Sampler
        A sampler with per-chain step sizes ("hmc", "mala", "rwm").
    chains_per_observation, burn_in, thin : int
        Chains per observation; burn-in steps (adaptation); thinning. Each chain keeps ceil(n_samples / chains) draws.
    init : {"sir", "prior"}
        Chain initialisation (module docstring).
    n_proposals, min_init_ess, max_proposals : int, float, int
        SIR start (:func:`sir_init`): ``n_proposals`` prior draws, doubled while their ESS is below ``min_init_ess``,
        up to ``max_proposals`` (default ``n_proposals``).
    labels : sequence, optional
        Names of the observations in warnings (default 0..k−1).
    canonical : callable φ -> φ, optional
        Maps every draw to one representative of its orbit under the posterior's exact symmetries before R̂/ESS
        (chains in mirror-image modes are then not reported as disagreeing).
    start : tuple, optional
        A start already drawn for these observations, ``(φ₀ [k · c, d], ESS per observation, proposals per
        observation)`` as :func:`initial_states` returns it (used instead of drawing one; the sampler advisor's
        pilots and the final run then share it).

    Returns
    -------
    theta : Tensor[k, n_samples, d]
    info : PosteriorInfo
    """
    from ..metrics.mcmc_diagnostics import ess_bulk, rhat
    from ..samplers.driver import resolve_sampler, sample

    n_samples = check_int("n_samples", n_samples, minimum=1)
    c = check_int("chains_per_observation", chains_per_observation, minimum=2)
    if init not in _INITS:
        raise ConfigError(f"init must be one of {', '.join(_INITS)}, got {init!r}")
    t0 = time.perf_counter()
    sampler = resolve_sampler(sampler)
    k = x_obs.shape[0]
    labels = list(range(k)) if labels is None else list(labels)
    draws = max(4, math.ceil(n_samples / c))
    if start is None:
        start = initial_states(potential, x_obs, c, propose, init=init, n_proposals=n_proposals,
                               min_init_ess=min_init_ess, max_proposals=max_proposals, generator=generator)
    phi0, init_ess, init_n = start
    x_rows = x_obs.repeat_interleave(c, dim=0)
    energy = RowContextPotential(potential, x_rows)
    div_count = torch.zeros(k * c, dtype=torch.int64)

    def count_divergences(step, state, info):
        if step >= burn_in:
            div_count.add_(info.divergent.reshape(-1).to("cpu", torch.int64))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)   # reported per observation below
        out, sinfo = sample(energy, sampler, phi0, draws * thin, burn_in=burn_in, thin=thin, generator=generator,
                            adapt="per_chain", warn=False, callbacks=[count_divergences])
    if not bool(torch.isfinite(out).all()):
        raise DataError("posterior chains produced non-finite values; the potential is not finite along the chains")
    out = out.reshape(out.shape[0], k, c, dim)                      # [draws, k, c, d]
    diags = []
    acc = sinfo.acceptance_per_chain.reshape(k, c)
    h = sinfo.step_size_per_chain.reshape(k, c) if sinfo.step_size_per_chain is not None else None
    div_total = sinfo.divergences
    div_rate = div_count.reshape(k, c).double().mean(1) / (draws * thin)
    diag_draws = canonical(out) if canonical is not None else out
    for j in range(k):
        chains_j = diag_draws[:, j]                                         # [draws, c, d]
        r = rhat(chains_j)
        e = ess_bulk(chains_j)
        stuck = int((acc[j] < sinfo.stuck_threshold).sum())
        diags.append(ObservationDiagnostics(
            observation=labels[j], rhat_max=float(r.max()), ess_bulk_min=float(e.min()),
            acceptance_rate=float(acc[j].mean()), stuck_chains=stuck, divergence_rate=float(div_rate[j]),
            step_size_median=float(h[j].median()) if h is not None else float(sinfo.step_size), chains=c,
            init_ess=init_ess[j], init_proposals=init_n[j]))
    info = PosteriorInfo(per_observation=diags, sampler=getattr(sampler, "name", type(sampler).__name__),
                         wall_time=time.perf_counter() - t0, n_grad_evals=sinfo.n_grad_evals, steps=draws * thin,
                         burn_in=burn_in, thin=thin, chains_per_observation=c, extra={"divergences": div_total})
    if warn:
        for d in diags:
            if not d.ok(rhat_threshold):
                warnings.warn(f"posterior chains of observation {d.observation}: R-hat {d.rhat_max:.3f} (threshold "
                              f"{rhat_threshold}), {d.stuck_chains} of {d.chains} chains stuck, "
                              f"{100 * d.divergence_rate:.1f}% divergent transitions, acceptance {d.acceptance_rate:.2f}; "
                              f"increase burn_in or try sampler='auto'", SamplingWarning, stacklevel=3)
    theta = to_theta(out.permute(1, 0, 2, 3).reshape(k, -1, dim)[:, -n_samples:])
    return theta, info
