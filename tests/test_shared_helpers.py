"""The helpers that several modules share: option tensors, two-sample inputs, discrete starts, autograd."""
import numpy as np
import pytest
import torch

from ebmlab import ConfigError, DataError
from ebmlab._core.tensors import as_float_tensor
from ebmlab.energies import Gaussian, Ising
from ebmlab.energies.binary import check_discrete_state
from ebmlab.metrics.samples import as_sample_pair, as_samples, subsample_rows


def test_as_float_tensor_dtypes_shapes_and_copies():
    t64 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    out = as_float_tensor("v", t64)
    assert out.dtype == torch.float64 and torch.equal(out, t64)
    out[0] = 5.0
    assert t64[0] == 1.0  # never shares memory with the input
    assert as_float_tensor("v", [1, 2]).dtype == torch.get_default_dtype()
    assert as_float_tensor("v", np.arange(3)).dtype == torch.get_default_dtype()
    assert as_float_tensor("v", t64, dtype=torch.float32).dtype == torch.float32
    assert as_float_tensor("v", [[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, shape=(2, 2)).shape == (2, 2)
    grad = torch.ones(2, requires_grad=True)
    assert not as_float_tensor("v", grad).requires_grad
    with pytest.raises(ConfigError, match=r"v must have shape \(3,\)"):
        as_float_tensor("v", [1.0, 2.0], shape=(3,))
    with pytest.raises(ConfigError, match="finite"):
        as_float_tensor("v", [1.0, float("nan")])
    with pytest.raises(ConfigError, match="real-valued"):
        as_float_tensor("v", torch.tensor([True, False]))
    with pytest.raises(ConfigError, match="real-valued"):
        as_float_tensor("v", torch.tensor([1 + 2j]))
    with pytest.raises(ConfigError, match="converted"):
        as_float_tensor("v", "abc")


def test_energies_use_the_shared_option_check():
    with pytest.raises(ConfigError, match="mean must be finite"):
        Gaussian([0.0, float("inf")], 1.0)
    with pytest.raises(ConfigError, match="J must be real-valued"):
        Ising(torch.zeros(3, 3, dtype=torch.bool))
    J = torch.zeros(3, 3)
    J[0, 1] = J[1, 0] = 0.5
    e = Ising(J)
    J[0, 1] = 9.0  # the energy keeps its own copy
    assert float(e.J[0, 1]) == 0.5


def test_two_sample_inputs():
    x = as_samples([1.0, 2.0, 3.0], "x")
    assert x.shape == (3, 1) and x.dtype == torch.float64
    with pytest.raises(DataError, match="at least 2 rows"):
        as_samples([[1.0, 2.0]], "x")
    assert as_samples([[1.0, 2.0]], "x", min_rows=1).shape == (1, 2)
    with pytest.raises(DataError, match="x contains 1 non-finite"):
        as_samples([[1.0], [float("nan")]], "x")
    with pytest.raises(DataError, match="same number of columns"):
        as_sample_pair(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(DataError, match="y must be a 2-D"):
        as_sample_pair(torch.zeros(3, 2), torch.zeros(3, 2, 1))
    z = torch.arange(20.0)[:, None]
    assert subsample_rows(z, None, torch.Generator()) is z
    assert subsample_rows(z, 20, torch.Generator()) is z
    sub = subsample_rows(z, 5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(sub, z[torch.randperm(20, generator=torch.Generator().manual_seed(1))[:5]])
    assert len(set(sub[:, 0].tolist())) == 5  # without replacement


def test_discrete_state_check():
    e = Ising(torch.zeros(3, 3))
    x = torch.tensor([[0.0, 1.0, 1.0]])
    assert check_discrete_state(e, x, "Gibbs") is x
    with pytest.raises(ConfigError, match="Wolff samples discrete energies"):
        check_discrete_state(Gaussian([0.0, 0.0], 1.0), x, "Wolff")
    with pytest.raises(DataError, match=r"\[batch, 3\]"):
        check_discrete_state(e, torch.zeros(1, 4), "Gibbs")
    with pytest.raises(DataError, match="only 0 and 1"):
        check_discrete_state(e, torch.tensor([[0.0, 2.0, 1.0]]), "Gibbs")
    with pytest.raises(DataError, match="x0 must be a"):
        check_discrete_state(e, torch.zeros(3), "Gibbs")
