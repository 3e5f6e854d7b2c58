"""MCMC convergence diagnostics: effective sample size and (split, rank-normalised) R-hat.

Input convention for every function: ``x`` of shape (draws, chains, *event_shape), the layout
returned by :func:`ebmlab.samplers.sample`; results have shape ``event_shape`` (float64).
"""
from __future__ import annotations

import math

import torch

from .._core.errors import DataError


def _as_draws(x, min_draws: int = 4) -> torch.Tensor:
    """Validate and reshape to float64 (draws, chains, n_params)."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception as err:  # noqa: BLE001 - anything unconvertible is a data error
            raise DataError(f"x could not be converted to a tensor: {err}") from None
    if x.ndim < 2:
        raise DataError(f"x must have shape (draws, chains, *event_shape), got shape {tuple(x.shape)}")
    if x.shape[0] < min_draws:
        raise DataError(f"x must have at least {min_draws} draws per chain, got {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise DataError("x contains non-finite values (NaN or inf)")
    return x.detach().to(torch.float64).reshape(x.shape[0], x.shape[1], -1)


def _autocovariance(x: torch.Tensor) -> torch.Tensor:
    """Biased autocovariance along dim 0 via FFT: (draws, chains, p) -> (draws, chains, p).

    acov[t] = (1/n) sum_{s=0}^{n-1-t} (x_s - mean)(x_{s+t} - mean).
    """
    n = x.shape[0]
    xc = x - x.mean(dim=0, keepdim=True)
    size = 1 << (2 * n - 1).bit_length()
    f = torch.fft.rfft(xc, n=size, dim=0)
    acov = torch.fft.irfft(f * f.conj(), n=size, dim=0)[:n]
    return acov / n


def ess(x) -> torch.Tensor:
    r"""Effective sample size of the mean, per dimension, pooled over chains.

    Implements the estimator of Stan and ArviZ (Geyer 1992, "Practical Markov chain Monte Carlo",
    Stat. Sci.; Gelman et al., BDA3 §11.5; Vehtari et al. 2021, Bayesian Analysis): with M chains
    of N draws, within-chain variance W, and
    var⁺ = (N-1)/N · W + B/N (between-chain term B/N only for M > 1),

    .. math::
        \hat\rho_t = 1 - \frac{W - \overline{\mathrm{acov}}_t}{\widehat{\mathrm{var}}^+},\qquad
        \hat\tau = -1 + 2 \sum_{k=0}^{K} \tilde P_k,\qquad \mathrm{ESS} = \frac{MN}{\hat\tau},

    where acov_t is the lag-t autocovariance averaged over chains, P_k = ρ̂_{2k} + ρ̂_{2k+1}
    are Geyer's paired sums over lags t < N truncated before the first non-positive one (initial
    positive sequence), and P̃_k = min(P_0, ..., P_k) makes them monotone (initial monotone sequence).
    τ̂ is floored at 1/log10(MN) as in Stan, so ESS <= MN log10(MN) for antithetic chains.

    Parameters
    ----------
    x : Tensor (draws, chains, *event_shape)
        At least 4 draws.

    Returns
    -------
    Tensor[event_shape] (float64)
    """
    return _ess_flat(_as_draws(x)).reshape(_event_shape(x))


def _ess_flat(x: torch.Tensor) -> torch.Tensor:
    n, m, p = x.shape
    acov = _autocovariance(x)  # (n, m, p)
    chain_mean = x.mean(dim=0)  # (m, p)
    w = acov[0].mean(dim=0) * n / (n - 1)  # within-chain variance (unbiased), (p,)
    var_plus = w * (n - 1) / n
    if m > 1:
        var_plus = var_plus + chain_mean.var(dim=0, unbiased=True)
    mean_acov = acov.mean(dim=1)  # (n, p)
    rho = 1.0 - (w - mean_acov) / var_plus  # (n, p); rho[0] = 1 up to the (n-1)/n factor
    rho[0] = 1.0
    n_pairs = n // 2
    pairs = rho[0 : 2 * n_pairs : 2] + rho[1 : 2 * n_pairs : 2]  # (n_pairs, p)
    positive = pairs > 0
    # initial positive sequence: keep pairs before the first non-positive one
    keep = torch.cumprod(positive.to(torch.int64), dim=0).bool()
    monotone = torch.cummin(pairs, dim=0).values
    tau = -1.0 + 2.0 * torch.where(keep, monotone, torch.zeros_like(monotone)).sum(dim=0)
    total = n * m
    tau = torch.clamp(tau, min=1.0 / math.log10(total))
    constant = w <= 0  # a constant parameter has no meaningful ESS
    out = total / tau
    return torch.where(constant, torch.full_like(out, float("nan")), out)


def mcse_mean(x) -> torch.Tensor:
    r"""Monte Carlo standard error of the pooled mean, sd(x) / sqrt(ESS), per dimension (float64)."""
    xf = _as_draws(x)
    sd = xf.reshape(-1, xf.shape[2]).std(dim=0, unbiased=True)
    return (sd / torch.sqrt(_ess_flat(xf))).reshape(_event_shape(x))


def _event_shape(x) -> tuple:
    return tuple(torch.as_tensor(x).shape[2:])


def _split_rhat(x: torch.Tensor) -> torch.Tensor:
    """Split R-hat of (draws, chains, p) float64 -> (p,)."""
    n = x.shape[0] // 2
    halves = torch.cat([x[:n], x[x.shape[0] - n :]], dim=1)  # drop the middle draw when odd
    chain_mean = halves.mean(dim=0)  # (2m, p)
    chain_var = halves.var(dim=0, unbiased=True)
    w = chain_var.mean(dim=0)
    b_over_n = chain_mean.var(dim=0, unbiased=True)
    var_hat = (n - 1) / n * w + b_over_n
    return torch.sqrt(var_hat / w)


def _rank_normalise(x: torch.Tensor) -> torch.Tensor:
    """Φ⁻¹((r - 3/8) / (S + 1/4)) of the pooled ranks r (average ranks for ties), per dimension."""
    from scipy.stats import rankdata

    n, m, p = x.shape
    flat = x.reshape(n * m, p).cpu().numpy()
    ranks = torch.as_tensor(rankdata(flat, axis=0, method="average"), dtype=torch.float64)
    u = (ranks - 0.375) / (n * m + 0.25)
    z = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
    return z.reshape(n, m, p)


def rhat(x, rank_normalize: bool = False) -> torch.Tensor:
    r"""Potential scale reduction factor R̂ (split chains), per dimension.

    Each chain is split into halves (the middle draw dropped when N is odd), giving M' = 2M
    chains of n = ⌊N/2⌋ draws with within-chain variance W and between-chain variance B:

    .. math:: \widehat{\mathrm{var}}^+ = \frac{n-1}{n} W + \frac{B}{n}, \qquad
              \hat R = \sqrt{\widehat{\mathrm{var}}^+ / W}

    (Gelman et al., BDA3 §11.4). With ``rank_normalize=True`` it is the rank-normalised R̂ of
    Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021, Bayesian Analysis 16(2)):
    the maximum of the split R̂ of the normal scores of the pooled ranks (bulk) and of the
    normal scores of |x - median| (tails), robust to heavy tails. R̂ ≈ 1 for converged chains;
    values above 1.01 (Vehtari et al.) or 1.1 (BDA3) flag chains that disagree.

    Parameters
    ----------
    x : Tensor (draws, chains, *event_shape)
        At least 4 draws.
    rank_normalize : bool
        Use the rank-normalised version.

    Returns
    -------
    Tensor[event_shape] (float64); NaN for constant parameters.
    """
    xf = _as_draws(x)
    shape = _event_shape(x)
    if not rank_normalize:
        return _split_rhat(xf).reshape(shape)
    bulk = _split_rhat(_rank_normalise(xf))
    median = xf.reshape(-1, xf.shape[2]).median(dim=0).values
    tail = _split_rhat(_rank_normalise((xf - median).abs()))
    return torch.maximum(bulk, tail).reshape(shape)
