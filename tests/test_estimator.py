"""EnergyModel facade: sklearn conventions, fit/sample/score/log_prob, save/load."""
import math

import numpy as np
import pytest
import torch

from ebmlab import ConfigError, DataError, EnergyModel
from ebmlab.energies import MLPEnergy
from ebmlab.samplers import MALA, ULA


def _blob(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) * torch.tensor([1.0, 0.5]) + torch.tensor([2.0, -1.0])


def test_constructor_only_stores_parameters():
    m = EnergyModel(objective="no-such-objective", steps=-5)  # validation happens in fit
    assert m.get_params()["objective"] == "no-such-objective"
    assert not hasattr(m, "energy_")
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        m.fit(_blob())
    with pytest.raises(ConfigError, match="unknown objective 'no-such-objective'"):
        m.set_params(steps=5).fit(_blob())
    with pytest.raises(ConfigError, match="unknown parameter 'stepz'"):
        m.set_params(stepz=3)


@pytest.mark.parametrize("call", [
    lambda m: m.sample(3), lambda m: m.score_samples(np.zeros((2, 2))), lambda m: m.energy_values(np.zeros((2, 2))),
    lambda m: m.log_prob(np.zeros((2, 2))), lambda m: m.score(np.zeros((2, 2))), lambda m: m.noise(3),
    lambda m: m.normalizer, lambda m: m.save("/nonexistent/never-written"),
], ids=["sample", "score_samples", "energy_values", "log_prob", "score", "noise", "normalizer", "save"])
def test_unfitted_model_says_so(call):
    with pytest.raises(ConfigError, match="not fitted"):
        call(EnergyModel())


def test_fit_sample_score_log_prob_save_load(tmp_path):
    x = _blob()
    m = EnergyModel(energy_params={"hidden": [32, 32]}, objective="pcd", steps=150, batch_size=64,
                    objective_params={"steps": 10, "buffer_size": 500}, sampler_params={"step_size": 0.02},
                    sample_steps=100, random_state=0, device="cpu")
    assert m.fit(x.numpy()) is m  # numpy input accepted
    assert m.n_features_in_ == 2 and len(m.history_.loss) == 150
    s1 = m.sample(50, random_state=3)
    s2 = m.sample(50, random_state=3)
    assert s1.shape == (50, 2) and torch.equal(s1, s2)
    scores = m.score_samples(x[:10])
    assert scores.shape == (10,) and torch.isfinite(scores).all()
    lp = m.log_prob(x[:10])
    # log_prob - score_samples is the constant -log Z
    assert torch.allclose(lp - scores, (lp - scores)[0].expand(10), atol=1e-4)
    m.save(tmp_path / "model")
    m2 = EnergyModel.load(tmp_path / "model")
    assert torch.allclose(m2.score_samples(x[:10]), scores)
    assert m2.get_params() == m.get_params()
    with pytest.raises(DataError, match="features per row"):
        m.score_samples(torch.zeros(3, 5))


def test_log_prob_in_high_dimension_is_refused_with_a_reason():
    x = torch.randn(100, 3)
    m = EnergyModel(energy_params={"hidden": [8]}, steps=2, objective_params={"steps": 1}, device="cpu").fit(x)
    with pytest.raises(ConfigError, match="log_prob needs a tractable normaliser"):
        m.log_prob(x[:3])


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="no model at"):
        EnergyModel.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds neither"):
        EnergyModel.load(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="corrupted"):
        EnergyModel.load(tmp_path / "bad")


def test_bad_data_is_refused():
    with pytest.raises(DataError, match="non-finite"):
        EnergyModel(steps=1).fit(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]))
    with pytest.raises(DataError, match="at least 2 rows"):
        EnergyModel(steps=1).fit(np.zeros((1, 2)))


# -- scikit-learn conventions --------------------------------------------------------------------------------------
def test_constructor_is_keyword_only_and_parameters_come_from_its_signature():
    with pytest.raises(TypeError):
        EnergyModel("mlp")  # noqa - positional arguments are refused
    names = EnergyModel.parameter_names()
    assert names[:3] == ["energy", "energy_params", "objective"] and "random_state" in names and "seed" not in names
    m = EnergyModel(steps=7, random_state=3)
    assert list(m.get_params(deep=False)) == names
    assert m.get_params()["steps"] == 7 and m.get_params()["random_state"] == 3
    sklearn_base = pytest.importorskip("sklearn.base")
    c = sklearn_base.clone(m)
    assert c is not m and c.get_params() == m.get_params()


