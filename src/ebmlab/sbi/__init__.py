"""Simulation-based inference with energy-based models on the sbibm tasks (Lueckmann et al. 2021).

``get_task(name)`` (priors, simulators, exact likelihoods, reference posteriors), :class:`NLE` (energy-based
likelihood, after AUNLE of Glaser et al. 2022) and :class:`NPE` (amortised posterior energy), whose
``sample_posterior`` draws for many observations in one batched chain run.

Names are imported on first use (so ``ebmlab.sbi.cli``, loaded by the ``ebmlab`` command, does not import torch).
"""
from importlib import import_module

_EXPORTS = {
    "Box": "tasks", "Task": "tasks", "get_task": "tasks", "task_names": "tasks",
    "cache_dir": "reference", "reference_posterior": "reference",
    "ObservationDiagnostics": "posterior", "PosteriorInfo": "posterior", "sample_batched": "posterior",
    "NLE": "estimators", "NPE": "estimators",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ebmlab.sbi' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
