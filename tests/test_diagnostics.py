"""ESS and R-hat: against ArviZ, against a plain-loop transcription of the formulas, and against known
values (iid and AR(1) chains)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm, rankdata

from ebmlab import ConfigError, DataError
from ebmlab.metrics import ess, ess_bulk, ess_tail, importance_ess, mcse_mean, rhat

DT = torch.float64


def ar1(rho: float, draws: int, chains: int, dims: int, generator) -> torch.Tensor:
    """Stationary AR(1) chains x_t = rho x_{t-1} + e_t with unit innovations."""
    e = torch.randn(draws, chains, dims, dtype=DT, generator=generator)
    x = torch.empty_like(e)
    x[0] = e[0] / math.sqrt(1 - rho**2)
    for t in range(1, draws):
        x[t] = rho * x[t - 1] + e[t]
    return x


# ------------------------------------------------------------------ plain-loop reference of the formulas
def reference_geyer_ess(x: np.ndarray) -> float:
    """Geyer's ESS of one parameter, x: draws x chains, with plain loops (Vehtari et al. 2021 with
    Stan's / ArviZ's truncation, final half pair and floor, as written in the module docstring)."""
    n, m = x.shape
    if np.all(x == x[0, 0]):
        return float("nan")
    acov = np.zeros((m, n))
    for c in range(m):
        xc = x[:, c] - x[:, c].mean()
        for t in range(n):
            acov[c, t] = np.dot(xc[: n - t], xc[t:]) / n
    w = acov[:, 0].mean() * n / (n - 1)
    var_plus = w * (n - 1) / n + (x.mean(0).var(ddof=1) if m > 1 else 0.0)
    rho = [1.0] + [1.0 - (w - acov[:, t].mean()) / var_plus for t in range(1, n)]

    def pair(k):
        return rho[2 * k] + rho[2 * k + 1]

    k_max = (n - 3) // 2
    last = 0
    if pair(0) > 0 and k_max >= 1:
        last = k_max
        for k in range(1, k_max + 1):
            if pair(k) <= 0:
                last = k
                break
    tau, running = -1.0, math.inf
    for k in range(last):
        running = min(running, pair(k))
        tau += 2.0 * running
    if last == 0 or rho[2 * last] > 0 or pair(last) >= 0:
        tau += rho[2 * last]
    tau = max(tau, 1.0 / math.log10(n * m))
    return n * m / tau


def reference_split(x: np.ndarray) -> np.ndarray:
    half = x.shape[0] // 2
    return np.concatenate([x[:half], x[x.shape[0] - half:]], axis=1)


def reference_z(x: np.ndarray) -> np.ndarray:
    r = rankdata(x.ravel(), method="average").reshape(x.shape)
    return norm.ppf((r - 0.375) / (x.size + 0.25))


def reference_rhat(x: np.ndarray) -> float:
    n = x.shape[0]
    w = x.var(axis=0, ddof=1).mean()
    return math.sqrt(((n - 1) / n * w + x.mean(0).var(ddof=1)) / w)


def reference_ess(x: np.ndarray, method: str) -> float:
    if method == "bulk":
        return reference_geyer_ess(reference_z(reference_split(x)))
    if method == "mean":
        return reference_geyer_ess(reference_split(x))
    tails = [reference_geyer_ess(reference_split((x <= np.quantile(x, q)).astype(float))) for q in (0.05, 0.95)]
    return float("nan") if any(math.isnan(t) for t in tails) else min(tails)


def reference_rank_rhat(x: np.ndarray) -> float:
    s = reference_split(x)
    return max(reference_rhat(reference_z(s)), reference_rhat(reference_z(np.abs(s - np.median(s)))))


def _cases(generator):
    """Chains that exercise every branch: odd/even lengths, one chain, antithetic, heavy tails, ties.

    On the 5- and 9-draw chains a tail indicator can be constant on the split chains (e.g. when the
    maximum is the dropped middle draw): the tail ESS is then NaN (module docstring)."""
    out = []
    for rho, n, m in [(0.5, 121, 3), (0.9, 200, 2), (-0.6, 80, 4), (0.3, 9, 2), (0.3, 5, 1), (0.95, 60, 1)]:
        x = ar1(rho, n, m, 4, generator)
        x[..., 1] = torch.tan(x[..., 1])  # heavy tails
        if n >= 50:  # ties (on short chains a quantile indicator could be constant: NaN, tested apart)
            x[..., 2] = torch.round(2 * x[..., 2])
        out.append(x)
    return out


@pytest.mark.parametrize("method", ["bulk", "tail", "mean"])
def test_ess_matches_loop_reference(method):
    g = torch.Generator().manual_seed(0)
    for x in _cases(g):
        ours = ess(x, method=method)
        for j in range(x.shape[2]):
            ref = reference_ess(x[:, :, j].numpy(), method)
            assert ours[j].item() == pytest.approx(ref, rel=1e-9, nan_ok=True), (method, x.shape, j)


def test_rhat_matches_loop_reference():
    g = torch.Generator().manual_seed(1)
    for x in _cases(g):
        rank, split = rhat(x), rhat(x, method="split")
        for j in range(x.shape[2]):
            xj = x[:, :, j].numpy()
            assert rank[j].item() == pytest.approx(reference_rank_rhat(xj), rel=1e-9)
            assert split[j].item() == pytest.approx(reference_rhat(reference_split(xj)), rel=1e-9)



def _scalar(value) -> float:
    """ArviZ returns a 0-d value or a 1-element array depending on its version; NumPy >= 2.4 refuses float() of
    the latter."""
    arr = np.asarray(value, dtype=float)
    assert arr.size == 1, arr.shape
    return float(arr.reshape(-1)[0])

def test_agrees_with_arviz():
    """ArviZ's ess (bulk, tail, mean), rhat (rank, split) and mcse (mean) on random chains, to 1e-6."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ announces its refactor with a FutureWarning on import
        az = pytest.importorskip("arviz")
    g = torch.Generator().manual_seed(2)
    checked = nan_cases = 0
    for x in _cases(g):
        ours = {m: ess(x, method=m) for m in ("bulk", "tail", "mean")}
        ours_rhat = {m: rhat(x, method=m) for m in ("rank", "split")}
        se = mcse_mean(x)
        for j in range(x.shape[2]):
            xj = x[:, :, j].T.numpy()  # ArviZ: (chain, draw)
            for m in ("bulk", "tail", "mean"):
                theirs = _scalar(az.ess(xj, method=m))
                if math.isnan(ours[m][j].item()):
                    # the one difference: a constant split indicator has no ESS here (NaN), ArviZ gives it
                    # the number of draws
                    split = reference_split(xj.T)
                    assert m == "tail" and any(
                        np.ptp((split <= np.quantile(xj, q)).astype(float)) == 0 for q in (0.05, 0.95)), (m, x.shape, j)
                    nan_cases += 1
                else:
                    assert ours[m][j].item() == pytest.approx(theirs, rel=1e-6), (m, x.shape, j)
            assert se[j].item() == pytest.approx(_scalar(az.mcse(xj, method="mean")), rel=1e-6)
            if x.shape[1] > 1:  # ArviZ's R-hat needs two chains
                for m in ("rank", "split"):
                    assert ours_rhat[m][j].item() == pytest.approx(_scalar(az.rhat(xj, method=m)), rel=1e-6)
            checked += 1
    assert checked == 24 and nan_cases <= 4  # at least 20 of the 24 tail ESS compared


