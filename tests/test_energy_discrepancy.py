"""Energy discrepancy: the estimator's formula, its perturbations, and its consistency on a Gaussian.

Consistency tests fit ``Quadratic`` (a learnable Gaussian) with LBFGS in float64 on N data points whose
perturbations are drawn once (common random numbers), so the fitted value is exactly the ED M-estimator.
Its standard error comes from the sandwich formula Cov = H⁻¹ V H⁻¹ / N (H: Hessian of the mean loss,
V: covariance of the per-sample gradients; each data point with its own perturbations is one iid term),
propagated to mean and covariance entries by the delta method.  The test asserts every z-score is below
the Bonferroni-corrected normal quantile at family level 1e-3.
"""
import math

import pytest
import torch
from scipy.stats import norm
from torch.func import functional_call, hessian, jacfwd, jacrev

from ebmlab import ConfigError
from ebmlab.energies import MLPEnergy, Quadratic
from ebmlab.objectives import (
    PERTURBATIONS,
    EnergyDiscrepancy,
    GaussianPerturbation,
    Perturbation,
    build,
    build_perturbation,
    energy_discrepancy_loss,
)

DT = torch.float64
MU = torch.tensor([1.0, -1.0], dtype=DT)
COV = torch.tensor([[1.0, 0.5], [0.5, 2.0]], dtype=DT)


def gaussian_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return MU + torch.randn(n, 2, generator=g, dtype=DT) @ torch.linalg.cholesky(COV).T


# ---------------------------------------------------------------------------------------------- formula
def brute_force_loss(u_data, u_neg, w):
    n, m = u_neg.shape
    total = 0.0
    for i in range(n):
        s = w / m + sum(math.exp(float(u_data[i] - u_neg[i, j])) for j in range(m)) / m
        total += math.log(s)
    return total / n


@pytest.mark.parametrize("w", [1.0, 0.3, 0.0])
@pytest.mark.parametrize("m", [1, 4])
def test_loss_matches_brute_force(w, m):
    g = torch.Generator().manual_seed(0)
    u_data = torch.randn(7, generator=g, dtype=DT)
    u_neg = 2 * torch.randn(7, m, generator=g, dtype=DT)
    got = float(energy_discrepancy_loss(u_data, u_neg, w))
    assert got == pytest.approx(brute_force_loss(u_data, u_neg, w), rel=1e-12, abs=1e-12)


