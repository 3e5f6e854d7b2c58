"""Parameter gradients of the score-matching family against finite differences.

Each loss is a function of the energy's parameters only (the batch is fixed and the noise /
projections are fixed by a generator re-seeded on every call), so
``torch.autograd.gradcheck`` can compare autograd's gradient (which goes through the
create_graph=True input gradients, Laplacians and Hessian-vector products) with central finite
differences in float64.
"""
import pytest
import torch

from ebmlab._core.random import init_parameters_
from torch.func import functional_call

from ebmlab.energies import Energy, MLPEnergy, NoiseConditionalMLPEnergy, Quadratic
from ebmlab.objectives import (
    DEEN,
    DenoisingScoreMatching,
    DiffusionScoreMatching,
    ExactScoreMatching,
    SlicedScoreMatching,
)

F64 = torch.float64


class _Functional(Energy):
    """An energy evaluating ``module`` with the parameters given to the gradcheck function."""

    def __init__(self, module, params):
        super().__init__()
        self.module = module
        self.params = params
        self.noise_conditional = getattr(module, "noise_conditional", False)

    def forward(self, x, *args):
        return functional_call(self.module, self.params, (x, *args))


def _m_full(z):
    a = torch.stack([1.0 + 0.3 * z[:, 0] ** 2, 0.2 * torch.sin(z[:, 1]), 0.1 * z[:, 0], 1.0 + 0.1 * z[:, 1] ** 2], -1)
    return a.reshape(-1, 2, 2)


OBJECTIVES = {
    "sm": lambda: ExactScoreMatching(),
    "ssm_rademacher_vr": lambda: SlicedScoreMatching(n_projections=2),
    "ssm_gaussian_plain": lambda: SlicedScoreMatching(projection="gaussian", variance_reduction=False),
    "ssm_sphere": lambda: SlicedScoreMatching(projection="sphere"),
    "dsm": lambda: DenoisingScoreMatching(sigma=0.3),
    "dsm_multi": lambda: DenoisingScoreMatching(sigmas=(1.0, 0.1, 3)),
    "deen": lambda: DEEN(sigma=0.5),
    "dsm_diffusion_identity": lambda: DiffusionScoreMatching(),
    "dsm_diffusion_constant": lambda: DiffusionScoreMatching(torch.tensor([[1.0, 0.0], [0.5, 0.7]], dtype=F64)),
    "dsm_diffusion_diag_x": lambda: DiffusionScoreMatching(lambda z: 1.0 + 0.5 * torch.tanh(z)),
    "dsm_diffusion_full_x": lambda: DiffusionScoreMatching(_m_full),
}


def _energies():
    g = torch.Generator().manual_seed(0)  # test network weights only
    return {
        "mlp": init_parameters_(MLPEnergy(2, (5, 5), activation="softplus"), g).double(),
        "mlp_tanh": init_parameters_(MLPEnergy(2, (4,), activation="tanh"), g).double(),
        "quadratic": Quadratic(2, mean=[0.3, -0.2], precision=[[1.5, 0.4], [0.4, 0.8]], dtype=F64),
        "noise_conditional": init_parameters_(NoiseConditionalMLPEnergy(2, (5,)), g).double(),
    }


def _check(objective, module, batch, seed=3):
    names = [n for n, _ in module.named_parameters()]
    start = tuple(p.detach().clone().requires_grad_(True) for _, p in module.named_parameters())

    def loss(*params):
        energy = _Functional(module, dict(zip(names, params)))
        return objective(energy, batch, generator=torch.Generator().manual_seed(seed)).loss

    # the loss is deterministic given the re-seeded generator
    assert torch.equal(loss(*start).detach(), loss(*start).detach())
    assert torch.autograd.gradcheck(loss, start, eps=1e-6, atol=1e-6, rtol=1e-4)
    # and the gradient is not trivially zero
    grads = torch.autograd.grad(loss(*start), start, allow_unused=True)
    assert any(g is not None and g.abs().max() > 1e-6 for g in grads)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("energy", ["mlp", "quadratic"])
def test_parameter_gradients_match_finite_differences(objective, energy):
    batch = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    _check(OBJECTIVES[objective](), _energies()[energy], batch)


@pytest.mark.parametrize("objective", ["sm", "ssm_rademacher_vr", "dsm_diffusion_full_x"])
def test_parameter_gradients_with_another_activation(objective):
    batch = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    _check(OBJECTIVES[objective](), _energies()["mlp_tanh"], batch)


@pytest.mark.parametrize("objective", ["dsm", "dsm_multi", "deen"])
def test_parameter_gradients_of_a_noise_conditional_energy(objective):
    batch = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    _check(OBJECTIVES[objective](), _energies()["noise_conditional"], batch)
