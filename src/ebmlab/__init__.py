"""ebmlab: learn, sample, evaluate and apply unnormalized models p(x) = exp(-U(x)) / Z.

Main entry points::

    import ebmlab
    energy = ebmlab.energies.MLPEnergy(2)
    history = ebmlab.fit(energy, data, ebmlab.objectives.build("pcd"), steps=2000)
    x, info = ebmlab.sample(energy, ebmlab.samplers.build("mala", step_size=0.05), x0, steps=1000)
    model = ebmlab.EnergyModel(objective="ed").fit(data)

Sub-packages: ``energies``, ``samplers``, ``objectives``, ``data``, ``metrics``, ``train``, ``ergm``, ``bench``.
They and ``fit``, ``sample``, ``EnergyModel``, ``Energy`` are imported on first use (PEP 562 ``__getattr__``), so
``import ebmlab`` -- and ``ebmlab --help``, ``ebmlab list`` and every argument error -- does not import torch.
"""
from ._core.errors import ConfigError, DataError, EbmlabError, SamplingWarning, TrainingDivergedError

__version__ = "0.1.0"

_LAZY = {
    "fit": ("ebmlab.train.fit", "fit"),
    "sample": ("ebmlab.samplers.driver", "sample"),
    "EnergyModel": ("ebmlab.estimator", "EnergyModel"),
    "Energy": ("ebmlab.energies.base", "Energy"),
}
_SUBPACKAGES = ("energies", "samplers", "objectives", "data", "metrics", "train", "ergm", "bench", "report")


def __getattr__(name):
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        value = importlib.import_module(f"ebmlab.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ebmlab' has no attribute {name!r}")


def __dir__():
    """The public names, including those imported on first use (PEP 562)."""
    return sorted(set(globals()) | set(__all__))


__all__ = ["ConfigError", "DataError", "EbmlabError", "SamplingWarning", "TrainingDivergedError", "Energy", "EnergyModel", "fit",
           "sample", *_SUBPACKAGES]
