"""`sample(..., compile=True)`: refused on CPU with the measured reason; on CUDA the compiled step gives the eager
draws (skipped without a GPU)."""
import pytest
import torch

from ebmlab import ConfigError
from ebmlab.energies.analytic import Gaussian
from ebmlab.samplers import ULA, sample


def _target(device):
    return Gaussian(torch.zeros(2, device=device), torch.tensor([[1.0, 0.3], [0.3, 0.5]], device=device))


def test_compile_is_refused_on_cpu_with_a_reason():
    with pytest.raises(ConfigError, match="refused on CPU.*slower than eager"):
        sample(_target("cpu"), ULA(step_size=0.1), torch.zeros(4, 2), 10, generator=0, compile=True)
    with pytest.raises(ConfigError, match="compile must be True or False"):
        sample(_target("cpu"), ULA(step_size=0.1), torch.zeros(4, 2), 10, generator=0, compile="yes")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compile=True runs on CUDA only; no CUDA device here")
def test_compiled_step_matches_eager_on_cuda():
    x0 = torch.zeros(64, 2, device="cuda")
    eager, _ = sample(_target("cuda"), ULA(step_size=0.1), x0, 50, generator=3)
    compiled, _ = sample(_target("cuda"), ULA(step_size=0.1), x0, 50, generator=3, compile=True)
    assert torch.allclose(eager, compiled, atol=1e-5)


def test_bench_samplers_compile_is_refused_on_cpu(tmp_path, capsys):
    from ebmlab.cli import main

    assert main(["bench", "samplers", "--compile", "--out", str(tmp_path / "b")]) == 2
    assert "refused on CPU" in capsys.readouterr().err
    assert not (tmp_path / "b" / "samplers.json").exists()
