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
