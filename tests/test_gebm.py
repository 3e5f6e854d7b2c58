"""GEBM: latent-posterior sampling with the ebmlab samplers against a closed form, the facade's conventions,
save/load and one-line errors."""
import math

import pytest
import torch
from torch import nn

from ebmlab import ConfigError, DataError
from ebmlab.energies.base import Energy
from ebmlab.generators import GEBM, LatentPosterior, sample_latent_posterior
from ebmlab.samplers import build


class Quadratic(Energy):
    def __init__(self, m, P):
        super().__init__()
        self.m, self.P = m, P

    def forward(self, x):
        d = x - self.m
        return 0.5 * ((d @ self.P) * d).sum(1)


def _linear_case(temperature):
    """B(z) = A z + b, E(x) = ½ (x − m)ᵀ P (x − m): ν_β = N(μ, Λ⁻¹), Λ = I + β AᵀPA, μ = Λ⁻¹ β AᵀP (m − b)."""
    A = torch.tensor([[1.0, 0.5], [0.0, 1.0], [0.5, -0.5]], dtype=torch.float64)
    b = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    m = torch.tensor([1.0, 0.5, -1.0], dtype=torch.float64)
    P = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.0], [0.0, 0.0, 0.5]], dtype=torch.float64)
    base = nn.Linear(2, 3).double()
    with torch.no_grad():
        base.weight.copy_(A)
        base.bias.copy_(b)
    beta = 1.0 / temperature
    Lam = torch.eye(2, dtype=torch.float64) + beta * A.T @ P @ A
    mu = torch.linalg.solve(Lam, beta * A.T @ P @ (m - b))
    return Quadratic(m, P), base, mu, Lam


SAMPLERS = {  # sampler, steps, exact stationary precision of the discretisation (None: the target's)
    "mala": (lambda: "mala", 300),
    "hmc": (lambda: "hmc", 200),
    "ula": (lambda: build("ula", step_size=0.05), 400),
    "kinetic_langevin": (lambda: build("kinetic_langevin", step_size=0.2, friction=1.0), 400),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_each_sampler_matches_closed_form_latent_posterior(name, temperature):
    energy, base, mu, Lam = _linear_case(temperature)
    make, steps = SAMPLERS[name]
    n = 4000
    g = torch.Generator().manual_seed(7)
    z0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x, z, info = sample_latent_posterior(energy, base, z0, sampler=make(), temperature=temperature, steps=steps,
                                         generator=g)
    cov = torch.linalg.inv(Lam)
    if name == "ula":
        # ULA's exact stationary law on a Gaussian target: covariance (Λ − hΛ²/2)⁻¹, same mean
        cov = torch.linalg.inv(Lam - 0.5 * 0.05 * Lam @ Lam)
    assert torch.allclose(x, base(z).detach())
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert bool(((z.mean(0) - mu).abs() < 4 * se_mean).all()), (z.mean(0), mu)
    emp = torch.cov(z.T)
    se_cov = ((torch.diagonal(cov)[:, None] * torch.diagonal(cov)[None, :] + cov ** 2) / n).sqrt()
    assert bool(((emp - cov).abs() < 4 * se_cov).all()), (emp, cov)


def test_latent_posterior_energy():
    energy, base, mu, Lam = _linear_case(0.5)
    post = LatentPosterior(energy, base, temperature=0.5)
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expect = 0.5 * (z ** 2).sum(1) + 2.0 * energy(base(z))
    assert torch.allclose(post(z), expect)


@pytest.fixture(scope="module")
def fitted():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    x = centres[torch.randint(0, 2, (600,), generator=g)] + 0.3 * torch.randn(600, 2, generator=g)
    model = GEBM(steps=60, n_energy_steps=3, final_energy_steps=20, batch_size=64, sample_steps=30, random_state=0).fit(x)
    return model, x


def test_fit_conventions_and_reproducibility(fitted):
    model, x = fitted
    assert model.data_shape_ == (2,) and model.latent_dim_ == 2 and model.seed_ == 0
    assert len(model.history_["kale_bound"]) == 60 and all(math.isfinite(v) for v in model.history_["energy_loss"])
    again = GEBM(steps=60, n_energy_steps=3, final_energy_steps=20, batch_size=64, sample_steps=30, random_state=0).fit(x)
    assert torch.equal(again.sample_generator(50, random_state=3), model.sample_generator(50, random_state=3))
    a = model.sample(50, random_state=4)
    assert a.shape == (50, 2) and torch.equal(a, model.sample(50, random_state=4))
    assert not torch.equal(a, model.sample(50, random_state=5))
    for s in ("ula", "hmc", "kinetic_langevin"):
        assert bool(torch.isfinite(model.sample(20, sampler=s, temperature=0.01, steps=10, random_state=0)).all())


def test_save_load_roundtrip(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    loaded = GEBM.load(tmp_path / "m")
    assert loaded.log_partition_ == pytest.approx(model.log_partition_)
    assert torch.equal(loaded.sample_generator(30, random_state=1), model.sample_generator(30, random_state=1))
    assert torch.allclose(loaded.sample(30, random_state=2), model.sample(30, random_state=2))


def test_images_shape_and_errors(fitted):
    model, x = fitted
    with pytest.raises(ConfigError, match="unknown latent sampler 'gibbs'"):
        model.sample(5, sampler="gibbs")
    with pytest.raises(ConfigError, match="temperature must be a finite number > 0"):
        model.sample(5, temperature=0.0)
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(5, temperature=-1.0)
    with pytest.raises(DataError, match=r"X rows have shape \(1, 8, 8\), but data_shape=\(1, 28, 28\)"):
        GEBM(data_shape=(1, 28, 28), steps=1).fit(torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ConfigError, match="not fitted"):
        GEBM().sample(3)
    imgs = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    m = GEBM(steps=2, n_energy_steps=1, final_energy_steps=1, batch_size=8, sample_steps=3, random_state=0).fit(imgs)
    out = m.sample(4, random_state=0)
    assert out.shape == (4, 1, 8, 8) and float(out.min()) >= 0 and float(out.max()) <= 1
    big = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    m28 = GEBM(steps=1, n_energy_steps=1, final_energy_steps=1, batch_size=8, sample_steps=2, random_state=0).fit(big)
    assert m28.latent_dim_ == 32 and m28.sample(2, random_state=0).shape == (2, 1, 28, 28)


def test_cli_train_gebm_writes_run_directory(tmp_path):
    from ebmlab.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--model", "gebm", "--data", "checkerboard", "--steps", "5", "--n-train", "300",
               "--n-test", "100", "--n-samples", "60", "--sample-steps", "5", "--batch-size", "32",
               "--model-params", "{final_energy_steps: 5, n_energy_steps: 2}", "--out", str(out)])
    assert rc == 0
    for f in ("config.yaml", "gebm.safetensors", "log.csv", "metrics.json", "panel.png"):
        assert (out / f).exists(), f
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("sinkhorn_generator", "sinkhorn_latent_beta1", "sinkhorn_latent_beta100", "sinkhorn_data"):
        assert math.isfinite(metrics[key])
    assert GEBM.load(out).latent_dim_ == 2


