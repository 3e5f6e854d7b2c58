r"""Reference posterior samples computed by ebmlab, cached on disk.

``method="exact"`` (where the task has an exact sampler: gaussian_linear in closed form, gaussian_linear_uniform
and gaussian_mixture as (mixtures of) truncated Gaussians, two_moons by inverting the simulator) draws independent
samples. ``method="mcmc"`` (bernoulli_glm, and any task on request) runs a long batched HMC on the exact
likelihood (:func:`ebmlab.sbi.posterior.sample_batched`: unconstrained space, per-chain adaptation, chains from
importance-resampled prior draws), reports R̂ and ESS, and symmetrises the draws under the task's exact
symmetries (e.g. the signs of θ₃, θ₄ in slcp, which the likelihood does not identify) by applying each with
probability ½ — exact, since the posterior is invariant under them, and it removes the between-mode weighting
that MCMC cannot get right. A run whose diagnostics fail (R̂ > 1.05 or stuck chains) raises
:class:`ebmlab.SamplingWarning` and is not cached.

``method="is"`` (slcp by default, ``Task.reference_method``) turns MCMC exploration into exact draws: the (possibly unmixed) symmetrised MCMC draws φ_k
of a pilot run define a defensive proposal in the unconstrained space,

.. math:: q(φ) = α\, p_φ(φ) + (1 − α) \frac1K \sum_k N(φ; φ_k, h^2 Σ),

(α = 0.1, Σ the covariance of the pilot draws on the symmetry quotient, h = K^{−1/(d+4)} Scott's factor), and
importance resampling (Rubin 1988) with the weights w = p̃(φ | x_o)/q(φ) returns draws of the posterior whatever
the pilot's mixing — the prior component keeps q > 0 wherever the posterior is; proposals are drawn until the
weights' Kish ESS reaches 20 × the draws requested, so that resampling with replacement repeats few of them. This
follows sbibm's construction of its slcp reference (Lueckmann et al. 2021: importance resampling, a density fitted
to its draws mixed with the prior at weight 0.1 as proposal, then rejection sampling against that proposal), with a
kernel density of MCMC draws in place of their flow and resampling in place of the rejection step (measured: the
rejection bound M = 1.2 · max w accepted 0.05 % of the proposals — too slow here). Diagnostics: the ESS and the
largest weight's share of the total; ESS < 20 × ``n_samples`` or a share above 1 % warns and is not cached.

Cache: ``$EBMLAB_CACHE_DIR/sbi/<task>/`` (default ``~/.cache/ebmlab``), one file per (x_o, n_samples, method, seed);
the seed is one draw from ``generator`` (so the same generator state gives the same file).
"""
from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass

from typing import Tuple

import torch

from .._core.errors import ConfigError, EbmlabError, SamplingWarning
from .._core.validation import check_int
from ..metrics.mcmc_diagnostics import importance_ess
from .tasks import DTYPE, Task

from .._core.cache import cache_dir  # noqa: E402  (one cache directory for all of ebmlab)

_METHODS = ("auto", "exact", "mcmc", "is")
_VERSION = 1


def _seed_from(generator) -> int:
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=generator).item())
    if generator is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise ConfigError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")
    return int(generator)


def mcmc_potential(task: Task):
    """U(φ | x) = −log p(x | T(φ)) − log p_φ(φ) on the exact likelihood (−∞ log-likelihoods become +∞)."""
    def potential(phi, x):
        theta = task.from_unconstrained(phi)
        lp = task.log_likelihood(x, theta) + task.prior_log_prob_unconstrained(phi)
        return -lp
    return potential


def canonical_unconstrained(task: Task):
    """φ -> φ of the task's canonical representative under its symmetries (``Task.canonical``), or None."""
    if not task.symmetries:
        return None
    return lambda phi: task.to_unconstrained(task.canonical(task.from_unconstrained(phi)))


def prior_proposal(task: Task, generator):
    def propose(n):
        phi = task.to_unconstrained(task.sample_prior(n, generator=generator))
        return phi, task.prior_log_prob_unconstrained(phi)
    return propose


def mcmc_posterior(task: Task, x_obs: torch.Tensor, n_samples: int, generator=None, *, sampler="hmc",
                   chains_per_observation: int = 100, burn_in: int = 1000, thin: int = 10, n_proposals: int = 100_000,
                   warn: bool = True):
    """Batched HMC on the exact likelihood for observations ``x_obs`` [k, dx] → (Tensor[k, n, dθ], PosteriorInfo),
    symmetrised (module docstring)."""
    from .posterior import sample_batched

    theta, info = sample_batched(mcmc_potential(task), x_obs, n_samples, dim=task.dim_theta,
                                 propose=prior_proposal(task, generator), to_theta=task.from_unconstrained,
                                 sampler=sampler, chains_per_observation=chains_per_observation, burn_in=burn_in,
                                 thin=thin, n_proposals=n_proposals, generator=generator, warn=warn,
                                 canonical=canonical_unconstrained(task))
    for sym in task.symmetries:
        flip = torch.rand(theta.shape[:2], dtype=DTYPE, generator=generator) < 0.5
        theta = torch.where(flip[..., None], sym(theta), theta)
    return theta, info


