"""EBMs in use: JEM classifiers (:mod:`.jem`), learned priors for inverse problems (:mod:`.inverse`), latent-space
EBMs (:mod:`.latent`).

Names are imported lazily (PEP 562), so that ``ebmlab.apps.cli`` — the ``ebmlab jem | inverse`` sub-commands —
loads without torch at start-up.
"""
from importlib import import_module

_EXPORTS = {
    "JEM": ".jem", "JEMObjective": ".jem", "EnergyGuard": ".jem", "auroc": ".jem",
    "expected_calibration_error": ".jem",
    "LatentEBM": ".latent",
    "map_estimate": ".inverse", "posterior_sample": ".inverse", "tikhonov": ".inverse", "Denoise": ".inverse",
    "Inpaint": ".inverse", "Blur": ".inverse", "TotalVariation": ".inverse", "psnr": ".inverse",
    "learn_prior": ".inverse",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
