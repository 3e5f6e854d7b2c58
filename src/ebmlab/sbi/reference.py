r"""Reference posterior samples computed by ebmlab, cached on disk.

``method="exact"`` (where the task has an exact sampler: gaussian_linear in closed form, gaussian_linear_uniform
and gaussian_mixture as (mixtures of) truncated Gaussians, two_moons by inverting the simulator) draws independent
samples. ``method="mcmc"`` (slcp, bernoulli_glm, and any task on request) runs a long batched HMC on the exact
likelihood (:func:`ebmlab.sbi.posterior.sample_batched`: unconstrained space, per-chain adaptation, chains from
importance-resampled prior draws), reports R̂ and ESS, and symmetrises the draws under the task's exact
symmetries (e.g. the signs of θ₃, θ₄ in slcp, which the likelihood does not identify) by applying each with
probability ½ — exact, since the posterior is invariant under them, and it removes the between-mode weighting
that MCMC cannot get right. A run whose diagnostics fail (R̂ > 1.05 or stuck chains) raises
:class:`ebmlab.SamplingWarning` and is not cached.

Cache: ``$EBMLAB_CACHE_DIR/sbi/<task>/`` (default ``~/.cache/ebmlab``), one file per (x_o, n_samples, method, seed);
the seed is one draw from ``generator`` (so the same generator state gives the same file).
"""
from __future__ import annotations

import hashlib
import warnings

from typing import Tuple

import torch

from .._core.errors import ConfigError, SamplingWarning
from .._core.validation import check_int
from .tasks import DTYPE, Task

from .._core.cache import cache_dir  # noqa: E402  (one cache directory for all of ebmlab)

_METHODS = ("auto", "exact", "mcmc")
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


def reference_posterior(task: Task, x_o, n_samples: int = 10_000, generator=None, method: str = "auto",
                        cache: bool = True, **mcmc_kwargs) -> torch.Tensor:
    """Reference posterior samples, Tensor[n_samples, dθ], for ``x_o`` (Tensor[dx] or an observation number 1..10).

    ``method``: ``"exact"``, ``"mcmc"`` or ``"auto"`` (exact where the task has an exact sampler). Cached on disk
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
        method = "exact" if task.has_exact_posterior else "mcmc"
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
        if info is not None:
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
