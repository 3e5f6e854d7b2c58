"""Noise-contrastive estimation: formula, log-normaliser, consistency on a Gaussian, bad options.

The consistency test draws the noise once (a fixed noise sample behind the ``sample``/``log_prob``
interface) and minimises the NCE objective with LBFGS in float64, so the fitted value is exactly the NCE
M-estimator for T_d data and T_n = ν T_d noise points.  Its standard error comes from the sandwich
formula for the two-sample M-estimator J = (1/T_d)[Σ_t a_t(φ) + Σ_s b_s(φ)]:
Cov(φ̂) = H⁻¹ (Var(∇a) + ν Var(∇b)) H⁻¹ / T_d, φ = (Quadratic parameters, c), propagated by the delta
method to (μ, Σ11, Σ12, Σ22, c); each z-score is compared with the Bonferroni normal quantile at family
level 1e-3.  The truth for c is the exact log Z of the data Gaussian, (d/2) log 2π + ½ log det Σ.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import norm
from torch.func import functional_call, hessian, jacfwd, jacrev

from ebmlab import ConfigError
from ebmlab.energies import MLPEnergy, Quadratic
from ebmlab.objectives import FittedGaussianNoise, NoiseContrastiveEstimation, build

DT = torch.float64
MU = torch.tensor([1.0, -1.0], dtype=DT)
COV = torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=DT)
LOG_Z_TRUE = math.log(2 * math.pi) + 0.5 * math.log(float(torch.linalg.det(COV)))


def gaussian_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return MU + torch.randn(n, 2, generator=g, dtype=DT) @ torch.linalg.cholesky(COV).T


class FixedNoise:
    """A Gaussian noise whose ``sample`` returns one fixed draw (common random numbers for LBFGS)."""

    def __init__(self, data, n, seed):
        self.gauss = FittedGaussianNoise().fit(data)
        self.y = self.gauss.sample(n, generator=torch.Generator().manual_seed(seed), like=data)

    def sample(self, n, generator=None):
        assert n == self.y.shape[0]
        return self.y

    def log_prob(self, x):
        return self.gauss.log_prob(x)


def test_loss_matches_formula():
    energy = MLPEnergy(2, (8,)).double()
    x = gaussian_data(10, 0)
    noise = FixedNoise(x, 30, 1)
    obj = NoiseContrastiveEstimation(noise=noise, noise_ratio=3.0, log_z_init=0.25).to(dtype=DT)
    out = obj(energy, x)
    with torch.no_grad():
        g = lambda z: -energy(z) - 0.25 - math.log(3.0) - noise.log_prob(z)
        expected = -(F.logsigmoid(g(x)).sum() + F.logsigmoid(-g(noise.y)).sum()) / 10
        by_hand = -(sum(math.log(1 / (1 + math.exp(-float(v)))) for v in g(x))
                    + sum(math.log(1 - 1 / (1 + math.exp(-float(v)))) for v in g(noise.y))) / 10
    assert float(out.loss.detach()) == pytest.approx(float(expected), rel=1e-12)
    assert float(out.loss.detach()) == pytest.approx(by_hand, rel=1e-10)
    assert out.stats["log_z"] == pytest.approx(0.25)
    out.loss.backward()
    assert obj.log_z.grad is not None and torch.isfinite(obj.log_z.grad)


def test_fitted_gaussian_noise_log_prob_and_moments():
    x = gaussian_data(5000, 3)
    noise = FittedGaussianNoise().fit(x)
    ref = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T))
    pts = torch.randn(20, 2, dtype=DT)
    assert torch.allclose(noise.log_prob(pts), ref.log_prob(pts), rtol=1e-5)
    y = noise.sample(200000, generator=torch.Generator().manual_seed(4), like=x)
    # mean error ~ sqrt(Σ_ii / n) = 0.003
    assert torch.allclose(y.mean(0), x.mean(0), atol=4.5 * math.sqrt(2.0 / 200000))


def test_parameters_state_dict_and_prepare():
    obj = build("nce")
    assert [p is obj.log_z for p in obj.parameters()] == [True]
    x = gaussian_data(100, 5)
    obj.prepare(x)
    assert torch.allclose(obj.noise.mean, x.mean(0))
    state = obj.state_dict()
    assert set(state) == {"log_z", "noise.mean", "noise.chol", "noise.event_shape"}
    other = build("nce")
    other.load_state_dict(state)
    assert torch.allclose(other.noise.log_prob(x), obj.noise.log_prob(x))
    assert list(NoiseContrastiveEstimation(learn_log_z=False).parameters()) == []


def test_lazy_noise_fit_on_first_batch():
    obj = NoiseContrastiveEstimation()
    x = gaussian_data(64, 6).float()
    out = obj(MLPEnergy(2, (8,)), x, generator=torch.Generator().manual_seed(0))
    assert obj.noise.fitted and torch.isfinite(out.loss)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"noise_ratio": 0.0}, "noise_ratio"),
        ({"noise_ratio": -2.0}, "noise_ratio"),
        ({"noise": object()}, "noise must have sample"),
        ({"learn_log_z": "yes"}, "learn_log_z"),
        ({"log_z_init": float("inf")}, "log_z_init"),
        ({"log_z_init": "guess"}, "log_z_init must be a finite number or 'auto'"),
        ({"n_log_z_init": 0}, "n_log_z_init"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        NoiseContrastiveEstimation(**kwargs)


def _nce_terms(q, v, unflat, x, y, log_q, nu):
    """Per-point NCE log-likelihood terms (data: log σ(G), noise: log σ(-G)) at flat parameters v = (θ, c)."""
    u = functional_call(q, unflat(v[:-1]), (torch.cat([x, y]),))
    g = -u - v[-1] - math.log(nu) - log_q
    return F.logsigmoid(g[: x.shape[0]]), F.logsigmoid(-g[x.shape[0]:])


def test_nce_recovers_gaussian_and_log_z():
    n, nu = 4000, 4.0
    x = gaussian_data(n, 7)
    noise = FixedNoise(x, int(nu * n), 8)
    obj = NoiseContrastiveEstimation(noise=noise, noise_ratio=nu, log_z_init=0.0).to(dtype=DT)
    q = Quadratic(2, dtype=DT)
    params = list(q.parameters()) + list(obj.parameters())
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=300, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-11, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = obj(q, x).loss
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    # the learned c is the log-normaliser of the learned energy ...
    assert float(obj.log_z) == pytest.approx(float(q.log_normalizer()), abs=0.1)

    # ... and, with sandwich standard errors, (μ, Σ, c) match the truth
    names = [k for k, _ in q.named_parameters()]
    shapes = [p.shape for _, p in q.named_parameters()]
    sizes = [p.numel() for _, p in q.named_parameters()]

    def unflat(v):
        return {k: t.reshape(s) for k, t, s in zip(names, torch.split(v, sizes), shapes)}

    y = noise.y
    log_q = noise.log_prob(torch.cat([x, y])).detach()
    phi = torch.cat([p.detach().reshape(-1) for p in params])

    def data_terms(v):
        return _nce_terms(q, v, unflat, x, y, log_q, nu)[0]

    def noise_terms(v):
        return _nce_terms(q, v, unflat, x, y, log_q, nu)[1]

    def mean_loss(v):
        a, b = _nce_terms(q, v, unflat, x, y, log_q, nu)
        return -(a.sum() + b.sum()) / n

    ja, jb = jacfwd(data_terms)(phi), jacfwd(noise_terms)(phi)
    h_inv = torch.linalg.inv(hessian(mean_loss)(phi))
    cov_phi = h_inv @ (torch.cov(ja.T) + nu * torch.cov(jb.T)) @ h_inv / n

    def summary(v):
        p = unflat(v[:-1])
        chol = torch.diag_embed(torch.exp(p["log_diag"])) + torch.stack(
            [torch.zeros(2, dtype=DT), torch.cat([p["lower"], torch.zeros(1, dtype=DT)])])
        cov = torch.linalg.inv(chol @ chol.T)
        return torch.cat([p["mean"], cov[0, 0:1], cov[0, 1:2], cov[1, 1:2], v[-1:]])

    jf = jacrev(summary)(phi)
    se = torch.sqrt(torch.diagonal(jf @ cov_phi @ jf.T))
    truth = torch.cat([MU, COV[0, 0:1], COV[0, 1:2], COV[1, 1:2], torch.tensor([LOG_Z_TRUE], dtype=DT)])
    z = (summary(phi) - truth) / se
    assert torch.all(z.abs() < norm.ppf(1 - 1e-3 / (2 * 6))), z
    assert torch.all(se < 0.1)  # the standard errors are those of a 4000-point estimate, not vacuous


def test_default_nce_trains_with_adam():
    """``build("nce")`` with no options (fitted Gaussian noise, ν = 1), minibatch Adam, learns μ, Σ and log Z."""
    n = 4000
    x = gaussian_data(n, 9)
    q = Quadratic(2, dtype=DT)
    obj = build("nce").to(dtype=DT)
    obj.prepare(x)
    g = torch.Generator().manual_seed(10)
    opt = torch.optim.Adam(list(q.parameters()) + list(obj.parameters()), lr=0.02)
    for step in range(700):
        if step == 500:
            for group in opt.param_groups:
                group["lr"] = 0.002
        batch = x[torch.randint(0, n, (256,), generator=g)]
        loss = obj(q, batch, generator=g).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    # loose (SGD noise dominates): 0.1 in the mean, 10% in Σ, 0.1 in log Z
    assert torch.allclose(q.mean.detach(), MU, atol=0.1)
    assert torch.allclose(q.covariance().detach(), COV, atol=0.2)
    assert float(obj.log_z) == pytest.approx(LOG_Z_TRUE, abs=0.1)


def test_log_z_auto_is_the_importance_sampling_estimate():
    """log_z_init="auto": at the first call c = log (1/K) Σ exp(-U(y_k) - log q(y_k)), y_k ~ q (the noise)."""
    x = gaussian_data(4000, 11)
    q = Quadratic(2, dtype=DT)  # N(0, I): log Z = log 2π, far from the noise N(x̄, S)
    obj = build("nce", n_log_z_init=2000)
    obj.prepare(x)
    assert obj.log_z_pending and float(obj.log_z) == 0.0
    g = torch.Generator().manual_seed(12)
    estimate = obj.initialize_log_z(q, x, generator=g)
    y = obj.noise.sample(2000, generator=torch.Generator().manual_seed(12), like=x)
    lw = (-q(y) - obj.noise.log_prob(y)).detach()
    assert estimate == pytest.approx(float(torch.logsumexp(lw, 0) - math.log(2000)), abs=1e-12)
    assert float(obj.log_z) == pytest.approx(estimate) and not obj.log_z_pending
    # the estimate's delta-method standard error sd(w)/(sqrt(K) mean(w)), w = exp(lw)
    w = torch.exp(lw - lw.max())
    se = float(w.std() / (math.sqrt(2000) * w.mean()))
    assert abs(estimate - math.log(2 * math.pi)) < 4 * se + 1e-3, (estimate, math.log(2 * math.pi), se)


def test_log_z_auto_happens_once_and_not_after_a_resume():
    x = gaussian_data(500, 13)
    q = Quadratic(2, dtype=DT)
    q.prepare(x)  # the energy is the moment-matched Gaussian: c must start at its exact log Z
    obj = build("nce").to(dtype=DT)
    obj.prepare(x)
    g = torch.Generator().manual_seed(14)
    obj(q, x[:64], generator=g)
    # noise (unbiased covariance) and energy (1/n covariance) nearly coincide: the weights are nearly constant
    assert float(obj.log_z) == pytest.approx(float(q.log_normalizer()), abs=0.01)
    with torch.no_grad():
        obj.log_z.fill_(3.0)
    obj(q, x[:64], generator=g)
    assert float(obj.log_z) == 3.0  # not re-estimated
    resumed = build("nce")
    resumed.load_state_dict(obj.state_dict())
    assert not resumed.log_z_pending and float(resumed.log_z) == 3.0