@dataclass
class ImportanceInfo:
    """Diagnostics of :func:`is_posterior`: Kish ESS of the importance weights, the largest weight's share of their
    sum, proposals drawn, the ESS asked for per draw, the pilot's max R̂ (of its unmixed chains: explains
    why IS is needed, not a diagnostic of the result)."""

    ess: float
    max_weight_share: float
    n_proposals: int
    ess_factor: float
    pilot_rhat_max: float

    def ok(self, n_samples: int) -> bool:
        return (math.isfinite(self.ess) and self.ess >= self.ess_factor * n_samples
                and self.max_weight_share <= MAX_WEIGHT_SHARE)


#: the largest importance weight may hold at most this share of the total (else the proposal misses mass)
MAX_WEIGHT_SHARE = 0.01


def is_posterior(task: Task, x_o: torch.Tensor, n_samples: int, generator=None, *, pilot_samples: int = 1000,
                 prior_weight: float = 0.1, ess_factor: float = 20.0, batch_size: int = 100_000,
                 min_proposals: int = 200_000, max_proposals: int = 5_000_000, **mcmc_kwargs):
    """Posterior draws for one observation ``x_o`` [dx] by importance resampling from a defensive kernel-density
    proposal built on an MCMC pilot (module docstring) → (Tensor[n_samples, dθ], ImportanceInfo). Proposals are
    drawn in batches until the weights' ESS reaches ``ess_factor · n_samples`` (at least ``min_proposals``, at
    most ``max_proposals``)."""
    from .._core.random import as_generator

    g = as_generator(generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)   # the pilot only places the kernels
        pilot, pinfo = mcmc_posterior(task, x_o[None], pilot_samples, generator=g, warn=False, **mcmc_kwargs)
    centres = task.to_unconstrained(pilot[0])                                          # [K, d], symmetrised
    canon = canonical_unconstrained(task)
    spread = canon(centres) if canon is not None else centres
    k, d = centres.shape
    cov = torch.cov(spread.T).reshape(d, d) + 1e-10 * torch.eye(d, dtype=centres.dtype)
    chol = torch.linalg.cholesky(cov * k ** (-2.0 / (d + 4)))
    log_det = 2.0 * torch.log(torch.diagonal(chol)).sum()
    centres_w = torch.linalg.solve_triangular(chol, centres.T, upper=False).T           # whitened centres
    potential = mcmc_potential(task)
    log_alpha, log_1m = math.log(prior_weight), math.log1p(-prior_weight)

    def log_kde(phi):
        z = torch.linalg.solve_triangular(chol, phi.T, upper=False).T
        out = []
        for zc in z.split(10_000):
            d2 = (zc * zc).sum(1, keepdim=True) + (centres_w * centres_w).sum(1) - 2.0 * zc @ centres_w.T
            out.append(torch.logsumexp(-0.5 * d2.clamp_min(0.0), 1))
        return torch.cat(out) - math.log(k) - 0.5 * log_det - 0.5 * d * math.log(2 * math.pi)

    phis, logws = [], []
    total, ess = 0, 0.0
    while True:
        m = batch_size
        from_prior = torch.rand(m, generator=g, dtype=DTYPE) < prior_weight
        idx = torch.randint(0, k, (m,), generator=g)
        phi = centres[idx] + torch.randn(m, d, generator=g, dtype=DTYPE) @ chol.T
        n_p = int(from_prior.sum())
        if n_p:
            phi[from_prior] = task.to_unconstrained(task.sample_prior(n_p, generator=g))
        log_q = torch.logaddexp(log_alpha + task.prior_log_prob_unconstrained(phi), log_1m + log_kde(phi))
        with torch.no_grad():
            logw = (-potential(phi, x_o.expand(m, -1)) - log_q).nan_to_num(nan=-math.inf)
        phis.append(phi)
        logws.append(logw)
        total += m
        all_logw = torch.cat(logws)
        w = torch.softmax(all_logw, 0)
        ess = importance_ess(all_logw)
        if (ess >= ess_factor * n_samples and total >= min_proposals) or total >= max_proposals:
            break
    info = ImportanceInfo(ess=ess, max_weight_share=float(w.max()), n_proposals=total, ess_factor=ess_factor,
                          pilot_rhat_max=pinfo.per_observation[0].rhat_max)
    if ess < n_samples:
        raise EbmlabError(f"importance reference of {task.name}: ESS {ess:.0f} < {n_samples} draws requested after "
                          f"{total} proposals; raise max_proposals or pilot_samples")
    pick = torch.multinomial(w, n_samples, replacement=True, generator=g)
    theta = task.from_unconstrained(torch.cat(phis)[pick])
    return theta, info