def test_objective_uses_its_negatives_and_formula():
    energy = MLPEnergy(2, (16,)).double()
    x = gaussian_data(32, 1)
    obj = EnergyDiscrepancy(m=5, w=1.0, t=0.7)
    neg = obj.negatives(x, torch.Generator().manual_seed(3))
    out = obj(energy, x, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        u_neg = energy(neg.reshape(-1, 2)).reshape(32, 5)
        expected = brute_force_loss(energy(x), u_neg, 1.0)
    assert float(out.loss) == pytest.approx(expected, rel=1e-10)
    assert out.loss.requires_grad
    assert set(out.stats) >= {"energy_data", "energy_neg"}


def test_w0_is_unbounded_below_for_m1():
    # w = 0, M = 1: L = mean U(x) - U(x'); pushing U(x') up lowers it without bound
    u_data = torch.zeros(5, dtype=DT)
    for big in (1.0, 10.0, 100.0):
        assert float(energy_discrepancy_loss(u_data, torch.full((5, 1), big, dtype=DT), 0.0)) == pytest.approx(-big)
    # with w = 1 the same energies give a loss bounded below by log(w / M)
    assert float(energy_discrepancy_loss(u_data, torch.full((5, 1), 100.0, dtype=DT), 1.0)) >= math.log(1.0) - 1e-12


# ---------------------------------------------------------------------------------------------- perturbations
def test_gaussian_perturbation_sqrt_t_convention():
    t = 2.5
    p = GaussianPerturbation(t=t)
    x = torch.zeros(200000, 1, dtype=DT)
    g = torch.Generator().manual_seed(0)
    y = p.perturb(x, g)
    xn = p.contrast(y, 3, g)
    assert xn.shape == (200000, 3, 1)
    # Var(y - x) = t, Var(x' - y) = t: relative MC error of a variance ~ sqrt(2/n) = 0.0032
    assert float(y.var()) == pytest.approx(t, rel=4.5 * math.sqrt(2 / 200000))
    assert float((xn - y.unsqueeze(1)).var()) == pytest.approx(t, rel=4.5 * math.sqrt(2 / 600000))


def test_any_event_shape():
    class ImageEnergy(torch.nn.Module):
        def forward(self, x):
            assert x.shape[1:] == (3, 4, 4)
            return x.pow(2).flatten(1).sum(1)

    x = torch.randn(6, 3, 4, 4, dtype=DT)
    obj = EnergyDiscrepancy(m=3)
    obj.prepare(x)  # t from the data, over every element of the event
    assert obj.perturbation.t == pytest.approx(float(x.reshape(6, -1).var(0, correction=0).mean()))
    assert obj.negatives(x).shape == (6, 3, 3, 4, 4)
    out = obj(ImageEnergy(), x, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)


def test_registry_and_build():
    assert "gaussian" in PERTURBATIONS
    obj = build("ed")
    assert isinstance(obj.perturbation, GaussianPerturbation)
    assert (obj.m, obj.w, obj.perturbation.t) == (4, 1.0, None)  # t comes from the data (prepare)
    assert obj.continuous
    assert build("ed", t=3.0).perturbation.t == 3.0

    class Shift(Perturbation):
        def perturb(self, x, generator=None):
            return x + 1

        def contrast(self, y, m, generator=None):
            return (y - 1).unsqueeze(1).expand(-1, m, *y.shape[1:])

    custom = Shift()
    assert build_perturbation(custom) is custom
    assert EnergyDiscrepancy(perturbation=custom, m=2).perturbation is custom


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"m": 0}, "m must be"),
        ({"m": 2.5}, "m must be"),
        ({"w": -1.0}, "w must be"),
        ({"w": float("nan")}, "w must be"),
        ({"t": 0.0}, "t must be"),
        ({"t": -1.0}, "t must be"),
        ({"perturbation": "nope"}, "unknown perturbation 'nope'; valid names are: .*gaussian"),
        ({"perturbation": 3}, "perturbation must be"),
        ({"perturbation": GaussianPerturbation(), "t": 2.0}, "apply only when"),
        ({"sigma": 1.0}, "perturbation 'gaussian' has no option 'sigma'; allowed options: t"),
    ],
)
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        EnergyDiscrepancy(**kwargs)


