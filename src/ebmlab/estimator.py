"""scikit-learn-style facade: ``EnergyModel(...).fit(X).sample(n)``.

The constructor only stores parameters; everything is validated and built in :meth:`EnergyModel.fit`; fitted
state ends in an underscore (``energy_``, ``objective_``, ``history_``, ``bounds_``, ``n_features_in_``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch

from ._core.errors import ConfigError, DataError
from ._core.random import as_generator
from ._core.validation import check_data, check_int, check_positive
from .energies.registry import build_energy
from .objectives import base as objectives_base
from .samplers import base as samplers_base

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

#: Default hyper-parameters of each objective when used through the facade/CLI (its constructor defaults apply
#: to everything not listed here).
MODEL_FILE = "model.safetensors"


class EnergyModel:
    """An energy-based model p(x) ∝ exp(-U(x)) learned from data.

    Parameters
    ----------
    energy : str
        Registered energy name (``"mlp"`` by default; see ``ebmlab.energies.ENERGIES.names()``).
    energy_params : dict, optional
        Keyword options of the energy (``{"hidden": [128, 128, 128], "activation": "softplus"}``).
    objective : str
        Registered objective name (``"pcd"`` by default; ``ebmlab.objectives.available()``).
    objective_params : dict, optional
        Keyword options of the objective. MCMC-based objectives use ``sampler``/``sampler_params`` unless
        ``objective_params`` names its own ``sampler`` or ``step_size`` (then the training chains run ``sampler``
        with that step size, and ``sampler_params`` apply to :meth:`sample` only).
    sampler : str
        Sampler used by MCMC-based objectives and by :meth:`sample` (default ``"ula"``).
    sampler_params : dict, optional
        Keyword options of the sampler (e.g. ``{"step_size": 0.01}``).
    steps, batch_size, lr, optimizer, weight_decay, grad_clip, lr_schedule, ema :
        Training options of :func:`ebmlab.fit`.
    sample_steps : int
        MCMC steps that :meth:`sample` runs from noise (default 500).
    seed : int
        Seed of training (minibatches, chains, noise).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, energy: str = "mlp", energy_params: Optional[Dict[str, Any]] = None,
                 objective: str = "pcd", objective_params: Optional[Dict[str, Any]] = None,
                 sampler: str = "ula", sampler_params: Optional[Dict[str, Any]] = None,
                 steps: int = 2000, batch_size: int = 128, lr: float = 1e-3, optimizer: str = "adam",
                 weight_decay: float = 0.0, grad_clip: Optional[float] = None, lr_schedule: str = "constant",
                 ema: Optional[float] = None,
                 sample_steps: int = 500, seed: int = 0, device: str = "auto"):
        self.energy = energy
        self.energy_params = energy_params
        self.objective = objective
        self.objective_params = objective_params
        self.sampler = sampler
        self.sampler_params = sampler_params
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.lr_schedule = lr_schedule
        self.ema = ema
        self.sample_steps = sample_steps
        self.seed = seed
        self.device = device

    # -- sklearn-style parameter access ------------------------------------------------------------------------
    _PARAMS = ("energy", "energy_params", "objective", "objective_params", "sampler", "sampler_params", "steps",
               "batch_size", "lr", "optimizer", "weight_decay", "grad_clip", "lr_schedule", "ema", "sample_steps", "seed",
               "device")

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params: Any) -> "EnergyModel":
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ConfigError(f"unknown parameter {k!r}; valid parameters are: {', '.join(self._PARAMS)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return f"EnergyModel({', '.join(f'{k}={getattr(self, k)!r}' for k in self._PARAMS)})"

    # -- building ------------------------------------------------------------------------------------------------
    def _build_sampler(self):
        params = dict(self.sampler_params or {})
        return samplers_base.build(self.sampler, **params)

    def _build_objective(self):
        params = dict(self.objective_params or {})
        factory = objectives_base.OBJECTIVES.get(self.objective)
        if getattr(factory, "needs_sampler", False) and "sampler" not in params:
            # objective_params may set the training chains' own step size; otherwise they use sampler_params
            params["sampler"] = self.sampler if "step_size" in params else self._build_sampler()
        # Chains of binary models start from fair coin flips unless the user chose another init.
        if self.discrete_ and self.objective in ("pcd", "short_run") and "init" not in params:
            params["init"] = "bernoulli"
        return objectives_base.build(self.objective, **params)

    def _validate(self) -> None:
        check_int("steps", self.steps)
        check_int("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_int("sample_steps", self.sample_steps)
        for name in ("energy_params", "objective_params", "sampler_params"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, dict):
                raise ConfigError(f"{name} must be a dict of keyword options, got {v!r}")
        self._build_sampler()  # validates the sampling options now rather than after training

    # -- fitting -------------------------------------------------------------------------------------------------
    def fit(self, X: ArrayLike, **fit_kwargs: Any) -> "EnergyModel":
        """Learn the energy from ``X`` (rows = samples). Extra keywords go to :func:`ebmlab.fit`."""
        from .train.fit import fit, resolve_device

        self._validate()
        x = check_data(X, name="X", ndim=None)
        if x.ndim < 2:
            raise DataError(f"X must have shape (n_samples, n_features), got {tuple(x.shape)}")
        x = x.to(torch.get_default_dtype())
        dev = resolve_device(self.device)
        self.n_features_in_ = int(np.prod(x.shape[1:]))
        self.event_shape_ = tuple(x.shape[1:])
        with torch.random.fork_rng(devices=[]):  # seeded weight initialisation, global RNG left untouched
            torch.manual_seed(int(self.seed) if self.seed is not None else torch.seed())
            self.energy_ = build_energy(self.energy, self.n_features_in_, **(self.energy_params or {}))
        self.discrete_ = bool(getattr(self.energy_, "discrete", False))
        flat = x.reshape(x.shape[0], -1)
        lo, hi = flat.min(0).values, flat.max(0).values
        margin = 0.1 * (hi - lo).clamp_min(1e-6)
        self.bounds_ = torch.stack([lo - margin, hi + margin], dim=1)  # (d, 2)
        self.objective_ = self._build_objective()
        config = {"model": self.get_params(), "n_features_in": self.n_features_in_,
                  "event_shape": list(self.event_shape_), "bounds": self.bounds_.tolist()}
        self.history_ = fit(self.energy_, x, self.objective_, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                            optimizer=self.optimizer, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                            lr_schedule=self.lr_schedule, ema=self.ema, seed=self.seed, device=dev, config=config, **fit_kwargs)
        self.energy_.eval()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "energy_"):
            raise ConfigError("this EnergyModel is not fitted yet: call fit(X) or EnergyModel.load(path) first")

    def _as_tensor(self, X: ArrayLike) -> torch.Tensor:
        x = check_data(X, name="X", ndim=None, min_rows=1)
        x = x.reshape(x.shape[0], *self.event_shape_) if x.ndim == 2 and len(self.event_shape_) > 1 else x
        if int(np.prod(x.shape[1:])) != self.n_features_in_:
            raise DataError(f"X has {int(np.prod(x.shape[1:]))} features per row, the model was fitted on {self.n_features_in_}")
        p = next(self.energy_.parameters())
        return x.to(device=p.device, dtype=p.dtype)

    # -- using the model -----------------------------------------------------------------------------------------
    def noise(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Initial points for sampling: uniform on the data's box (+10%), or fair coin flips for binary data."""
        self._check_fitted()
        p = next(self.energy_.parameters())
        if self.discrete_:
            return (torch.rand((n, *self.event_shape_), generator=generator, device=p.device) < 0.5).to(p.dtype)
        b = self.bounds_.to(device=p.device, dtype=p.dtype)
        u = torch.rand((n, self.n_features_in_), generator=generator, device=p.device, dtype=p.dtype)
        return (b[:, 0] + (b[:, 1] - b[:, 0]) * u).reshape(n, *self.event_shape_)

    def sample(self, n: int, seed: Optional[int] = 0, steps: Optional[int] = None, x0: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Draw ``n`` samples: ``steps`` (default ``sample_steps``) MCMC steps of ``sampler`` from noise."""
        from .samplers import sample as run_sampler

        self._check_fitted()
        n = check_int("n", n)
        steps = check_int("steps", steps if steps is not None else self.sample_steps)
        p = next(self.energy_.parameters())
        g = as_generator(seed, device=p.device)
        start = self.noise(n, g) if x0 is None else self._as_tensor(x0)
        sampler = self._build_sampler()
        adaptive = bool(getattr(sampler, "adaptive", False))
        burn = steps - 1 if steps > 1 else 0
        x, info = run_sampler(self.energy_, sampler, start, steps=1, burn_in=burn, generator=g, adapt=adaptive and burn > 0)
        self.last_sample_info_ = info
        return x[-1].detach()

    @torch.no_grad()
    def energy_values(self, X: ArrayLike) -> torch.Tensor:
        """U(x) for each row."""
        self._check_fitted()
        return self.energy_(self._as_tensor(X)).detach()

    def score_samples(self, X: ArrayLike) -> torch.Tensor:
        """Unnormalised log-density -U(x) of each row (higher = more probable)."""
        return -self.energy_values(X)

    def log_prob(self, X: ArrayLike, resolution: int = 400) -> torch.Tensor:
        """Normalised log-density: exact enumeration for binary data with <= 20 features, a 2-D grid for 2-D data."""
        self._check_fitted()
        x = self._as_tensor(X)
        if self.discrete_:
            from .metrics import exact_log_z

            with torch.no_grad():
                return -self.energy_(x) - exact_log_z(self.energy_)
        if self.n_features_in_ == 2:
            from .metrics import grid_log_prob

            b = self.bounds_.tolist()
            return grid_log_prob(self.energy_, x, bounds=(tuple(b[0]), tuple(b[1])), resolution=resolution)
        raise ConfigError(f"log_prob needs a tractable normaliser: available for 2-D data (grid) and binary data with "
                          f"<= 20 features (enumeration); this model has {self.n_features_in_} continuous features. "
                          f"Use score_samples for the unnormalised log-density.")

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Save to directory ``path`` as ``model.safetensors`` (weights + JSON config; no pickle)."""
        from .train.checkpoint import save_checkpoint

        self._check_fitted()
        path = Path(path)
        meta = {"model": self.get_params(), "n_features_in": self.n_features_in_, "event_shape": list(self.event_shape_),
                "bounds": self.bounds_.tolist(), "discrete": self.discrete_}
        save_checkpoint(path / MODEL_FILE, {"energy": dict(self.energy_.state_dict())}, meta)
        return path

    @classmethod
    def load(cls, path) -> "EnergyModel":
        """Load a model saved by :meth:`save` (or a run directory / training checkpoint written by the CLI)."""
        from .train.checkpoint import CHECKPOINT_NAME, load_checkpoint

        path = Path(path)
        if not path.exists():
            raise DataError(f"no model at {path}: expected a directory written by EnergyModel.save or `ebmlab train`")
        file = path
        if path.is_dir():
            file = path / MODEL_FILE if (path / MODEL_FILE).exists() else path / CHECKPOINT_NAME
            if not file.exists():
                raise DataError(f"{path} holds neither {MODEL_FILE} nor {CHECKPOINT_NAME}")
        groups, meta = load_checkpoint(file)
        if "model" not in meta and "config" in meta:
            meta = meta["config"]
        if "model" not in meta:
            raise DataError(f"{file} is not an ebmlab model (no model configuration in its metadata)")
        model = cls(**meta["model"])
        model.n_features_in_ = int(meta["n_features_in"])
        model.event_shape_ = tuple(meta["event_shape"])
        model.bounds_ = torch.tensor(meta["bounds"], dtype=torch.get_default_dtype())
        model.energy_ = build_energy(model.energy, model.n_features_in_, **(model.energy_params or {}))
        try:
            model.energy_.load_state_dict(groups["energy"])
        except (RuntimeError, KeyError) as err:
            raise DataError(f"{file}: weights do not match the saved configuration ({err})") from None
        model.discrete_ = bool(getattr(model.energy_, "discrete", False))
        model.energy_.eval()
        return model