def test_cli_rejects_unknown_model_params(tmp_path, capsys):
    from ebmlab.cli import main

    rc = main(["train", "--model", "gebm", "--data", "checkerboard", "--model-params", "{foo: 1}",
               "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "unknown model_params ['foo'] for --model gebm" in capsys.readouterr().err


def test_bench_gebm_tiny_run_writes_tables(tmp_path):
    """The benchmark suite end to end at toy sizes: every method per (set, seed), the paired-wins table, JSON."""
    import json

    from ebmlab.bench.gebm import run_gebm_bench

    res = run_gebm_bench(tmp_path, quick=True, settings={"seeds": [0, 1], "steps": 3, "final_energy_steps": 3,
                                                          "n": 40, "sample_steps": 4, "sets": ("8gaussians",)})
    assert [f.name for f in res["files"]] == ["gebm.md", "gebm.json", "gebm_panels.png"]
    assert all(f.exists() and f.stat().st_size > 0 for f in res["files"])
    data = json.loads((tmp_path / "gebm.json").read_text())
    assert data["complete"] and [(r["data"], r["seed"]) for r in data["rows"]] == [("8gaussians", 0), ("8gaussians", 1)]
    expected = {"data_floor", "generator", "sir", "latent_mala", "latent_ula", "latent_hmc", "latent_kinetic_langevin",
                "latent_mala_prior_init", "latent_mala_beta100", "pcd_ebm_equal_time"}
    for r in data["rows"]:
        assert set(r["methods"]) == expected and r["n"] == 40
        assert r["methods"]["sir"]["ess"] >= 1
        for m in ("data_floor", "generator", "sir", "latent_mala", "latent_ula", "latent_mala_prior_init"):
            assert r["methods"][m]["finite"] and r["methods"][m]["sinkhorn"] >= 0
    gen = res["sinkhorn"]["8gaussians"]["generator"]
    assert gen["n"] == 2 and gen["mean"] == pytest.approx(
        sum(r["methods"]["generator"]["sinkhorn"] for r in data["rows"]) / 2)
    md = (tmp_path / "gebm.md").read_text()
    assert "Seeds [0, 1]" in md and "| 8gaussians | sinkhorn |" in md and "/2 |" in md
    with pytest.raises(ConfigError, match="unknown bench gebm settings"):
        run_gebm_bench(tmp_path, quick=True, settings={"sample_stepz": 3})


def test_generator_loss_is_self_normalised_reweighted_pathwise_gradient():
    """d/dx_j of the generator loss = w_j ∇E(x_j), w = softmax(−E(x)) (weights sum to one; a shift of E is a no-op)."""
    from ebmlab.objectives.kale import KALEObjective

    energy, _, _, _ = _linear_case(1.0)
    g = torch.Generator().manual_seed(3)
    x = (2.0 * torch.randn(50, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    loss = KALEObjective.generator_loss(energy, x)
    (grad,) = torch.autograd.grad(loss, x)
    e = energy(x).detach()
    w = torch.softmax(-e, 0)
    expected = w[:, None] * ((x.detach() - energy.m) @ energy.P)
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-12)
    assert float(loss) == pytest.approx(-(torch.logsumexp(-e, 0) - math.log(50)).item(), rel=1e-12)


def test_bench_gebm_reports_a_diverged_seed_and_scores_the_others(tmp_path, monkeypatch):
    from ebmlab import TrainingDivergedError
    from ebmlab.bench.gebm import run_gebm_bench

    real_fit = GEBM.fit

    def fit(self, X, *args, **kwargs):
        if self.random_state == 1:
            raise TrainingDivergedError("GEBM training diverged at step 7: energy loss nan")
        return real_fit(self, X, *args, **kwargs)

    monkeypatch.setattr(GEBM, "fit", fit)
    res = run_gebm_bench(tmp_path, quick=True, settings={"seeds": [0, 1], "steps": 3, "final_energy_steps": 3,
                                                          "n": 40, "sample_steps": 4, "sets": ("2spirals",)})
    assert res["sinkhorn"]["2spirals"]["generator"]["n"] == 1
    md = (tmp_path / "gebm.md").read_text()
    assert "| 2spirals | 1/2 (diverged: seed [1]) |" in md and "2spirals seed 1: training diverged" in md
    assert "| 2spirals | sinkhorn | " in md and "/1 |" in md


def test_energy_step_sets_c_to_the_batch_maximiser_of_the_kale_bound():
    """ĉ = log mean exp(−E(B(z))) maximises the batch bound F(c) = −mean(E(x) + c) − mean exp(−E(B(z)) − c) + 1
    (concave in c): dF/dc = 0 at ĉ, F(ĉ) ≥ F on a grid, and the energy loss uses ĉ with the envelope gradient."""
    from ebmlab.objectives.kale import KALEObjective

    energy, _, _, _ = _linear_case(1.0)
    energy.m = energy.m.clone().requires_grad_(True)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    fake = 2.0 * torch.randn(80, 3, generator=g, dtype=torch.float64) + 1.0
    e_real, e_fake = energy(x).detach(), energy(fake).detach()
    c_hat = KALEObjective.optimal_log_partition(e_fake)
    assert float(c_hat) == pytest.approx(math.log(torch.exp(-e_fake).mean().item()), rel=1e-12)
    c = c_hat.clone().requires_grad_(True)
    (dc,) = torch.autograd.grad(KALEObjective.bound(e_real, e_fake, c), c)
    assert abs(float(dc)) < 1e-8
    best = float(KALEObjective.bound(e_real, e_fake, c_hat))
    grid = c_hat + torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    values = torch.stack([KALEObjective.bound(e_real, e_fake, v) for v in grid])
    assert float(values.max()) <= best + 1e-12 and float(values.min()) < best - 0.1
    assert best == pytest.approx(-(e_real.mean() + c_hat).item(), rel=1e-12)  # F(ĉ) = −mean E(x) − ĉ
    loss, stats = KALEObjective(gradient_penalty=0.0).energy_loss(energy, x, fake)
    assert stats["log_partition"] == pytest.approx(float(c_hat), rel=1e-12)
    assert stats["kale_bound"] == pytest.approx(best, rel=1e-12)
    (grad,) = torch.autograd.grad(loss, energy.m)
    profiled = energy(x).mean() + torch.logsumexp(-energy(fake), 0) - math.log(80)  # −max_c F, c not detached
    (expected,) = torch.autograd.grad(profiled, energy.m)
    assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-12)


def test_importance_resample_matches_closed_form_latent_posterior():
    """SIR from η (200k candidates) reproduces ν_β = N(μ, Λ⁻¹) of the linear-Gaussian case: mean within 4 SE, where
    SE² = σ² (1/n + 1/ESS) counts both the n resampled draws and the finite candidate pool."""
    from ebmlab.generators.posterior import importance_resample

    energy, base, mu, Lam = _linear_case(1.0)
    n = 4000
    g = torch.Generator().manual_seed(11)
    x, z, ess = importance_resample(energy, base, n, candidates=200000, latent_dim=2, generator=g,
                                    dtype=torch.float64)
    assert z.shape == (n, 2) and torch.allclose(x, base(z).detach())
    assert 1000 < ess < 200000
    cov = torch.linalg.inv(Lam)
    se = (torch.diagonal(cov) * (1.0 / n + 1.0 / ess)).sqrt()
    assert bool(((z.mean(0) - mu).abs() < 4 * se).all()), (z.mean(0), mu, se)
    emp = torch.cov(z.T)
    se_cov = ((torch.diagonal(cov)[:, None] * torch.diagonal(cov)[None, :] + cov ** 2) * (1.0 / n + 1.0 / ess)).sqrt()
    assert bool(((emp - cov).abs() < 4 * se_cov).all()), (emp, cov)


class _Bimodal(Energy):
    """E(x) = −log ν(x) − x²/2 with ν = 0.2 N(−2, 0.5²) + 0.8 N(2, 0.5²): with B = identity the latent posterior
    ν_1(z) ∝ η(z) exp(−E(z)) is exactly ν, two modes separated by a barrier of about 8 nats."""

    def forward(self, x):
        z = x[:, 0]
        comp = torch.stack([math.log(0.2) - 2.0 * (z + 2.0) ** 2, math.log(0.8) - 2.0 * (z - 2.0) ** 2], 1)
        return -torch.logsumexp(comp, 1) - 0.5 * z ** 2


def _hand_built_gebm(**kw):
    base = nn.Linear(1, 1).double()
    with torch.no_grad():
        base.weight.fill_(1.0)
        base.bias.zero_()
    model = GEBM(**kw)
    model.energy_, model.generator_ = _Bimodal(), base
    model.latent_dim_, model.data_shape_ = 1, (1,)
    return model


def test_sir_initialised_chains_get_the_mode_weights_that_prior_started_chains_miss():
    """On ν = 0.2 N(−2, .25) + 0.8 N(2, .25), MALA chains started at z ~ η keep roughly the η-mass of each basin
    (P_η(z > −0.09) ≈ 0.535 on the right-hand mode; some chains cross while the step size adapts), far from 0.8;
    SIR-started chains get the correct 0.8 (within 4 SE, SE² = p(1 − p)(1/n + 1/ESS)); sample_importance too."""
    model = _hand_built_gebm(sample_steps=200)
    n = 2000
    x = model.sample(n, sampler="mala", random_state=0)
    ess = model.last_sample_ess_
    assert ess > 1000 and model.last_sample_info_.acceptance_rate > 0.3
    se = math.sqrt(0.16 * (1.0 / n + 1.0 / ess))
    frac = float((x[:, 0] > 0).double().mean())
    assert abs(frac - 0.8) < 4 * se, (frac, se)
    prior = float((model.sample(n, sampler="mala", init="prior", random_state=0)[:, 0] > 0).double().mean())
    assert model.last_sample_ess_ is None
    assert 0.8 - prior > 0.08, prior  # 0.67 measured: a few chains cross the barrier during adaptation, not 0.8
    xs = model.sample_importance(n, random_state=1)
    frac = float((xs[:, 0] > 0).double().mean())
    assert abs(frac - 0.8) < 4 * math.sqrt(0.16 * (1.0 / n + 1.0 / model.last_sample_ess_)), frac
    with pytest.raises(ConfigError, match="init must be one of sir, prior"):
        model.sample(5, init="data")
    with pytest.raises(ConfigError, match="candidates must be an integer >= 1"):
        model.sample_importance(5, candidates=0)


def test_low_temperature_samples_are_finite_and_final_schedule_options(fitted):
    model, x = fitted
    for init in ("sir", "prior"):
        out = model.sample(50, sampler="mala", temperature=0.01, steps=20, init=init, random_state=0)
        assert bool(torch.isfinite(out).all())
    with pytest.raises(ConfigError, match="final_energy_schedule must be one of linear, constant"):
        GEBM(final_energy_schedule="cosine", steps=1).fit(x)
    with pytest.raises(ConfigError, match="final_batch_size=10000 exceeds the 600 training rows"):
        GEBM(final_batch_size=10000, steps=1, n_energy_steps=1, batch_size=8).fit(x)
    with pytest.raises(ConfigError, match="final_batch_size must be an integer >= 1"):
        GEBM(final_batch_size=0, steps=1).fit(x)


def test_importance_resample_refuses_a_nan_energy():
    from ebmlab._core.errors import TrainingDivergedError
    from ebmlab.generators.posterior import importance_resample

    class _NaNAtRight(Energy):
        def forward(self, x):
            return torch.where(x[:, 0] > 0, torch.full_like(x[:, 0], float("nan")), x[:, 0] ** 2)

    base = nn.Identity()
    with pytest.raises(TrainingDivergedError, match="NaN or -inf at"):
        importance_resample(_NaNAtRight(), base, 10, candidates=100, latent_dim=1,
                            generator=torch.Generator().manual_seed(0))