# ---------------------------------------------------------------------------------------------- consistency
def _fit_quadratic(x, neg, w):
    q = Quadratic(2, dtype=DT)
    m = neg.shape[1]
    opt = torch.optim.LBFGS(q.parameters(), lr=1.0, max_iter=300, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-11, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = energy_discrepancy_loss(q(x), q(neg.reshape(-1, 2)).reshape(-1, m), w)
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    return q


def _sandwich_z(q, x, neg, w):
    """z-scores of (mean, Σ11, Σ12, Σ22) against the truth, with sandwich standard errors."""
    names = [k for k, _ in q.named_parameters()]
    shapes = [p.shape for _, p in q.named_parameters()]
    sizes = [p.numel() for _, p in q.named_parameters()]
    phi = torch.cat([p.detach().reshape(-1) for p in q.parameters()])
    n, m = neg.shape[:2]

    def unflat(v):
        return {k: t.reshape(s) for k, t, s in zip(names, torch.split(v, sizes), shapes)}

    def per_sample(v):
        u = functional_call(q, unflat(v), (torch.cat([x, neg.reshape(-1, 2)]),))
        diff = u[:n].unsqueeze(1) - u[n:].reshape(n, m)
        if w > 0:
            diff = torch.cat([diff, torch.full((n, 1), math.log(w), dtype=DT)], 1)
        return torch.logsumexp(diff, 1)

    jac = jacfwd(per_sample)(phi)                         # [N, P], P forward passes
    hess = hessian(lambda v: per_sample(v).mean())(phi)   # [P, P]
    v_mat = torch.cov(jac.T)
    h_inv = torch.linalg.inv(hess)
    cov_phi = h_inv @ v_mat @ h_inv / n

    def summary(v):
        params = unflat(v)
        chol = _chol(params)
        mod_cov = torch.linalg.inv(chol @ chol.T)
        return torch.cat([params["mean"], mod_cov[0, 0:1], mod_cov[0, 1:2], mod_cov[1, 1:2]])

    f_hat = summary(phi)
    jf = jacrev(summary)(phi)
    se = torch.sqrt(torch.diagonal(jf @ cov_phi @ jf.T))
    truth = torch.cat([MU, COV[0, 0:1], COV[0, 1:2], COV[1, 1:2]])
    return (f_hat - truth) / se


def _chol(params):
    ld, lower = params["log_diag"], params["lower"]
    return torch.diag_embed(torch.exp(ld)) + torch.stack(
        [torch.stack([torch.zeros((), dtype=DT), torch.zeros((), dtype=DT)]),
         torch.stack([lower[0], torch.zeros((), dtype=DT)])])


BONFERRONI_5 = norm.ppf(1 - 1e-3 / (2 * 5))  # 5 quantities, family-wise level 1e-3: 3.89


@pytest.mark.parametrize("m", [1, 4])
def test_w1_is_consistent_for_any_m(m):
    """With w = 1 the loss is the cross-entropy of picking x among {x, x'_1..x'_M}: its minimiser is p_data."""
    n = 4000
    x = gaussian_data(n, 10 + m)
    obj = EnergyDiscrepancy(m=m, w=1.0, t=1.0)
    neg = obj.negatives(x, torch.Generator().manual_seed(20 + m))
    q = _fit_quadratic(x, neg, 1.0)
    z = _sandwich_z(q, x, neg, 1.0)
    assert torch.all(z.abs() < BONFERRONI_5), z


def test_w0_small_m_is_biased_and_detected():
    """w = 0 with finite M is only consistent as M → ∞: the same z-test rejects it (the test has power)."""
    n = 4000
    x = gaussian_data(n, 31)
    obj = EnergyDiscrepancy(m=8, w=0.0, t=1.0)
    neg = obj.negatives(x, torch.Generator().manual_seed(32))
    q = _fit_quadratic(x, neg, 0.0)
    z = _sandwich_z(q, x, neg, 0.0)
    assert z[2:].abs().max() > 2 * BONFERRONI_5, z        # covariance shrunk far beyond MC error
    assert float(q.covariance()[1, 1]) < 0.95 * float(COV[1, 1])


def test_default_ed_trains_a_gaussian_with_adam():
    """``build("ed")`` with no options, minibatch Adam: the learned Gaussian is near the data's."""
    n = 4000
    x = gaussian_data(n, 41)
    q = Quadratic(2, dtype=DT)
    obj = build("ed")
    obj.prepare(x)  # what ebmlab.fit does: t from the training set
    g = torch.Generator().manual_seed(42)
    opt = torch.optim.Adam(q.parameters(), lr=0.02)
    for step in range(600):
        if step == 400:
            for group in opt.param_groups:
                group["lr"] = 0.002
        batch = x[torch.randint(0, n, (256,), generator=g)]
        loss = obj(q, batch, generator=g).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    # loose (SGD noise, not MC error, dominates): 0.1 in the mean, 10% in the covariance
    assert torch.allclose(q.mean.detach(), MU, atol=0.1)
    assert torch.allclose(q.covariance().detach(), COV, atol=0.1 * float(COV.max()))


def test_default_t_is_the_data_mean_variance():
    """t = tr(S)/d (S with 1/n) from prepare; an explicit t is kept; the fitted t survives a resume."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1000, 3, generator=g, dtype=DT) * torch.tensor([1.0, 10.0, 0.1], dtype=DT) + 50.0
    obj = build("ed")
    obj.prepare(x)
    expected = float(x.var(0, correction=0).mean())
    assert obj.perturbation.t == pytest.approx(expected, rel=1e-12)
    state = obj.state_dict()
    resumed = build("ed")
    resumed.load_state_dict(state)
    assert resumed.perturbation.t == pytest.approx(expected, rel=1e-12)
    fixed = build("ed", t=0.5)
    fixed.prepare(x)
    assert fixed.perturbation.t == 0.5 and fixed.state_dict() == {}
    with pytest.raises(ValueError, match="unexpected keys"):
        fixed.load_state_dict(state)
    # without prepare, t comes from the first batch, with a warning
    lazy = build("ed")
    with pytest.warns(UserWarning, match="first batch"):
        lazy.negatives(x[:100], generator=g)
    assert lazy.perturbation.t == pytest.approx(float(x[:100].var(0, correction=0).mean()), rel=1e-12)
    with pytest.raises(ConfigError, match="t is not set"):
        GaussianPerturbation().perturb(x)
