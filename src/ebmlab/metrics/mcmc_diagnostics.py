r"""MCMC convergence diagnostics: effective sample sizes (bulk, tail, mean) and R-hat (rank, split).

Input convention for every function: ``x`` of shape (draws, chains, *event_shape), the layout
returned by :func:`ebmlab.samplers.sample`, with at least 4 finite draws per chain; results have
shape ``event_shape`` (float64).  Each parameter (each entry of the event) is treated on its own.

The estimators are those of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
MCMC", Bayesian Analysis 16(2), as implemented by Stan and ArviZ; the defaults of
:func:`ess` (``method="bulk"``) and :func:`rhat` (``method="rank"``) are ArviZ's defaults
(``arviz.ess``, ``arviz.rhat``), and the tests check agreement with ArviZ to 1e-6.  The three
building blocks, with N draws per chain and M chains:

Split chains.  Each chain is cut into its first and last ⌊N/2⌋ draws (the middle draw is dropped
when N is odd), giving 2M chains of n = ⌊N/2⌋ draws, so that a trend within a chain shows up as a
difference between chains.

Rank normalisation.  The S pooled draws are replaced by the normal scores of their ranks,
z = Φ⁻¹((r - 3/8) / (S + 1/4)), r the average rank (ties share it; Blom 1958), which makes the
estimators well defined without finite moments and invariant to monotone transformations.

Geyer's ESS (``_geyer_ess``).  For M chains of n draws with lag-t autocovariances acov_{m,t}
(biased, divided by n), within-chain variance W = n/(n-1) · mean_m acov_{m,0}, and
var⁺ = (n-1)/n · W + B/n, B/n = var_m(chain means) (unbiased; B/n = 0 for M = 1):

.. math::
    \hat\rho_t = 1 - \frac{W - \overline{\mathrm{acov}}_t}{\widehat{\mathrm{var}}^+},\qquad
    P_k = \hat\rho_{2k} + \hat\rho_{2k+1},\qquad
    \hat\tau = -1 + 2 \sum_{k=0}^{K-1} \tilde P_k + h_K,\qquad
    \mathrm{ESS} = \frac{Mn}{\max(\hat\tau,\ 1/\log_{10}(Mn))},

where (Geyer 1992, "Practical Markov chain Monte Carlo", Stat. Sci. 7; the Stan/ArviZ variant):

- K is the first k >= 1 with P_k <= 0 (initial positive sequence), searched over the pairs whose
  lags fit, k <= k_max = ⌊(n-3)/2⌋; K = k_max when all of them are positive, and K = 0 when
  P_0 <= 0 or k_max < 1;
- P̃_k = min(P_0, ..., P_k) (initial monotone sequence);
- h_K = ρ̂_{2K}, the even half of the pair that ended the sum, added once, when ρ̂_{2K} > 0 or
  P_K >= 0, else 0 (Stan's and ArviZ's final half-pair term, which reduces the variance of the
  estimate for antithetic chains); h_0 = ρ̂_0 = 1;
- the floor 1/log10(Mn) on τ̂ caps ESS at Mn log10(Mn) for antithetic chains, as in Stan.

NaN semantics: a parameter whose (transformed) draws are all equal has no ESS and no R̂: NaN
(ArviZ returns the number of draws for the ESS of a constant; ebmlab does not invent a value).
Non-finite draws are rejected with :class:`ebmlab.DataError`.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Sequence, Tuple, Union

import numpy as np
import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_choice

ESS_METHODS = ("bulk", "tail", "mean")
RHAT_METHODS = ("rank", "split")


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
    if x.shape[1] < 1:
        raise DataError(f"x must have at least one chain, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise DataError("x contains non-finite values (NaN or inf)")
    return x.detach().to(torch.float64).reshape(x.shape[0], x.shape[1], -1)


def _event_shape(x) -> tuple:
    return tuple(torch.as_tensor(x).shape[2:])


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


def _split(x: torch.Tensor) -> torch.Tensor:
    """(N, M, p) -> (⌊N/2⌋, 2M, p): first and last halves of every chain (middle draw dropped if N is odd)."""
    half = x.shape[0] // 2
    return torch.cat([x[:half], x[x.shape[0] - half:]], dim=1)


def _constant(x: torch.Tensor) -> torch.Tensor:
    """(n, m, p) -> (p,) bool: every draw of the parameter is equal."""
    flat = x.reshape(-1, x.shape[2])
    return flat.amax(dim=0) == flat.amin(dim=0)


def _rank_normalise(x: torch.Tensor) -> torch.Tensor:
    """Φ⁻¹((r - 3/8) / (S + 1/4)) of the pooled ranks r (average ranks for ties), per parameter."""
    from scipy.stats import rankdata

    n, m, p = x.shape
    flat = x.reshape(n * m, p).cpu().numpy()
    ranks = torch.as_tensor(rankdata(flat, axis=0, method="average"), dtype=torch.float64)
    u = (ranks - 0.375) / (n * m + 0.25)
    z = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
    return z.reshape(n, m, p).to(x.device)


def _geyer_ess(x: torch.Tensor) -> torch.Tensor:
    """ESS of (n, m, p) float64 draws, chains used as given (module docstring, "Geyer's ESS") -> (p,)."""
    n, m, p = x.shape
    total = n * m
    acov = _autocovariance(x)  # (n, m, p)
    w = acov[0].mean(dim=0) * n / (n - 1)  # within-chain variance (unbiased), (p,)
    var_plus = w * (n - 1) / n
    if m > 1:
        var_plus = var_plus + x.mean(dim=0).var(dim=0, unbiased=True)
    constant = _constant(x)
    var_plus = torch.where(constant, torch.ones_like(var_plus), var_plus)  # NaN is set below
    rho = 1.0 - (w - acov.mean(dim=1)) / var_plus  # (n, p)
    rho[0] = 1.0
    k_max = (n - 3) // 2  # the pairs k = 1..k_max have both lags 2k, 2k+1 <= n - 2
    n_pairs = max(k_max, 0) + 1
    pairs = rho[0:2 * n_pairs:2] + rho[1:2 * n_pairs:2]  # (n_pairs, p): P_0 .. P_{k_max}
    cols = torch.arange(p, device=x.device)
    if k_max >= 1:
        k = torch.arange(n_pairs, device=x.device)[:, None]
        stop = ((pairs <= 0) & (k >= 1)) | (k == k_max)
        last = torch.argmax(stop.to(torch.int8), dim=0)  # first stopping pair
        last = torch.where(pairs[0] > 0, last, torch.zeros_like(last))
    else:
        last = torch.zeros(p, dtype=torch.int64, device=x.device)
    k = torch.arange(n_pairs, device=x.device)[:, None]
    monotone = torch.cummin(pairs, dim=0).values
    body = torch.where(k < last[None, :], monotone, torch.zeros_like(monotone)).sum(dim=0)
    rho_even = rho[2 * last, cols]
    keep_half = (last == 0) | (rho_even > 0) | (pairs[last, cols] >= 0)
    tau = -1.0 + 2.0 * body + torch.where(keep_half, rho_even, torch.zeros_like(rho_even))
    tau = torch.clamp(tau, min=1.0 / math.log10(total))
    out = total / tau
    return torch.where(constant, torch.full_like(out, float("nan")), out)


def _check_prob(prob) -> Tuple[float, float]:
    if isinstance(prob, Real) and not isinstance(prob, bool):
        prob = (float(prob), 1.0 - float(prob))
    try:
        lo, hi = (float(v) for v in prob)
    except Exception:  # noqa: BLE001
        raise ConfigError(f"prob must be a number or a pair (low, high) of numbers in (0, 1), got {prob!r}") from None
    if not (0.0 < lo < 1.0 and 0.0 < hi < 1.0):
        raise ConfigError(f"prob must lie in (0, 1), got {prob!r}")
    return lo, hi


def _quantile_indicator(x: torch.Tensor, q: float) -> torch.Tensor:
    """1(x <= quantile_q), the quantile of the pooled (unsplit) draws by linear interpolation
    between order statistics (Hyndman & Fan 1996 type 7, R's and NumPy's default)."""
    flat = x.reshape(-1, x.shape[2]).cpu().numpy()
    quant = torch.as_tensor(np.quantile(flat, q, axis=0), dtype=torch.float64, device=x.device)
    return (x <= quant).to(torch.float64)


def _ess_bulk(x: torch.Tensor) -> torch.Tensor:
    return _geyer_ess(_rank_normalise(_split(x)))


def _ess_tail(x: torch.Tensor, prob) -> torch.Tensor:
    lo, hi = _check_prob(prob)
    ess_lo = _geyer_ess(_split(_quantile_indicator(x, lo)))
    ess_hi = _geyer_ess(_split(_quantile_indicator(x, hi)))
    return torch.minimum(ess_lo, ess_hi)  # NaN if either is NaN


def ess(x, method: str = "bulk", prob: Union[float, Sequence[float]] = (0.05, 0.95)) -> torch.Tensor:
    r"""Effective sample size per parameter (module docstring for the shared definitions).

    ``method`` selects the quantity whose ESS is estimated; every method applies Geyer's ESS
    (module docstring: initial monotone sequence, final half-pair term, 1/log10 floor) to the
    **split** chains (2M chains of ⌊N/2⌋ draws):

    - ``"bulk"`` (default; ArviZ's default, the "bulk-ESS" of Vehtari et al. 2021): the ESS of the
      rank-normalised split draws z = Φ⁻¹((r - 3/8)/(S + 1/4)); it measures the efficiency of
      estimates of the centre of the distribution and exists without finite moments.
      Same as :func:`ess_bulk`.
    - ``"tail"`` (the "tail-ESS" of Vehtari et al. 2021): the minimum over q in ``prob`` (default
      5 % and 95 %) of the ESS of the indicator 1(x <= Q_q), Q_q the q-quantile of the pooled
      draws; it measures the efficiency of the tail quantiles. Same as :func:`ess_tail`.
    - ``"mean"``: the ESS of the raw split draws (the split ESS of Gelman et al., BDA3 §11.5; ArviZ's
      ``method="mean"``): the one that goes with the Monte Carlo standard error of the mean
      (:func:`mcse_mean`); needs a finite variance.

    For iid draws all three are ≈ N·M; for a stationary Gaussian AR(1) chain with coefficient
    ρ, the bulk and mean ESS are ≈ N·M (1 - ρ)/(1 + ρ).

    Parameters
    ----------
    x : Tensor (draws, chains, *event_shape)
        At least 4 finite draws per chain.
    method : {"bulk", "tail", "mean"}
    prob : float or (float, float)
        Tail probabilities for ``method="tail"``: a pair (low, high), or q for (q, 1 - q).

    Returns
    -------
    Tensor[event_shape] (float64); NaN for a parameter whose (transformed) draws are all equal
    (for ``"tail"``: whose quantile indicator is constant, which needs heavy ties).
    """
    check_choice("method", method, ESS_METHODS)
    xf = _as_draws(x)
    if method == "bulk":
        out = _ess_bulk(xf)
    elif method == "tail":
        out = _ess_tail(xf, prob)
    else:
        out = _geyer_ess(_split(xf))
    return out.reshape(_event_shape(x))


def ess_bulk(x) -> torch.Tensor:
    """Bulk effective sample size: :func:`ess` with ``method="bulk"`` (ArviZ's default ESS;
    Vehtari et al. 2021): Geyer's ESS of the rank-normalised split chains."""
    return ess(x, method="bulk")


def ess_tail(x, prob: Union[float, Sequence[float]] = (0.05, 0.95)) -> torch.Tensor:
    """Tail effective sample size: :func:`ess` with ``method="tail"`` (Vehtari et al. 2021):
    min over q in ``prob`` of Geyer's ESS of the split indicator chains 1(x <= Q_q)."""
    return ess(x, method="tail", prob=prob)


def mcse_mean(x) -> torch.Tensor:
    r"""Monte Carlo standard error of the pooled mean, sd(x) / sqrt(ESS_mean), per parameter (float64).

    sd is the standard deviation of all N·M draws (unbiased), ESS_mean is :func:`ess` with
    ``method="mean"`` (split chains, raw draws), as ArviZ's ``mcse(method="mean")``; NaN for a
    constant parameter.
    """
    xf = _as_draws(x)
    sd = xf.reshape(-1, xf.shape[2]).std(dim=0, unbiased=True)
    return (sd / torch.sqrt(_geyer_ess(_split(xf)))).reshape(_event_shape(x))


def _rhat_of_chains(x: torch.Tensor) -> torch.Tensor:
    """sqrt(var⁺ / W) of (n, m, p) chains used as given -> (p,)."""
    n = x.shape[0]
    w = x.var(dim=0, unbiased=True).mean(dim=0)
    b_over_n = x.mean(dim=0).var(dim=0, unbiased=True)
    var_hat = (n - 1) / n * w + b_over_n
    return torch.sqrt(var_hat / w)


def rhat(x, method: str = "rank") -> torch.Tensor:
    r"""Potential scale reduction factor R̂ per parameter, on split chains.

    Each chain is split into halves (the middle draw dropped when N is odd), giving M' = 2M
    chains of n = ⌊N/2⌋ draws; with their within-chain variance W (mean of the unbiased chain
    variances) and B/n = var(chain means) (unbiased),

    .. math:: \widehat{\mathrm{var}}^+ = \frac{n-1}{n} W + \frac{B}{n}, \qquad
              \hat R(y) = \sqrt{\widehat{\mathrm{var}}^+ / W}.

    - ``method="rank"`` (default; ArviZ's default ``arviz.rhat``): the rank-normalised split R̂ of
      Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021, Bayesian Analysis 16(2)),
      max(R̂(z), R̂(z_fold)), where z are the normal scores of the pooled ranks of the split draws
      (bulk) and z_fold those of |x - median(x)| (folded: tails and scale), the median of the
      split draws averaging the two middle values for an even count. Robust to heavy tails and
      sensitive to chains that differ in scale only.
    - ``method="split"``: the classic split R̂(x) of the raw draws (Gelman et al., BDA3 §11.4).

    R̂ ≈ 1 for converged chains; values above 1.01 (Vehtari et al.) or 1.1 (BDA3) flag chains
    that disagree. One chain is allowed (its two halves are compared; ArviZ returns NaN).

    Parameters
    ----------
    x : Tensor (draws, chains, *event_shape)
        At least 4 finite draws per chain.
    method : {"rank", "split"}

    Returns
    -------
    Tensor[event_shape] (float64); NaN for a parameter whose draws are all equal, +inf when every
    half-chain is constant but they differ (W = 0 < B).
    """
    check_choice("method", method, RHAT_METHODS)
    xf = _as_draws(x)
    shape = _event_shape(x)
    halves = _split(xf)
    if method == "split":
        return _rhat_of_chains(halves).reshape(shape)
    bulk = _rhat_of_chains(_rank_normalise(halves))
    flat = halves.reshape(-1, halves.shape[2]).cpu().numpy()
    median = torch.as_tensor(np.median(flat, axis=0), dtype=torch.float64, device=halves.device)
    tail = _rhat_of_chains(_rank_normalise((halves - median).abs()))
    # torch.maximum propagates NaN (constant parameter)
    return torch.maximum(bulk, tail).reshape(shape)


def importance_ess(log_weights) -> float:
    r"""Kish's effective sample size of unnormalised log importance weights ``log_weights`` (any shape, flattened):

    .. math:: \mathrm{ESS} = \frac{(\sum_j w_j)^2}{\sum_j w_j^2}
              = \exp\big(2\,\mathrm{lse}(\log w) - \mathrm{lse}(2 \log w)\big) \in [1, n]

    (Kish 1965; Kong 1992; Liu 2001, Sec. 2.5.3), in float64 and in log space, so weights far below or above
    exp(±700) are handled.  A weight of zero is ``-inf``.  NaN semantics: NaN when any log-weight is NaN or ``+inf``
    or when every weight is zero (no weight to normalise); callers that must refuse such weights check first.
    Divide by n for the efficiency (``ebmlab.objectives.importance_ess_fraction``).
    """
    lw = torch.as_tensor(log_weights).detach().to(torch.float64).reshape(-1)
    if lw.numel() == 0:
        raise DataError("importance_ess: log_weights is empty; give at least one log-weight")
    if bool(torch.isnan(lw).any()) or bool((lw == math.inf).any()) or bool((lw == -math.inf).all()):
        return math.nan
    return float(torch.exp(2.0 * torch.logsumexp(lw, 0) - torch.logsumexp(2.0 * lw, 0)))