def reference_posterior(task: Task, x_o, n_samples: int = 10_000, generator=None, method: str = "auto",
                        cache: bool = True, **mcmc_kwargs) -> torch.Tensor:
    """Reference posterior samples, Tensor[n_samples, dθ], for ``x_o`` (Tensor[dx] or an observation number 1..10).

    ``method``: ``"exact"``, ``"mcmc"``, ``"is"`` (importance resampling on an MCMC pilot, :func:`is_posterior`) or
    ``"auto"`` (exact where the task has an exact sampler, else the task's ``reference_method``). Cached on disk
    (module docstring); ``cache=False`` recomputes and writes nothing. MCMC diagnostics go to a
    :class:`ebmlab.SamplingWarning` when they fail (and the result is then not cached).
    """
    if method not in _METHODS:
        raise ConfigError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
    n_samples = check_int("n_samples", n_samples, minimum=1)
    if isinstance(x_o, int) and not isinstance(x_o, bool):
        x_o = task.observation(x_o)
    x_o = task.check_x(x_o, "x_o")
    if x_o.ndim != 1:
        raise ConfigError(f"reference_posterior takes one observation of shape [{task.dim_x}], got {tuple(x_o.shape)}")
    if method == "auto":
        method = "exact" if task.has_exact_posterior else task.reference_method
    if method == "exact" and not task.has_exact_posterior:
        raise ConfigError(f"task {task.name} has no exact posterior sampler; use method='mcmc'")
    seed = _seed_from(generator)
    key = hashlib.sha1(x_o.numpy().tobytes() + repr((n_samples, method, seed, sorted(mcmc_kwargs.items()), _VERSION)).encode()).hexdigest()[:16]
    path = cache_dir() / "sbi" / task.name / f"{method}-{key}.pt"
    if cache and path.exists():
        return torch.load(path, weights_only=True)["samples"]
    g = torch.Generator().manual_seed(seed)
    info = None
    if method == "exact":
        samples = task.exact_posterior(x_o, n_samples, generator=g)
    elif method == "is":
        samples, info = is_posterior(task, x_o, n_samples, generator=g, **mcmc_kwargs)
        if not info.ok(n_samples):
            warnings.warn(f"reference posterior of {task.name}: importance weights have ESS {info.ess:.0f} (< "
                          f"{info.ess_factor:g} x {n_samples} draws requested) or the largest weight holds {100 * info.max_weight_share:.1f}% "
                          f"of the total (> {100 * MAX_WEIGHT_SHARE:.0f}%); not cached", SamplingWarning, stacklevel=2)
            cache = False
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SamplingWarning)
            theta, info = mcmc_posterior(task, x_o[None], n_samples, generator=g, **mcmc_kwargs)
        for w in caught:
            warnings.warn(f"reference posterior of {task.name}: {w.message}", SamplingWarning, stacklevel=2)
        samples = theta[0]
        if caught:
            cache = False
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"samples": samples, "method": method}
        if isinstance(info, ImportanceInfo):
            payload.update(ess=torch.tensor(info.ess), max_weight_share=torch.tensor(info.max_weight_share),
                           n_proposals=torch.tensor(info.n_proposals), pilot_rhat_max=torch.tensor(info.pilot_rhat_max))
        elif info is not None:
            d = info.per_observation[0]
            payload.update(rhat_max=torch.tensor(d.rhat_max), ess_bulk_min=torch.tensor(d.ess_bulk_min))
        from .._core.fsutil import atomic_write

        atomic_write(path, lambda fh: torch.save(payload, fh))
    return samples


def reference_diagnostics(task: Task, x_o, n_samples: int = 10_000, generator=None, **mcmc_kwargs) -> Tuple[torch.Tensor, object]:
    """Uncached MCMC reference with its :class:`~ebmlab.sbi.posterior.PosteriorInfo` (R̂, ESS per observation)."""
    if isinstance(x_o, int) and not isinstance(x_o, bool):
        x_o = task.observation(x_o)
    x_o = task.check_x(x_o, "x_o").reshape(-1, task.dim_x)
    theta, info = mcmc_posterior(task, x_o, n_samples, generator=as_gen(generator), **mcmc_kwargs)
    return theta, info


def as_gen(generator):
    from .._core.random import as_generator

    return as_generator(generator)
