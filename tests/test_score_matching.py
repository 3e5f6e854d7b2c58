"""Score-matching family: closed-form optima on Gaussians, exactness, unbiasedness, validation.

Closed forms.  For the Gaussian family U(x) = ½(x-μ)ᵀP(x-μ) every estimator here is a quadratic
function of θ = (P11, P12, P22, b1, b2) with b = Pμ (∇U = Px - b, ΔU = tr P): with the noise and
projections fixed it reads  mean_k ½‖D_k θ - e_k‖² - mean_k ℓ_kᵀθ , whose unique minimiser solves
(mean DᵀD) θ = mean Dᵀe + mean ℓ.  `_closed_form` computes it in numpy from the SAME noise draws the
objective uses (taken from its public `perturb` / `draw_projections` with an identically seeded
generator), independently of the objective's code.  The library objective is then minimised
over `Quadratic`'s log-Cholesky parameters with L-BFGS and compared to it.

Tolerance of the fits: the loss is strictly convex in (P, b) and the parametrisation is a
bijection, so at L-BFGS convergence (gradient norm <= 1e-10) the distance to the minimiser is
~1e-9; we allow 1e-6 (relative to the scale of P), far below any modelling difference
(e.g. the σ² shift of DSM is 0.25 here).
"""
import numpy as np
import pytest
import torch

from ebmlab._core.random import init_parameters_
from scipy import stats

from ebmlab import ConfigError, DataError
from ebmlab.energies import Energy, FunctionEnergy, MLPEnergy, NoiseConditionalMLPEnergy, Quadratic
from ebmlab.objectives import (
    DEEN,
    DenoisingScoreMatching,
    DiffusionScoreMatching,
    ExactScoreMatching,
    SlicedScoreMatching,
    build,
)
from ebmlab.objectives.denoising_score_matching import geometric_sigmas, parse_sigmas
from ebmlab.objectives.autograd import differentiable_input, divergence, energy_and_grad_graph

F64 = torch.float64
TRUE_MEAN = np.array([1.0, -2.0])
TRUE_COV = np.array([[1.5, 0.7], [0.7, 1.0]])


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.multivariate_normal(TRUE_MEAN, TRUE_COV, size=n))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _mlp(seed=0, hidden=(16, 16)):
    return init_parameters_(MLPEnergy(2, hidden), torch.Generator().manual_seed(seed)).double()


# ---------------------------------------------------------------------------------------------
# closed forms (numpy, independent of the objectives)
def _design(z):
    """D with D θ = P z - b for θ = (P11, P12, P22, b1, b2); z: [n, 2] -> [n, 2, 5]."""
    z = np.asarray(z)
    d = np.zeros((len(z), 2, 5))
    d[:, 0, 0], d[:, 0, 1], d[:, 0, 3] = z[:, 0], z[:, 1], -1.0
    d[:, 1, 1], d[:, 1, 2], d[:, 1, 4] = z[:, 0], z[:, 1], -1.0
    return d


def _trace_coef(a):
    """ℓ with ℓᵀθ = tr(A P) for symmetric P; a: [n, 2, 2] or [2, 2]."""
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    out = np.zeros((len(a), 5))
    out[:, 0], out[:, 1], out[:, 2] = a[:, 0, 0], a[:, 0, 1] + a[:, 1, 0], a[:, 1, 1]
    return out


def _closed_form(d, e=None, lin=None):
    """argmin_θ mean_k ½‖D_k θ - e_k‖² - mean_k ℓ_kᵀθ, returned as (P, μ)."""
    n = d.shape[0]
    h = np.einsum("kri,krj->ij", d, d) / n
    rhs = np.zeros(5)
    if e is not None:
        rhs += np.einsum("kri,kr->i", d, np.asarray(e)) / n
    if lin is not None:
        rhs += np.asarray(lin).mean(0)
    th = np.linalg.solve(h, rhs)
    p = np.array([[th[0], th[1]], [th[1], th[2]]])
    assert np.all(np.linalg.eigvalsh(p) > 0)
    return p, np.linalg.solve(p, th[3:])


