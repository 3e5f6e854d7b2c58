"""Monte Carlo MLE with standard errors for an Ising model (the ERGM's Geyer–Thompson driver, shared),
against the exact MLE by enumeration of all 2^4 states.

Model: a 4-site ring Ising model (spins +-1), statistics [s_0 s_1, s_1 s_2, s_2 s_3, s_0 s_3, s_0..s_3]. Data:
N = 400 exact draws. The exact MLE solves E_theta[T] = T_bar by Newton's method on the enumerated
log-likelihood; its asymptotic standard errors are sqrt(diag(I^{-1} / N)), I = Cov_theta[T].
Tolerances: |theta_hat - theta_exact| < 4.5 reported MCMC standard errors per coefficient (as in
tests/test_ergm_mcmc_mle.py); the model part of the reported standard errors (total minus MCMC part, in
variance) within 15 % of the exact ones.
"""
import numpy as np
import pytest
import torch


from ebmlab.energies import Ising
from ebmlab.ergm.estimation.exponential_family import TiltedStatistics, fit_exponential_family
from ebmlab.metrics.exact import enumerate_states, exact_log_z
from exact_oracle import newton_mle

N = 400


def _model():
    J = torch.zeros(4, 4, dtype=torch.float64)
    for (i, j), v in zip([(0, 1), (1, 2), (2, 3), (0, 3)], [0.4, -0.3, 0.5, 0.2]):
        J[i, j] = J[j, i] = v
    return Ising(J, torch.tensor([0.2, -0.1, 0.0, 0.3], dtype=torch.float64))


def _data_and_exact_mle():
    model = _model()
    states = enumerate_states(4)
    logp = -model(states) - exact_log_z(model)
    idx = torch.multinomial(logp.exp(), N, replacement=True, generator=torch.Generator().manual_seed(11))
    data = states[idx]
    S = model.statistics(states).numpy()
    t_bar = model.statistics(data).mean(0).numpy()
    theta, inv_info, _ = newton_mle(S, t_bar, iters=50, atol=1e-10)
    return model, data, theta, np.sqrt(np.diag(inv_info) / N)


@pytest.mark.parametrize("start", ["model", "frozen"])
def test_ising_mcmc_mle_matches_the_exact_mle(start):
    model, data, theta, se = _data_and_exact_mle()
    kwargs = {}
    if start == "frozen":
        # every Gibbs update keeps the all-up state: the chains freeze, the statistics never vary, and the
        # fit must restart towards theta = 0 instead of stopping there
        kwargs["init"] = [40.0] * 8
        with pytest.warns(UserWarning, match="do not mix"):
            fit = fit_exponential_family(model, data, generator=torch.Generator().manual_seed(5), **kwargs)
        assert fit.diagnostics["restarts"] >= 1
    else:
        fit = fit_exponential_family(model, data, generator=torch.Generator().manual_seed(4))
    assert fit.converged and fit.stderr_reliable
    z = (fit.theta - theta) / fit.mcmc_se
    assert np.all(np.abs(z) < 4.5), (fit.theta, theta, fit.mcmc_se)
    # the model part of the reported standard errors approximates the exact asymptotic ones
    np.testing.assert_allclose(np.sqrt(fit.stderr ** 2 - fit.mcmc_se ** 2), se, rtol=0.15)
    assert np.all(fit.mcmc_se < fit.stderr)
    # the fitted energy is the exponential family at theta_hat
    x = data[:5]
    expected = -(model.statistics(x) @ torch.as_tensor(fit.theta))
    torch.testing.assert_close(fit.energy(x), expected)
    assert isinstance(fit.energy, TiltedStatistics)


def test_fit_exponential_family_rejects_bad_input():
    from ebmlab import ConfigError, DataError

    model, data, _, _ = _data_and_exact_mle()
    with pytest.raises(DataError, match=r"\[N, 4\]"):
        fit_exponential_family(model, data[:, :3])
    with pytest.raises(DataError, match="0,1"):
        fit_exponential_family(model, data * 2)
    with pytest.raises(ConfigError, match="init must hold 8"):
        fit_exponential_family(model, data, init=[0.0])
    with pytest.raises(ConfigError, match="exponential-family"):
        fit_exponential_family(torch.nn.Identity(), data)