def test_get_params_deep_and_nested_set_params():
    class Tunable:  # an estimator-valued parameter (anything with get_params/set_params)
        def __init__(self, a=1):
            self.a = a

        def get_params(self, deep=True):
            return {"a": self.a}

        def set_params(self, **p):
            self.a = p["a"]
            return self

    t = Tunable(5)
    m = EnergyModel(sampler=t)
    assert m.get_params(deep=True)["sampler__a"] == 5 and m.get_params(deep=True)["sampler"] is t
    assert "sampler__a" not in m.get_params(deep=False)
    m.set_params(sampler__a=9, steps=3)
    assert t.a == 9 and m.steps == 3
    with pytest.raises(ConfigError, match="has no nested parameters"):
        m.set_params(steps__x=1)


def test_fit_takes_y_none_and_score_is_mean_log_likelihood_where_z_is_known():
    x = _blob(400)
    q = EnergyModel(energy="quadratic", objective="sm", steps=5, random_state=0, device="cpu")
    assert q.fit(x, None) is q and q.fit(x, np.zeros(400)) is q  # y is ignored
    assert q.normalizer == "closed_form"
    assert q.score(x) == pytest.approx(float(q.log_prob(x).mean()), rel=1e-6)
    # closed form: the exact Gaussian log-density, whatever the dimension
    x3 = torch.randn(300, 3, generator=torch.Generator().manual_seed(1))
    q3 = EnergyModel(energy="quadratic", objective="sm", steps=5, random_state=0, device="cpu").fit(x3)
    e = q3.energy_
    ref = torch.distributions.MultivariateNormal(e.mean.detach(), e.covariance().detach()).log_prob(x3)
    assert torch.allclose(q3.log_prob(x3), ref, atol=1e-4)
    # no normaliser (3-D network): score is the mean unnormalised log-density
    n3 = EnergyModel(energy_params={"hidden": [8]}, objective="sm", steps=3, random_state=0, device="cpu").fit(x3)
    assert n3.normalizer is None
    assert n3.score(x3) == pytest.approx(float(n3.score_samples(x3).mean()), rel=1e-6)
    # 2-D network: the grid normaliser
    n2 = EnergyModel(energy_params={"hidden": [8]}, objective="sm", steps=3, random_state=0, device="cpu").fit(x)
    assert n2.normalizer == "grid" and n2.score(x) == pytest.approx(float(n2.log_prob(x).mean()), rel=1e-6)


def test_bad_energy_params_are_config_errors_naming_the_key():
    x = _blob(50)
    with pytest.raises(ConfigError, match=r"'dim' is not an option.*allowed options: hidden, activation"):
        EnergyModel(energy_params={"dim": 3}, steps=1).fit(x)
    with pytest.raises(ConfigError, match=r"energy 'mlp' has no option 'hiden'; allowed options: hidden, activation"):
        EnergyModel(energy_params={"hiden": [3]}, steps=1).fit(x)
    with pytest.raises(ConfigError, match=r"energy 'quadratic' has no option 'cov'; allowed options: mean, precision"):
        EnergyModel(energy="quadratic", energy_params={"cov": 1}, steps=1).fit(x)


def test_every_registered_energy_rejects_unknown_options_with_a_config_error():
    from ebmlab.energies.registry import ENERGIES, build_energy, energy_options

    checked = 0
    for name in ENERGIES.names():
        with pytest.raises(ConfigError, match="'dim' is not an option"):
            build_energy(name, 4, dim=3)
        if energy_options(name) is not None:  # factories taking **kwargs validate their own options
            with pytest.raises(ConfigError, match=f"energy '{name}' has no option 'no_such_option'"):
                build_energy(name, 4, no_such_option=1)
            checked += 1
    assert checked >= 4