def _fit_quadratic(objective, x, seed=0, energy=None):
    """Minimise the objective over a float64 Quadratic with L-BFGS, noise fixed by re-seeding."""
    q = Quadratic(2, dtype=F64) if energy is None else energy
    opt = torch.optim.LBFGS(
        list(q.parameters()), lr=1.0, max_iter=500, tolerance_grad=1e-11, tolerance_change=1e-16,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = objective(q, x, generator=_gen(seed)).loss
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    grad_norm = sum(float(p.grad.abs().max()) for p in q.parameters())
    assert grad_norm < 1e-6, f"L-BFGS did not converge (max |grad| {grad_norm})"
    return q


def _assert_fit(q, p_ref, mu_ref, tol=1e-6):
    p = q.precision().detach().numpy()
    scale = np.abs(p_ref).max()
    assert np.abs(p - p_ref).max() < tol * scale, (p, p_ref)
    assert np.abs(q.mean.detach().numpy() - mu_ref).max() < tol * max(1.0, np.abs(mu_ref).max())


# ---------------------------------------------------------------------------------------------
# exact score matching
def test_sm_minimiser_is_sample_mean_and_biased_covariance():
    x = _data()
    xn = x.numpy()
    s_biased = np.cov(xn.T, bias=True)
    q = _fit_quadratic(ExactScoreMatching(), x)
    _assert_fit(q, np.linalg.inv(s_biased), xn.mean(0))
    # the independent closed form agrees, and the unbiased covariance is NOT the optimum
    p_cf, mu_cf = _closed_form(_design(xn), lin=_trace_coef(np.eye(2)))
    assert np.allclose(p_cf, np.linalg.inv(s_biased), rtol=1e-10)
    assert np.abs(q.covariance().detach().numpy() - np.cov(xn.T)).max() > 1e-4


def test_sm_laplacian_is_exact_hessian_trace_for_any_event_shape():
    e = _mlp(1)
    x = torch.randn(7, 2, generator=_gen(3), dtype=F64)
    t = ExactScoreMatching().terms(e, x)
    hess = torch.stack([torch.autograd.functional.hessian(lambda z: e(z[None])[0], xi) for xi in x])
    grads = torch.autograd.functional.jacobian(lambda z: e(z).sum(), x)
    assert torch.allclose(t["laplacian"], torch.diagonal(hess, dim1=1, dim2=2).sum(-1), rtol=1e-10, atol=1e-12)
    assert torch.allclose(t["score_sq"], grads.pow(2).sum(-1), rtol=1e-10, atol=1e-14)
    # the same rows as [batch, 1, 2] (flattened by the energy) give the same loss
    sm = ExactScoreMatching()
    assert torch.allclose(sm(e, x).loss, sm(e, x.reshape(7, 1, 2)).loss, rtol=1e-13)


def test_laplacian_of_a_quadratic_is_trace_of_precision_and_linear_energy_is_handled():
    q = Quadratic(3, precision=[[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=F64)
    x = torch.randn(5, 3, generator=_gen(0), dtype=F64)
    t = ExactScoreMatching().terms(q, x)
    assert torch.allclose(t["laplacian"], torch.full((5,), 3.5, dtype=F64), rtol=1e-12)
    a = torch.tensor([1.0, -2.0, 0.5], dtype=F64, requires_grad=True)
    lin = FunctionEnergy(lambda z: z @ a)
    out = ExactScoreMatching()(lin, x)
    assert out.stats["laplacian"] == 0.0
    assert torch.allclose(out.loss, 0.5 * a.detach().pow(2).sum())


# ---------------------------------------------------------------------------------------------
# sliced score matching
@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_ssm_minimiser_with_fixed_projections(projection, variance_reduction):
    x = _data(200)
    obj = SlicedScoreMatching(n_projections=2, projection=projection, variance_reduction=variance_reduction)
    q = _fit_quadratic(obj, x, seed=5)
    v = obj.draw_projections(200, 2, dtype=F64, device=x.device, generator=_gen(5)).reshape(-1, 2).numpy()
    xr = np.tile(x.numpy(), (2, 1))  # row j*n + i is data row i under projection j
    d = _design(xr)
    if not variance_reduction:
        d = np.einsum("kr,kri->ki", v, d)[:, None, :]
    p_ref, mu_ref = _closed_form(d, lin=_trace_coef(np.einsum("ki,kj->kij", v, v)))
    _assert_fit(q, p_ref, mu_ref)
    if variance_reduction:  # the mean is exactly the sample mean (the projections only touch P)
        assert np.allclose(mu_ref, x.numpy().mean(0), rtol=1e-10)


def test_ssm_is_an_unbiased_estimate_of_sm():
    """Per data point, the mean of K independent SSM evaluations must match SM's value within
    MC error: |mean - sm| / (sd/√K) below the Bonferroni-corrected normal quantile (overall
    level 1e-3) over 6 configurations x 8 points."""
    e = _mlp(2, (12, 12))
    x = torch.randn(8, 2, generator=_gen(11), dtype=F64) * 1.5
    sm = ExactScoreMatching().per_sample(e, x).detach()
    k = 600
    configs = [(p, vr) for p in ("rademacher", "gaussian", "sphere") for vr in (True, False)]
    crit = stats.norm.isf(1e-3 / (2 * len(configs) * len(x)))
    for i, (proj, vr) in enumerate(configs):
        obj = SlicedScoreMatching(projection=proj, variance_reduction=vr)
        vals = obj.per_sample(e, x.repeat(k, 1), generator=_gen(100 + i)).detach().reshape(k, len(x))
        mcse = vals.std(0) / np.sqrt(k)
        assert torch.all(mcse > 0)
        z = (vals.mean(0) - sm) / mcse
        assert torch.all(z.abs() < crit), (proj, vr, z)
    # and the projections are genuinely random: SSM differs from SM row by row
    one = SlicedScoreMatching(projection="gaussian").per_sample(e, x, generator=_gen(0)).detach()
    assert not torch.allclose(one, sm)


def test_ssm_projections_have_identity_second_moment():
    for proj in ("rademacher", "gaussian", "sphere"):
        v = SlicedScoreMatching(n_projections=4, projection=proj).draw_projections(
            5000, 3, dtype=F64, device=torch.device("cpu"), generator=_gen(1)
        ).reshape(-1, 3)
        m2 = v.T @ v / len(v)
        # each entry of v vᵀ has variance <= 3 (Gaussian diagonal: 2); 9 entries, 20000 draws
        assert torch.allclose(m2, torch.eye(3, dtype=F64), atol=5 * np.sqrt(3 / len(v)))
        if proj == "rademacher":
            assert set(v.unique().tolist()) == {-1.0, 1.0}
        if proj == "sphere":
            assert torch.allclose(v.norm(dim=1), torch.full((len(v),), np.sqrt(3.0), dtype=F64))


# ---------------------------------------------------------------------------------------------
# denoising score matching and DEEN
def test_dsm_single_sigma_exact_minimiser_over_the_noise_draws():
    x = _data()
    sigma = 0.5
    obj = DenoisingScoreMatching(sigma=sigma)
    q = _fit_quadratic(obj, x, seed=7)
    xt, eps, sig = obj.perturb(x, _gen(7))
    assert torch.all(sig == sigma) and torch.allclose(xt, x + sigma * eps)
    p_ref, mu_ref = _closed_form(_design(xt.numpy()), e=eps.numpy() / sigma)
    _assert_fit(q, p_ref, mu_ref)


def test_dsm_population_minimiser_is_covariance_plus_sigma_squared():
    """Over the noise, the DSM minimiser for Gaussian data is N(x̄, S + σ²I) (S biased sample
    covariance).  The exact fixed-noise minimiser (closed form) for R independent noise sets of
    N = 20 n draws is averaged; its MC standard error comes from the spread over the R sets and
    the bias of this ratio-type estimator is O(1/N), ~5x below the MCSE here."""
    x = _data(300)
    sigma = 0.5
    obj = DenoisingScoreMatching(sigma=sigma)
    xr = x.repeat(20, 1)
    covs, means = [], []
    for r in range(200):
        xt, eps, _ = obj.perturb(xr, _gen(1000 + r))
        p, mu = _closed_form(_design(xt.numpy()), e=eps.numpy() / sigma)
        covs.append(np.linalg.inv(p)[[0, 0, 1], [0, 1, 1]])
        means.append(mu)
    target_cov = (np.cov(x.numpy().T, bias=True) + sigma**2 * np.eye(2))[[0, 0, 1], [0, 1, 1]]
    est = np.hstack([np.mean(covs, 0), np.mean(means, 0)])
    se = np.hstack([np.std(covs, 0, ddof=1), np.std(means, 0, ddof=1)]) / np.sqrt(len(covs))
    z = (est - np.hstack([target_cov, x.numpy().mean(0)])) / se
    assert np.all(np.abs(z) < stats.norm.isf(1e-3 / 10)), z
    # and the σ² shift is resolved: the plain sample covariance is rejected
    z_wrong = (est[:3] - np.cov(x.numpy().T, bias=True)[[0, 0, 1], [0, 1, 1]]) / se[:3]
    assert np.all(np.abs(z_wrong[[0, 2]]) > 50)


def test_deen_is_dsm_times_two_sigma_to_the_fourth_and_has_the_same_minimiser():
    e = _mlp(3)
    x = _data(50)
    for sigma in (0.1, 0.7):
        d = DenoisingScoreMatching(sigma=sigma)(e, x, generator=_gen(4)).loss
        deen = DEEN(sigma=sigma)(e, x, generator=_gen(4)).loss
        assert torch.allclose(deen, 2 * sigma**4 * d, rtol=1e-12)
    x = _data()
    sigma = 0.5
    obj = DEEN(sigma=sigma)
    q = _fit_quadratic(obj, x, seed=8)
    xt, eps, _ = obj.perturb(x, _gen(8))
    # DEEN's own form: ‖σ²(P x̃ - b) - σ ε‖²
    p_ref, mu_ref = _closed_form(sigma**2 * _design(xt.numpy()), e=sigma * eps.numpy())
    _assert_fit(q, p_ref, mu_ref)


def test_multi_sigma_dsm_shared_energy_exact_weighted_minimiser():
    x = _data()
    obj = DenoisingScoreMatching(sigmas=[1.0, 0.5, 0.25])
    q = _fit_quadratic(obj, x, seed=9)
    xt, eps, sig = obj.perturb(x, _gen(9))
    assert set(np.round(sig.numpy(), 12)) == {1.0, 0.5, 0.25}
    s = sig.numpy()[:, None, None]
    p_ref, mu_ref = _closed_form(s * _design(xt.numpy()), e=eps.numpy())  # ½‖σ(P x̃ - b) - ε‖²
    _assert_fit(q, p_ref, mu_ref)


class _PerLevelQuadratic(Energy):
    """A noise-conditional energy with one independent Quadratic per noise level (test only)."""

    noise_conditional = True

    def __init__(self, levels):
        super().__init__()
        self.levels = list(levels)
        self.quads = torch.nn.ModuleList(Quadratic(2, dtype=F64) for _ in self.levels)

    def forward(self, x, sigma):
        out = torch.zeros(x.shape[0], dtype=x.dtype)
        for level, q in zip(self.levels, self.quads):
            out = torch.where(torch.isclose(sigma, torch.tensor(level, dtype=x.dtype)), q(x), out)
        return out


def test_multi_sigma_dsm_noise_conditional_learns_each_smoothing_separately():
    x = _data(400)
    levels = [1.0, 0.5, 0.25]
    obj = DenoisingScoreMatching(sigmas=levels)
    energy = _PerLevelQuadratic(levels)
    # start each level at the moment-matched Gaussian (a plain identity start sends L-BFGS's first
    # line search of this 15-parameter, badly scaled problem into the flat exp(log_diag) -> 0 region)
    s = np.cov(x.numpy().T, bias=True)
    for level, q in zip(levels, energy.quads):
        start = Quadratic(2, mean=x.numpy().mean(0), precision=np.linalg.inv(s + level**2 * np.eye(2)), dtype=F64)
        q.load_state_dict(start.state_dict())
    opt = torch.optim.LBFGS(list(energy.parameters()), max_iter=500, tolerance_grad=1e-11,
                            tolerance_change=1e-16, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = obj(energy, x, generator=_gen(12)).loss
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    xt, eps, sig = obj.perturb(x, _gen(12))
    for level, q in zip(levels, energy.quads):
        rows = np.isclose(sig.numpy(), level)
        p_ref, mu_ref = _closed_form(_design(xt.numpy()[rows]), e=eps.numpy()[rows] / level)
        _assert_fit(q, p_ref, mu_ref, tol=1e-5)


def test_noise_conditional_mlp_is_called_with_the_row_levels():
    seen = {}

    class Spy(NoiseConditionalMLPEnergy):
        def forward(self, x, sigma=None):
            seen["sigma"] = sigma
            return super().forward(x, sigma)

    e = init_parameters_(Spy(2, (8,)), torch.Generator().manual_seed(0)).double()
    obj = DenoisingScoreMatching(sigmas=(1.0, 0.01, 4))
    out = obj(e, _data(64), generator=_gen(2))
    _, _, sig = obj.perturb(_data(64), _gen(2))
    assert torch.equal(seen["sigma"], sig)
    assert torch.isfinite(out.loss)
    # and a shared (not noise-conditional) energy is called without σ
    assert torch.isfinite(obj(_mlp(0), _data(64), generator=_gen(2)).loss)


def test_event_shapes_are_flattened_consistently():
    e = _mlp(4)
    x = _data(30)
    for obj in (SlicedScoreMatching(n_projections=2), DenoisingScoreMatching(), DEEN(),
                DenoisingScoreMatching(sigmas=[1.0, 0.1]), DiffusionScoreMatching(torch.tensor([1.0, 2.0]))):
        a = obj(e, x, generator=_gen(1)).loss
        b = obj(e, x.reshape(30, 2, 1), generator=_gen(1)).loss
        assert torch.allclose(a, b, rtol=1e-13), type(obj).__name__


# ---------------------------------------------------------------------------------------------
# diffusion score matching
def test_diffusion_sm_with_identity_equals_sm():
    e = _mlp(5)
    x = _data(40)
    ref = ExactScoreMatching().per_sample(e, x)
    eye = torch.eye(2, dtype=F64)
    variants = [
        None,
        eye,
        torch.ones(2, dtype=F64),
        lambda z: torch.ones_like(z),
        lambda z: eye.expand(z.shape[0], 2, 2),
    ]
    for m in variants:
        got = DiffusionScoreMatching(m).per_sample(e, x)
        assert torch.allclose(got, ref, rtol=1e-12, atol=1e-14)
    # a constant scalar multiple c·I scales the loss by c²
    got = DiffusionScoreMatching(3.0 * eye).per_sample(e, x)
    assert torch.allclose(got, 9.0 * ref, rtol=1e-12, atol=1e-14)


def test_diffusion_sm_constant_m_has_the_sm_minimiser():
    x = _data()
    xn = x.numpy()
    m = np.array([[1.0, 0.0], [0.7, 0.5]])
    q = _fit_quadratic(DiffusionScoreMatching(torch.tensor(m)), x)
    p_sm = np.linalg.inv(np.cov(xn.T, bias=True))
    _assert_fit(q, p_sm, xn.mean(0))
    d = np.einsum("ji,kjl->kil", m, _design(xn))  # mᵀ(P x - b)
    p_cf, mu_cf = _closed_form(d, lin=_trace_coef(m @ m.T))
    assert np.allclose(p_cf, p_sm, rtol=1e-9) and np.allclose(mu_cf, xn.mean(0), rtol=1e-9)
    # a diagonal m given as a vector is the same as the diagonal matrix
    e = _mlp(6)
    a = DiffusionScoreMatching(torch.tensor([0.5, 2.0], dtype=F64)).per_sample(e, x)
    b = DiffusionScoreMatching(torch.diag(torch.tensor([0.5, 2.0], dtype=F64))).per_sample(e, x)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_diffusion_sm_position_dependent_m_matches_brute_force_divergence():
    """For m(x) depending on x the divergence of Σ(x)∇U must include the derivatives of Σ."""
    e = _mlp(7)
    x = torch.randn(6, 2, generator=_gen(5), dtype=F64)

    def m_full(z):
        a = torch.stack([1.0 + z[:, 0] ** 2, torch.sin(z[:, 1]), 0.3 * z[:, 0], torch.exp(0.2 * z[:, 1])], -1)
        return a.reshape(-1, 2, 2)

    def m_diag(z):
        return 1.0 + 0.5 * torch.tanh(z)

    for m in (m_full, m_diag):
        got = DiffusionScoreMatching(m).per_sample(e, x).detach()
        ref = []
        for xi in x:
            def field(z):
                zb = z[None]
                g = torch.autograd.grad(e(zb).sum(), zb, create_graph=True)[0][0]
                mm = m(zb)[0]
                mm = torch.diag(mm) if mm.ndim == 1 else mm
                return mm @ (mm.T @ g), mm.T @ g

            z = xi.clone().requires_grad_(True)
            f, mtg = field(z)
            jac = torch.autograd.functional.jacobian(lambda w: field(w)[0], xi)
            ref.append(0.5 * mtg.pow(2).sum() - torch.trace(jac))
        assert torch.allclose(got, torch.stack(ref).detach(), rtol=1e-10, atol=1e-12), m.__name__


# ---------------------------------------------------------------------------------------------
# helpers, defaults, validation
def test_divergence_helper_on_a_known_field():
    x = torch.randn(4, 3, generator=_gen(0), dtype=F64).requires_grad_(True)
    field = torch.stack([x[:, 0] ** 3, x[:, 0] * x[:, 1], torch.sin(x[:, 2])], -1)  # div = 3x0² + x0 + cos x2
    expect = 3 * x[:, 0] ** 2 + x[:, 0] + torch.cos(x[:, 2])
    assert torch.allclose(divergence(field, x), expect.detach(), rtol=1e-12)
    u, g = energy_and_grad_graph(Quadratic(3, dtype=F64), differentiable_input(x.detach()))
    assert g.requires_grad and u.shape == (4,)


def test_geometric_sigmas_and_parsing():
    s = geometric_sigmas(1.0, 0.01, 3)
    assert np.allclose(s, [1.0, 0.1, 0.01])
    assert parse_sigmas((1.0, 0.01, 3)) == parse_sigmas({"max": 1.0, "min": 0.01, "n": 3})
    assert parse_sigmas([1.0, 0.01, 3]) == (1.0, 0.01, 3.0)  # a list is always explicit levels
    assert parse_sigmas(torch.tensor([0.5, 0.2], dtype=F64)) == (0.5, 0.2)


@pytest.mark.parametrize("name", ["sm", "ssm", "dsm", "deen", "dsm_diffusion"])
def test_defaults_train_a_gaussian_sensibly(name):
    """build(name) with no options + Adam (full batch, fresh noise every step) recovers the data
    Gaussian; the last 200 iterates are averaged (Polyak-Ruppert).

    Tolerances (relative Frobenius error of the covariance, max error of the mean): 0.03 for the
    noise-free or low-variance losses (sm, dsm_diffusion: ~1e-8; ssm: ~0.007, the Jensen bias of
    averaging P⁻¹ over jittering iterates).  0.12 for dsm/deen at their default σ = 0.1: the
    minimiser for one noise draw moves by ≈ sqrt(tr S / n)/σ ≈ 0.25 (the target ε/σ is 10x the
    signal), so even averaged iterates vary by a few percent (measured max over 8 seeds: 0.045
    and 0.054).  A sign error in any loss makes the fit diverge; scale errors are caught by the
    exact tests above."""
    x = _data(4000)
    obj = build(name)
    q = Quadratic(2, dtype=F64)
    opt = torch.optim.Adam(q.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [150], gamma=0.2)
    g = _gen(0)
    covs, means = [], []
    for step in range(400):
        opt.zero_grad()
        out = obj(q, x, generator=g)
        out.loss.backward()
        opt.step()
        sched.step()
        if step >= 200:
            covs.append(q.covariance().detach().numpy())
            means.append(q.mean.detach().numpy().copy())
    assert all(np.isfinite(v) for v in out.stats.values())
    sigma2 = 0.01 if name in ("dsm", "deen") else 0.0
    target = np.cov(x.numpy().T, bias=True) + sigma2 * np.eye(2)
    tol = 0.12 if name in ("dsm", "deen") else 0.03
    assert np.linalg.norm(np.mean(covs, 0) - target) / np.linalg.norm(target) < tol
    assert np.abs(np.mean(means, 0) - x.numpy().mean(0)).max() < tol


def test_bad_hyper_parameters_raise_config_error_naming_the_value():
    cases = [
        (lambda: DenoisingScoreMatching(sigma=0.0), r"sigma.*0\.0"),
        (lambda: DenoisingScoreMatching(sigma=-1), r"sigma.*-1"),
        (lambda: DenoisingScoreMatching(sigma=float("nan")), r"sigma.*nan"),
        (lambda: DenoisingScoreMatching(sigma=0.1, sigmas=[1.0]), "either sigma or sigmas"),
        (lambda: DenoisingScoreMatching(sigmas=[]), r"sigmas.*\[\]"),
        (lambda: DenoisingScoreMatching(sigmas=[1.0, -0.5]), r"-0\.5"),
        (lambda: DenoisingScoreMatching(sigmas=(0.01, 1.0, 5)), r"sigma_max.*0\.01"),
        (lambda: DenoisingScoreMatching(sigmas=(1.0, 0.1, 1)), r"\bn\b.*1"),
        (lambda: DenoisingScoreMatching(sigmas={"max": 1.0}), "max, min, n"),
        (lambda: DenoisingScoreMatching(sigmas="many"), "many"),
        (lambda: DEEN(sigma=0), r"sigma.*0"),
        (lambda: SlicedScoreMatching(n_projections=0), r"n_projections.*0"),
        (lambda: SlicedScoreMatching(n_projections=1.5), r"n_projections.*1\.5"),
        (lambda: SlicedScoreMatching(projection="cauchy"), r"projection.*cauchy"),
        (lambda: SlicedScoreMatching(variance_reduction="yes"), r"variance_reduction.*yes"),
        (lambda: DiffusionScoreMatching("identity"), r"diffusion.*identity"),
        (lambda: DiffusionScoreMatching(torch.ones(2, 3)), r"\(2, 3\)"),
        (lambda: build("sm", sigma=0.1), "sigma"),
        (lambda: build("ssm", n_projection=2), "n_projection"),
    ]
    for make, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            make()
    # a diffusion callable returning the wrong shape is reported at call time
    bad = DiffusionScoreMatching(lambda z: torch.ones(z.shape[0], 3))
    with pytest.raises(ConfigError, match=r"D=2; got \(5, 3\)"):
        bad(_mlp(0), _data(5))


def test_bad_batches_raise_data_error():
    e = _mlp(0)
    for obj in (ExactScoreMatching(), SlicedScoreMatching(), DenoisingScoreMatching(), DEEN(), DiffusionScoreMatching()):
        with pytest.raises(DataError, match="floating-point"):
            obj(e, torch.ones(4, 2, dtype=torch.int64))
        with pytest.raises(DataError, match=r"\[batch, \*event\]"):
            obj(e, torch.ones(4, dtype=F64))


def test_registered_names():
    from ebmlab.objectives import available

    for name, cls in [("sm", ExactScoreMatching), ("ssm", SlicedScoreMatching), ("dsm", DenoisingScoreMatching),
                      ("deen", DEEN), ("dsm_diffusion", DiffusionScoreMatching)]:
        assert name in available()
        obj = build(name)
        assert isinstance(obj, cls) and obj.continuous and not obj.needs_sampler


def test_noise_conditional_mlp_energy_forms_of_sigma():
    from ebmlab.energies import build_energy

    e = init_parameters_(NoiseConditionalMLPEnergy(2, (8,), sigma=0.3), torch.Generator().manual_seed(0)).double()
    x = _data(6)
    by_default = e(x)
    assert by_default.shape == (6,)
    assert torch.allclose(by_default, e(x, 0.3))
    assert torch.allclose(by_default, e(x, torch.tensor(0.3, dtype=F64)))
    assert torch.allclose(by_default, e(x, torch.full((6,), 0.3, dtype=F64)))
    # U = f([x, log σ]) / σ: scaling by 1/σ is visible when the network's σ input is held fixed
    f = e.net(torch.cat([x, torch.full((6, 1), np.log(0.3), dtype=F64)], 1)).squeeze(-1)
    assert torch.allclose(by_default, f / 0.3, rtol=1e-13)
    assert not torch.allclose(e(x, 0.3), e(x, 0.6))
    with pytest.raises(ConfigError, match=r"Tensor\[6\]"):
        e(x, torch.ones(5, dtype=F64))
    with pytest.raises(ConfigError, match="sigma"):
        NoiseConditionalMLPEnergy(2, sigma=0.0)
    assert isinstance(build_energy("noise_conditional_mlp", 3), NoiseConditionalMLPEnergy)
