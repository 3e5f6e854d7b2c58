"""Annealed importance sampling: log Z of a shifted Gaussian within Monte Carlo error."""
import math

import pytest
import torch

from ebmlab import ConfigError
from ebmlab.energies import FunctionEnergy, Gaussian
from ebmlab.metrics import ais_log_z


def test_ais_log_z_of_a_shifted_gaussian():
    g = Gaussian([1.0, -0.5, 0.3], [0.5, 2.0, 1.0])
    energy = FunctionEnergy(lambda x: g(x) - 1.3)  # log Z = 1.3
    energy.energy_and_grad = lambda x: (g.energy_and_grad(x)[0] - 1.3, g.energy_and_grad(x)[1])
    res = ais_log_z(energy, 3, n_samples=2000, n_temperatures=40, transitions=2, step_size=0.2,
                    generator=torch.Generator().manual_seed(0))
    assert 0 < res.standard_error < 0.05
    assert abs(res.log_z - 1.3) < 4 * res.standard_error
    assert 1 < res.ess <= 2000 and 0.3 < res.acceptance_rate <= 1
    assert res.energy_evals == 40 * (1 + 1 + 2)  # the weight update, the kernel's init and 2 MALA steps
    assert res.samples.shape == (2000, 3)


def test_ais_without_transitions_is_plain_importance_sampling_bias_free():
    # one temperature (betas=[1]): AIS reduces to importance sampling from N(0, 2² I), unbiased for Z
    g = Gaussian([0.5, 0.0], [1.0, 1.0])
    res = ais_log_z(g, 2, n_samples=20000, betas=[1.0], base_std=2.0, generator=torch.Generator().manual_seed(1))
    assert abs(res.log_z) < 4 * res.standard_error


def test_ais_bad_options():
    g = Gaussian([0.0], [1.0])
    with pytest.raises(ConfigError, match="betas must increase"):
        ais_log_z(g, 1, betas=[0.5, 0.4, 1.0])
    with pytest.raises(ConfigError, match="step_size"):
        ais_log_z(g, 1, step_size=-1.0)