def test_named_functions_are_the_methods():
    g = torch.Generator().manual_seed(3)
    x = ar1(0.5, 300, 3, 2, g)
    torch.testing.assert_close(ess_bulk(x), ess(x))
    torch.testing.assert_close(ess_tail(x), ess(x, method="tail"))
    torch.testing.assert_close(ess_tail(x, prob=0.1), ess(x, method="tail", prob=(0.1, 0.9)))


# ------------------------------------------------------------------ known values
@pytest.mark.parametrize("method, bias", [("bulk", 0.0), ("mean", 0.0), ("tail", 0.045)])
def test_ess_of_iid_draws_is_the_number_of_draws(method, bias):
    """iid draws: ESS ≈ N·M = 4000. Per dimension the estimator's sd is ~4.2% (measured over 400
    dimensions for every method); Geyer's truncation biases the tail ESS (indicators at 5 % / 95 %) low
    by ~4.5% (measured). The mean over 20 dimensions (sd ~1%) must be within 6% of 1 - bias and every
    dimension within 20%."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1000, 4, 20, dtype=DT, generator=g)
    ratio = ess(x, method=method) / 4000
    assert ratio.shape == (20,)
    assert abs(ratio.mean().item() - (1 - bias)) < 0.06, ratio
    assert bool(((ratio > 0.8 - bias) & (ratio < 1.2)).all()), ratio


@pytest.mark.parametrize("method", ["bulk", "mean"])
@pytest.mark.parametrize("rho", [0.7, 0.9])
def test_ess_of_ar1_matches_theory(rho, method):
    """ESS = N M (1 - rho) / (1 + rho) for AR(1); per-dimension sd ~7% (rho = .7) and ~13% (rho = .9),
    measured: the mean over 16 dims (sd <= 3.3%) within 10%, each dimension within 40%."""
    g = torch.Generator().manual_seed(5)
    x = ar1(rho, 2000, 4, 16, g)
    truth = 2000 * 4 * (1 - rho) / (1 + rho)
    ratio = ess(x, method=method) / truth
    assert abs(ratio.mean().item() - 1) < 0.1, ratio
    assert bool(((ratio > 0.6) & (ratio < 1.4)).all()), ratio


def test_ess_antithetic_exceeds_draws_and_event_shape():
    g = torch.Generator().manual_seed(6)
    x = ar1(-0.5, 1000, 2, 6, g).reshape(1000, 2, 2, 3)
    out = ess(x)
    assert out.shape == (2, 3)
    assert bool((out > 2000).all())  # theory: 2000 * 1.5 / 0.5 = 6000
    se = mcse_mean(x)
    assert se.shape == (2, 3) and bool((se > 0).all())


def test_constant_parameter_is_nan():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(50, 3, 2, dtype=DT, generator=g)
    x[..., 1] = 2.5
    for method in ("bulk", "tail", "mean"):
        out = ess(x, method=method)
        assert math.isfinite(out[0].item()) and math.isnan(out[1].item()), method
    for method in ("rank", "split"):
        out = rhat(x, method=method)
        assert math.isfinite(out[0].item()) and math.isnan(out[1].item()), method
    assert math.isnan(mcse_mean(x)[1].item())


def test_rhat_iid_is_one_and_shifted_chains_are_flagged():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(1000, 4, 3, dtype=DT, generator=g)
    assert bool((rhat(x, method="split") - 1).abs().lt(0.01).all())
    assert bool((rhat(x) - 1).abs().lt(0.01).all())
    x[:, 0] += 2.0  # one chain shifted by 2 sd: theory R-hat ~ sqrt(1 + 0.21 * 2^2) = 1.36
    assert bool((rhat(x, method="split") > 1.1).all())
    assert bool((rhat(x) > 1.1).all())


def test_rhat_matches_split_formula_by_hand():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(11, 2, 1, dtype=DT, generator=g)  # odd: the middle draw is dropped
    halves = [x[:5, 0, 0], x[:5, 1, 0], x[6:, 0, 0], x[6:, 1, 0]]
    means = torch.stack([h.mean() for h in halves])
    w = torch.stack([h.var() for h in halves]).mean()
    b_over_n = means.var()
    expected = math.sqrt(((4 / 5) * w + b_over_n) / w)
    assert rhat(x, method="split")[0].item() == pytest.approx(expected, rel=1e-12)


def test_rank_normalised_rhat_sees_a_scale_difference_and_heavy_tails():
    """Vehtari et al. 2021: equal means but one chain with 3x the scale -> the folded (tail) part
    of the rank-normalised R-hat flags it while the classic R-hat does not."""
    g = torch.Generator().manual_seed(10)
    x = torch.randn(1000, 4, 2, dtype=DT, generator=g)
    x[:, 3] *= 3.0
    assert bool((rhat(x, method="split") < 1.02).all())
    assert bool((rhat(x) > 1.05).all())
    u = torch.rand(1000, 4, 2, dtype=DT, generator=g)
    cauchy = torch.tan(math.pi * (u - 0.5))  # iid Cauchy via the generator
    assert bool((rhat(cauchy) < 1.01).all())


def test_bad_inputs_raise():
    with pytest.raises(DataError, match="draws"):
        ess(torch.randn(10))
    with pytest.raises(DataError, match="at least"):
        rhat(torch.randn(2, 3))
    with pytest.raises(DataError, match="non-finite"):
        ess(torch.tensor([[1.0], [float("nan")], [0.0], [1.0]]))
    with pytest.raises(ConfigError, match="method"):
        ess(torch.randn(10, 2), method="identity")
    with pytest.raises(ConfigError, match="method"):
        rhat(torch.randn(10, 2), method="folded")
    with pytest.raises(ConfigError, match="prob"):
        ess_tail(torch.randn(10, 2), prob=(0.05, 1.5))


def test_importance_ess_is_kish_in_log_space():
    g = torch.Generator().manual_seed(0)
    lw = 2.0 * torch.randn(500, generator=g, dtype=torch.float64)
    w = lw.exp().numpy()
    assert importance_ess(lw) == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-12)
    # exp(1e4) overflows; the shift itself rounds lw by ~1e-12 (float64 ulp at 1e4)
    assert importance_ess(lw + 1e4) == pytest.approx(importance_ess(lw), rel=1e-9)
    assert importance_ess(lw.float().reshape(20, 25)) == pytest.approx(importance_ess(lw), rel=1e-5)
    assert importance_ess(torch.zeros(7)) == pytest.approx(7.0)
    assert importance_ess(torch.tensor([0.0, -math.inf, -math.inf])) == pytest.approx(1.0)
    for bad in ([0.0, math.nan], [0.0, math.inf], [-math.inf, -math.inf]):
        assert math.isnan(importance_ess(torch.tensor(bad)))
    with pytest.raises(DataError, match="empty"):
        importance_ess(torch.zeros(0))
