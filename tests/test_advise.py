"""ebmlab.samplers.advise: pilot runs ranked by ESS per gradient evaluation."""
import pytest
import torch

from ebmlab import ConfigError
from ebmlab.energies.analytic import Gaussian
from ebmlab.samplers import Sampler, advise


def test_advise_ranks_gradient_samplers_above_random_walk_on_a_gaussian():
    # on a d = 10 standard Gaussian, RWM's ESS per evaluation is O(1/d) against O(d^-1/3) for MALA and O(d^-1/4)
    # for HMC (Roberts & Rosenthal 1998; Beskos et al. 2013): it must come last
    d = 10
    energy = Gaussian(torch.zeros(d), torch.eye(d))
    x0 = torch.randn(32, d, generator=torch.Generator().manual_seed(0))
    advice = advise(energy, x0, budget=4000, generator=torch.Generator().manual_seed(1))
    assert len(advice.ranking) == 4
    healthy = [p for p in advice.ranking if p.healthy]
    assert healthy[-1].sampler == "rwm" and len(healthy) >= 2
    # unhealthy pilots (e.g. HMC whose trajectory length resonates with the Gaussian's period 2π) rank after all
    # healthy ones
    assert [p.healthy for p in advice.ranking] == sorted((p.healthy for p in advice.ranking), reverse=True)
    assert [p.ess_per_grad for p in healthy] == sorted((p.ess_per_grad for p in healthy), reverse=True)
    assert all(p.stuck_chains == 0 for p in advice.ranking)
    assert isinstance(advice.best, Sampler) and advice.best.name in ("mala", "hmc")
    assert "ESS / grad" in advice.table()


def test_advise_checks_groups_and_input():
    energy = Gaussian(torch.zeros(2), torch.eye(2))
    with pytest.raises(ConfigError, match="groups=4"):
        advise(energy, torch.zeros(6, 2), groups=4)