def test_an_energy_object_is_copied_trained_and_saved(tmp_path):
    x = _blob(300)
    net = MLPEnergy(2, hidden=(16,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    m = EnergyModel(energy=net, objective="ed", steps=20, random_state=0, device="cpu").fit(x)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the object passed in is untouched
    assert m.energy_ is not net and m.get_params()["energy"] is net
    with pytest.raises(ConfigError, match="energy_params apply only when the energy is given by name"):
        EnergyModel(energy=net, energy_params={"hidden": [4]}, steps=1).fit(x)
    with pytest.raises(DataError, match="dim=2"):
        EnergyModel(energy=net, steps=1).fit(torch.randn(20, 3))
    m.save(tmp_path / "m")  # a registered energy class: saved by name + config()
    back = EnergyModel.load(tmp_path / "m")
    assert back.energy == "mlp" and back.energy_params == {"hidden": [16], "activation": "softplus"}
    assert torch.allclose(back.score_samples(x[:5]), m.score_samples(x[:5]))

    from ebmlab.energies import Energy

    class CustomEnergy(Energy):  # not registered: trains, but cannot be rebuilt at load
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            return (self.w * x**2).sum(1)

    c = EnergyModel(energy=CustomEnergy(), objective="sm", steps=2, random_state=0, device="cpu").fit(x)
    with pytest.raises(ConfigError, match="not a registered energy"):
        c.save(tmp_path / "c")


def test_random_state_seeds_training_and_sample_draws_fresh_unless_seeded():
    x = _blob(300)
    kw = dict(energy_params={"hidden": [8]}, objective="ed", steps=10, sample_steps=5, device="cpu")
    state = torch.get_rng_state()
    a = EnergyModel(random_state=4, **kw).fit(x)
    b = EnergyModel(random_state=4, **kw).fit(x)
    assert a.seed_ == 4 and all(torch.equal(v, b.energy_.state_dict()[k]) for k, v in a.energy_.state_dict().items())
    fresh = EnergyModel(**kw).fit(x)  # random_state=None: a fresh seed, recorded
    again = EnergyModel(random_state=fresh.seed_, **kw).fit(x)
    assert all(torch.equal(v, again.energy_.state_dict()[k]) for k, v in fresh.energy_.state_dict().items())
    s1, s2 = a.sample(20), a.sample(20)
    assert not torch.equal(s1, s2)  # fresh draws on each call
    assert torch.equal(a.sample(20, random_state=a.last_sample_seed_), s2)  # the recorded seed repeats them
    assert torch.equal(a.sample(20, random_state=7), a.sample(20, random_state=7))
    assert torch.equal(torch.get_rng_state(), state)  # fit and sample never touch the global generator
    with pytest.raises(ConfigError, match="random_state must be None or an integer"):
        a.sample(3, random_state=1.5)
    with pytest.raises(TypeError):
        a.sample(3, 7)  # keyword-only


def test_one_sampler_rule():
    x = _blob(300)
    mala = MALA(step_size=0.05)
    m = EnergyModel(energy_params={"hidden": [8]}, objective="pcd", sampler=mala,
                    objective_params={"steps": 2, "buffer_size": 200}, steps=3, sample_steps=4, random_state=0,
                    device="cpu").fit(x)
    assert m.sampler_ is mala and m.objective_.sampler is mala  # one sampler: training chains and sample()
    m.sample(5, random_state=0)
    assert m.last_sample_info_.step_size > 0
    ula = ULA(step_size=0.003)
    o = EnergyModel(energy_params={"hidden": [8]}, objective="pcd", sampler=mala,
                    objective_params={"sampler": ula, "steps": 2, "buffer_size": 200}, steps=3, random_state=0,
                    device="cpu").fit(x)
    assert o.objective_.sampler is ula and o.sampler_ is mala  # objective_params['sampler']: training chains only
    named = EnergyModel(energy_params={"hidden": [8]}, objective="pcd", sampler="mala", sampler_params={"step_size": 0.02},
                        objective_params={"sampler": {"name": "ula", "step_size": 0.004}, "steps": 2, "buffer_size": 200},
                        steps=2, random_state=0, device="cpu").fit(x)
    assert isinstance(named.objective_.sampler, ULA) and named.objective_.sampler.step_size == 0.004
    assert isinstance(named.sampler_, MALA) and named.sampler_.step_size == 0.02
    with pytest.raises(ConfigError, match="apply only when the sampler is given by name"):
        EnergyModel(sampler=mala, sampler_params={"step_size": 0.1}, steps=1).fit(x)
    with pytest.raises(ConfigError, match="sampler must be a sampler name"):
        EnergyModel(sampler=3, steps=1).fit(x)
    with pytest.raises(ConfigError, match="unknown sampler 'lngevin'"):
        EnergyModel(objective_params={"sampler": "lngevin"}, steps=1).fit(x)
    with pytest.raises(ConfigError, match="needs a 'name' key"):
        EnergyModel(objective_params={"sampler": {"step_size": 0.1}}, steps=1).fit(x)


def test_standardised_network_works_in_data_units(tmp_path):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(500, 2, generator=g) * torch.tensor([30.0, 0.5]) + torch.tensor([400.0, -7.0])
    m = EnergyModel(energy_params={"hidden": [16]}, objective="ed", steps=30, sample_steps=20, random_state=0,
                    device="cpu").fit(x)
    std = m.standardization_
    assert std is not None and torch.allclose(std.shift, x.double().mean(0)) and torch.allclose(
        std.scale, x.double().std(0, correction=0))
    inner = m.energy_.energy
    z = ((x.double() - std.shift) / std.scale).float()
    # U_x(x) = U_z(z) + Σ log scale: the change of variables, so exp(-U_x) has the same normaliser
    assert torch.allclose(m.energy_values(x[:7]), inner(z[:7]).detach() + float(torch.log(std.scale).sum()), atol=1e-3)
    assert torch.allclose(m.energy_.energy_and_grad(x[:7])[1],
                          inner.energy_and_grad(z[:7])[1] / std.scale.float(), atol=1e-5)
    # the grid density of x integrates to one over the data box (log-Jacobian included)
    from ebmlab.metrics import grid_log_z

    b = m.bounds_.tolist()
    assert grid_log_z(m.energy_, (tuple(b[0]), tuple(b[1])), 300) == pytest.approx(
        grid_log_z(inner, tuple(tuple((v - float(std.shift[i])) / float(std.scale[i]) for v in b[i]) for i in range(2)), 300),
        abs=1e-3)
    s = m.sample(200, random_state=1)
    lo, hi = m.bounds_[:, 0], m.bounds_[:, 1]
    assert ((s > lo - 0.5 * (hi - lo)) & (s < hi + 0.5 * (hi - lo))).all()  # draws are in the data's units
    m.save(tmp_path / "std")
    back = EnergyModel.load(tmp_path / "std")
    assert torch.allclose(back.standardization_.scale, std.scale)
    assert torch.allclose(back.score_samples(x[:5]), m.score_samples(x[:5]))
    assert torch.equal(back.sample(10, random_state=2), m.sample(10, random_state=2))
    # a parametric energy initialises itself from the data instead (parameters in the data's units)
    q = EnergyModel(energy="quadratic", objective="sm", steps=2, random_state=0, device="cpu").fit(x)
    assert q.standardization_ is None and float(q.energy_.mean[0].detach()) == pytest.approx(float(x[:, 0].mean()), abs=1.0)
    off = EnergyModel(energy_params={"hidden": [8]}, objective="ed", standardize=False, steps=2, random_state=0,
                      device="cpu").fit(x)
    assert off.standardization_ is None
    # "auto" leaves data near the origin at unit scale alone; True forces the map
    near = EnergyModel(energy_params={"hidden": [8]}, objective="ed", steps=2, random_state=0, device="cpu").fit(_blob())
    assert near.standardization_ is None
    forced = EnergyModel(energy_params={"hidden": [8]}, objective="ed", standardize=True, steps=2, random_state=0,
                         device="cpu").fit(_blob())
    assert forced.standardization_ is not None
    with pytest.raises(ConfigError, match="standardize must be 'auto', True or False"):
        EnergyModel(standardize="yes", steps=1).fit(x)
