"""Affine standardisation of continuous data, and the energy it induces in the data's own units.

A network energy and the objectives' scale options (energy discrepancy's ``t``, denoising ``sigma``,
sampler step sizes) work best when the data sit near the origin at unit scale.  :class:`Standardization`
is the per-feature affine map

    z = (x - shift) / scale,     shift = the data's mean,  scale = the data's standard deviation,

(``StandardScaler`` of scikit-learn), and :class:`StandardizedEnergy` turns an energy U_z learned on z
into the energy of the same model in the data's units by the change of variables

    U_x(x) = U_z((x - shift) / scale) + Σ_i log scale_i,

whose last term is the log-Jacobian log|det ∂x/∂z|: p_x(x) = p_z(z) / Π_i scale_i, so exp(-U_x) has the same
normaliser Z as exp(-U_z) and log p_x(x) = -U_x(x) - log Z exactly.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Tuple

import torch

from .._core.errors import DataError
from ..energies.base import Energy


class Standardization:
    """Per-feature affine map z = (x − shift) / scale fitted to data (mean and standard deviation).

    Parameters
    ----------
    shift, scale : Tensor of the data's event shape
        The map; ``scale`` > 0.  Use :meth:`from_data` to fit them.
    """

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor):
        shift = torch.as_tensor(shift, dtype=torch.float64)
        scale = torch.as_tensor(scale, dtype=torch.float64)
        if shift.shape != scale.shape:
            raise DataError(f"standardisation shift and scale must have the same shape, got {tuple(shift.shape)} "
                            f"and {tuple(scale.shape)}")
        if not (torch.isfinite(shift).all() and torch.isfinite(scale).all() and (scale > 0).all()):
            raise DataError("standardisation shift must be finite and scale finite and > 0")
        self.shift, self.scale = shift, scale

    @classmethod
    def from_data(cls, x: torch.Tensor) -> "Standardization":
        """Fit shift = mean and scale = standard deviation (1/n) of each feature of ``x`` (rows = samples).

        A constant feature has no scale: it is shifted only (scale 1), with a warning.
        """
        if x.shape[0] < 2:
            raise DataError(f"standardisation needs at least 2 rows, got {x.shape[0]}")
        xd = x.detach().to(torch.float64)
        shift = xd.mean(0)
        scale = xd.std(0, correction=0)
        flat = scale.reshape(-1)
        constant = flat <= 1e-12 * max(1.0, float(shift.abs().max()))
        if bool(constant.any()):
            warnings.warn(f"standardisation: {int(constant.sum())} of {flat.numel()} features are constant in the data; "
                          f"they are shifted to 0 and not rescaled", stacklevel=2)
            scale = torch.where(constant.reshape(scale.shape), torch.ones_like(scale), scale)
        return cls(shift.cpu(), scale.cpu())

    def _cast(self, like: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.shift.to(like), self.scale.to(like)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """z = (x − shift) / scale (any batch of rows of the data's event shape)."""
        shift, scale = self._cast(x)
        return (x - shift) / scale

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """x = shift + scale · z."""
        shift, scale = self._cast(z)
        return shift + scale * z

    @property
    def log_scale_sum(self) -> float:
        """Σ_i log scale_i = log|det ∂x/∂z|."""
        return float(torch.log(self.scale).sum())

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able description (nested lists of the event shape)."""
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Standardization":
        try:
            return cls(torch.tensor(d["shift"], dtype=torch.float64), torch.tensor(d["scale"], dtype=torch.float64))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"bad standardisation record {d!r}: {err}") from None

    def __repr__(self) -> str:
        return f"Standardization(shift={self.shift.tolist()}, scale={self.scale.tolist()})"


class StandardizedEnergy(Energy):
    r"""The energy, in the data's units, of a model ``energy`` learned on standardised data.

    .. math::
        U_x(x) = U_z\big((x - \text{shift}) / \text{scale}\big) + \sum_i \log \text{scale}_i,
        \qquad \nabla_x U_x(x) = \nabla_z U_z(z) / \text{scale},

    so that exp(-U_x) and exp(-U_z) have the same normaliser (the second term is the log-Jacobian of
    x = shift + scale·z): :meth:`log_normalizer` is the inner energy's.

    Parameters
    ----------
    energy : Energy
        The energy of the standardised data (kept as the submodule ``energy``).
    standardization : Standardization
        The map (stored as buffers ``shift`` and ``scale``, so ``state_dict`` records it).
    """

    def __init__(self, energy: Energy, standardization: Standardization):
        super().__init__()
        self.energy = energy
        p = next(iter(energy.parameters()), None)
        dtype = p.dtype if p is not None else torch.get_default_dtype()
        self.register_buffer("shift", standardization.shift.to(dtype))
        self.register_buffer("scale", standardization.scale.to(dtype))
        self.discrete = bool(getattr(energy, "discrete", False))

    @property
    def standardization(self) -> Standardization:
        return Standardization(self.shift.detach().cpu(), self.scale.detach().cpu())

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift.to(x)) / self.scale.to(x)

    def _log_scale_sum(self, like: torch.Tensor) -> torch.Tensor:
        return torch.log(self.scale.to(like)).sum()

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        """U_x(x) = U_z(z) + Σ log scale; extra arguments (a noise level) go to the inner energy unchanged."""
        return self.energy(self._z(x), *args) + self._log_scale_sum(x)

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(U_x(x), ∇_x U_x(x)) from the inner energy's own (possibly analytic) energy_and_grad."""
        u, g = self.energy.energy_and_grad(self._z(x))
        return u + self._log_scale_sum(u), g / self.scale.to(g)

    def log_normalizer(self) -> Optional[torch.Tensor]:
        return self.energy.log_normalizer() if hasattr(self.energy, "log_normalizer") else None

    def extra_repr(self) -> str:
        return f"features={self.shift.numel()}"
