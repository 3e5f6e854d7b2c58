"""scikit-learn-style facade: ``EnergyModel(...).fit(X).sample(n_samples)``.

The constructor only stores its (keyword-only) parameters; everything is validated and built in
:meth:`EnergyModel.fit`; fitted state ends in an underscore (``energy_``, ``sampler_``, ``objective_``, ``history_``,
``standardization_``, ``bounds_``, ``n_features_in_``, ``seed_``).  The parameter names come from the constructor's
signature (:meth:`EnergyModel.parameter_names`), the one list that ``get_params``, ``set_params``, ``save``/``load``
and the ``ebmlab`` command use.
"""
from __future__ import annotations

import copy
import inspect
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ._core.errors import ConfigError, DataError
from ._core.params import ParamsMixin
from ._core.random import fresh_seed, init_parameters_
from ._core.validation import check_data, check_int, check_positive
from .energies.base import Energy
from .energies.registry import ENERGIES, build_energy
from .objectives import base as objectives_base
from .samplers import base as samplers_base

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

MODEL_FILE = "model.safetensors"

#: The largest minibatch :meth:`EnergyModel.fit` accepts, in bytes of float32 data (a batch_size of 10**12 used to
#: run until memory ran out).
MAX_BATCH_BYTES = 2 ** 32

#: ``standardize="auto"`` leaves data alone that already sit near the origin at unit scale (every feature with
#: |mean| <= 3 and 1/3 <= std <= 3: the regime the defaults were tuned in, e.g. the toy data sets, std 1.0-2.3)
AUTO_STANDARDIZE_MAX_MEAN = 3.0
AUTO_STANDARDIZE_SCALE = 3.0


def _check_seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ConfigError(f"{name} must be None or an integer >= 0, got {value!r}")
    return int(value)


def _constructor_params(obj: Any) -> Optional[Dict[str, Any]]:
    """The constructor arguments of ``obj`` read back from its same-named attributes (scikit-learn's convention,
    followed by ebmlab's samplers), or ``None`` when some argument is not stored under its own name."""
    sig = inspect.signature(type(obj).__init__)
    out: Dict[str, Any] = {}
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(obj, p.name):
            return None
        out[p.name] = getattr(obj, p.name)
    return out


def _sampler_from_spec(spec: Any, params: Optional[Mapping[str, Any]], where: str) -> samplers_base.Sampler:
    """The facade's spellings of a sampler: a Sampler object (used as is), a registered name (built with
    ``params``), or a mapping ``{"name": ..., **options}`` (a configured sampler in YAML/JSON).  Objects and bare
    names go through the chain runner's :func:`~ebmlab.samplers.driver.resolve_sampler`."""
    from .samplers.driver import resolve_sampler

    params = dict(params or {})
    if isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(f"{where}: a sampler given as a mapping needs a 'name' key (one of "
                              f"{', '.join(samplers_base.available())}), got {dict(spec)!r}")
        if params:
            raise ConfigError(f"{where}: give the sampler's options inside its mapping, not also as sampler_params")
        return samplers_base.build(name, **options)
    if isinstance(spec, samplers_base.Sampler) and params:
        raise ConfigError(f"{where}: sampler options {sorted(params)} apply only when the sampler is given by "
                          f"name; set them on the {type(spec).__name__} object instead")
    if isinstance(spec, str) and params:
        return samplers_base.build(spec, **params)
    if not isinstance(spec, (str, samplers_base.Sampler)):
        raise ConfigError(f"{where} must be a sampler name ({', '.join(samplers_base.available())}), a Sampler "
                          f"object or a mapping {{'name': ..., options}}, got {spec!r}")
    return resolve_sampler(spec)


def _record_value(value: Any, path: str, unsaved: List[str]) -> Any:
    """A JSON-able record of a parameter value: Samplers as ``{"name": ..., **options}``, tensors and arrays as
    lists; any other object by its ``repr`` (its path is appended to ``unsaved``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _record_value(v, f"{path}[{k!r}]", unsaved) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_record_value(v, f"{path}[{i}]", unsaved) for i, v in enumerate(value)]
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, samplers_base.Sampler):
        params = _constructor_params(value)
        if params is not None and value.name:
            return {"name": value.name, **{k: _record_value(v, f"{path}.{k}", unsaved) for k, v in params.items()}}
    unsaved.append(path)
    return repr(value)


def _registered_energy_name(energy: Energy) -> Optional[str]:
    for name in ENERGIES.names():
        if ENERGIES.get(name) is type(energy):
            return name
    return None


class EnergyModel(ParamsMixin):
    r"""An energy-based model p(x) = exp(-U(x)) / Z learned from data, with scikit-learn's conventions.

    Parameters (keyword-only)
    -------------------------
    energy : str or Energy
        A registered energy name (``"mlp"`` by default; ``ebmlab.energies.ENERGIES.names()``), built for the data's
        number of features with ``energy_params``, or an :class:`~ebmlab.energies.Energy` object (as scikit-learn
        takes estimator objects): it is deep-copied at :meth:`fit` and trained from its current weights, so the
        object passed in is never modified.
    energy_params : dict, optional
        Options of a named energy (``{"hidden": [128, 128], "activation": "softplus"}``); a bad key is a
        :class:`~ebmlab.ConfigError` naming it and the allowed ones.  Not allowed with an Energy object.
    objective : str
        Registered objective name (``"pcd"`` by default; ``ebmlab.objectives.available()``).
    objective_params : dict, optional
        Options of the objective.
    sampler : str or Sampler
        The sampler (default ``"ula"``): a registered name built with ``sampler_params``, or a Sampler object.
    sampler_params : dict, optional
        Options of a named sampler (e.g. ``{"step_size": 0.01}``).
    standardize : {"auto", True, False}
        Learn on standardised data z = (x − mean) / std (per feature; :mod:`ebmlab.data.standardize`).  ``"auto"``
        (default) standardises continuous data for energies that do not initialise themselves from the data (a
        network), unless the data already sit near the origin at unit scale: every feature with |mean| <= 3 and
        1/3 <= std <= 3, the scale the defaults were tuned at (the toy data sets have std 1.0-2.3; standardising
        8gaussians to std 1 made the default PCD recipe learn a ring instead of its eight modes).  A parametric
        energy with a ``prepare`` method, such as ``"quadratic"``, starts at the data's moments instead and keeps
        its parameters in the data's units.  Whether it happened is ``standardization_`` (``None`` or the map).
    steps, batch_size, lr, optimizer, weight_decay, grad_clip, lr_schedule, ema :
        Training options of :func:`ebmlab.fit` (defaults: 2000 steps, batch 128, Adam with lr 1e-3 on a cosine
        schedule, EMA of the weights with decay 0.999).
    sample_steps : int
        Sampler steps that :meth:`sample` runs from noise (default 500).
    random_state : int, optional
        Seed of training: the initial weights of a named energy, minibatches, chains, noise.  ``None`` (default)
        draws a fresh seed, recorded as ``seed_`` so the fit can be repeated.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Samplers: one rule
    ------------------
    ``sampler`` (a name with ``sampler_params``, or a Sampler object) builds ONE sampler, ``sampler_``, which both
    the training chains of MCMC-based objectives (CD, PCD, short-run, MCMC-MLE) and :meth:`sample` use.
    ``objective_params={"sampler": ...}`` (a name, a Sampler object, or a mapping ``{"name": ..., **options}``)
    overrides the training chains only.  Step sizes are set on samplers, never on objectives.

    Standardisation
    ---------------
    When the data are standardised, training, the objective's and the sampler's scale options (energy
    discrepancy's ``t``, denoising ``sigma``, a diffusion matrix, step sizes) and the chains of :meth:`sample`
    are in standardised units, while every method of the model takes and returns the data's units:
    ``energy_`` is a :class:`~ebmlab.data.standardize.StandardizedEnergy`,
    U(x) = U_z((x − shift) / scale) + Σ log scale (the log-Jacobian keeps exp(-U) normalised by the same Z),
    :meth:`sample` maps its draws back, and :meth:`log_prob` is the density of x.  The map is
    ``standardization_`` and is saved with the model.

    Attributes (after fit)
    ----------------------
    energy_ : Energy
        The learned energy, in the data's units.
    sampler_ : Sampler
        The sampler of :meth:`sample` (and of the training chains unless overridden).
    objective_ : Objective
    history_ : ebmlab.train.History
    standardization_ : Standardization or None
    bounds_ : Tensor[d, 2]
        The data's bounding box enlarged by 10 % per side (sampling noise, grid normaliser).
    n_features_in_, event_shape_, discrete_, seed_
    last_sample_info_, last_sample_seed_ :
        The :class:`~ebmlab.samplers.SampleInfo` and the seed of the latest :meth:`sample` call.
    """

    def __init__(self, *, energy: Union[str, Energy] = "mlp", energy_params: Optional[Dict[str, Any]] = None,
                 objective: str = "pcd", objective_params: Optional[Dict[str, Any]] = None,
                 sampler: Union[str, samplers_base.Sampler] = "ula", sampler_params: Optional[Dict[str, Any]] = None,
                 standardize: Union[str, bool] = "auto",
                 steps: int = 2000, batch_size: int = 128, lr: float = 1e-3, optimizer: str = "adam",
                 weight_decay: float = 0.0, grad_clip: Optional[float] = None, lr_schedule: str = "cosine",
                 ema: Optional[float] = 0.999, sample_steps: int = 500, random_state: Optional[int] = None,
                 device: str = "auto"):
        self.energy = energy
        self.energy_params = energy_params
        self.objective = objective
        self.objective_params = objective_params
        self.sampler = sampler
        self.sampler_params = sampler_params
        self.standardize = standardize
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.lr_schedule = lr_schedule
        self.ema = ema
        self.sample_steps = sample_steps
        self.random_state = random_state
        self.device = device

    # -- building ------------------------------------------------------------------------------------------------
    def _build_sampler(self) -> samplers_base.Sampler:
        return _sampler_from_spec(self.sampler, self.sampler_params, "sampler")

    def _build_objective(self):
        params = dict(self.objective_params or {})
        factory = objectives_base.OBJECTIVES.get(self.objective)
        if getattr(factory, "needs_sampler", False):
            if "sampler" in params:  # overrides the training chains only
                params["sampler"] = _sampler_from_spec(params["sampler"], None, "objective_params['sampler']")
            else:
                params["sampler"] = self.sampler_
        # Chains of binary models start from fair coin flips unless the user chose another init.
        if self.discrete_ and self.objective in ("pcd", "short_run") and "init" not in params:
            params["init"] = "bernoulli"
        return objectives_base.build(self.objective, **params)

    def _validate(self) -> None:
        check_int("steps", self.steps)
        check_int("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_int("sample_steps", self.sample_steps)
        if self.random_state is not None:
            _check_seed("random_state", self.random_state)
        if not (isinstance(self.standardize, bool) or self.standardize == "auto"):
            raise ConfigError(f"standardize must be 'auto', True or False, got {self.standardize!r}")
        for name in ("energy_params", "objective_params", "sampler_params"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, dict):
                raise ConfigError(f"{name} must be a dict of keyword options, got {v!r}")
        if isinstance(self.energy, Energy):
            if self.energy_params:
                raise ConfigError("energy_params apply only when the energy is given by name; configure the "
                                  f"{type(self.energy).__name__} object itself")
        elif not isinstance(self.energy, str):
            raise ConfigError(f"energy must be a registered name ({', '.join(ENERGIES.names())}) or an Energy "
                              f"object, got {self.energy!r}")
        objectives_base.OBJECTIVES.get(self.objective)  # unknown names fail before any work
        self._build_sampler()  # validates the sampling options now rather than after training

    def _make_energy(self, n_features: int, seed: int) -> Energy:
        if isinstance(self.energy, Energy):
            energy = copy.deepcopy(self.energy)
            dim = getattr(energy, "dim", None)
            if isinstance(dim, int) and dim != n_features:
                raise DataError(f"the energy object has dim={dim}, the data have {n_features} features per row")
            return energy
        with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: keep it untouched
            energy = build_energy(self.energy, n_features, **(self.energy_params or {}))
        # seeded weights from an explicit generator (PyTorch's default law), global RNG never read or reseeded
        init_parameters_(energy, torch.Generator().manual_seed(seed))
        return energy

    def _wants_standardization(self, energy: Energy, x: torch.Tensor) -> bool:
        if getattr(energy, "discrete", False) or not x.is_floating_point():
            if self.standardize is True:
                raise ConfigError("standardize=True applies to continuous data and energies; this energy is discrete")
            return False
        if not isinstance(self.standardize, bool):  # "auto"
            if callable(getattr(energy, "prepare", None)):
                return False  # a parametric energy starts from the data's moments itself
            flat = x.reshape(x.shape[0], -1).double()
            mean, std = flat.mean(0), flat.std(0, correction=0)
            return bool((mean.abs() > AUTO_STANDARDIZE_MAX_MEAN).any()
                        or ((std > AUTO_STANDARDIZE_SCALE) | (std < 1.0 / AUTO_STANDARDIZE_SCALE)).any())
        return bool(self.standardize)

    # -- fitting -------------------------------------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: Any = None, **fit_params: Any) -> "EnergyModel":
        """Learn the energy from ``X`` (rows = samples); ``y`` is ignored (scikit-learn's unsupervised signature).
        Extra keywords go to :func:`ebmlab.fit` (``checkpoint_dir``, ``log_csv``, ``callbacks``, ...)."""
        from .data.standardize import Standardization, StandardizedEnergy
        from .train.fit import fit, resolve_device

        self._validate()
        x = check_data(X, name="X", ndim=None)
        if x.ndim < 2:
            raise DataError(f"X must have shape (n_samples, n_features), got {tuple(x.shape)}")
        x = x.to(torch.get_default_dtype())
        need = self.batch_size * max(int(np.prod(x.shape[1:])), 1) * 4
        if need > MAX_BATCH_BYTES:  # a batch larger than the data repeats rows; one this large cannot be allocated
            raise ConfigError(f"batch_size={self.batch_size} would need {need / 2 ** 30:.3g} GiB per minibatch "
                              f"(limit {MAX_BATCH_BYTES // 2 ** 30} GiB); use a batch_size of at most the "
                              f"{x.shape[0]} training rows")
        dev = resolve_device(self.device)
        seed = fresh_seed() if self.random_state is None else _check_seed("random_state", self.random_state)
        self.n_features_in_ = int(np.prod(x.shape[1:]))
        self.event_shape_ = tuple(x.shape[1:])
        energy = self._make_energy(self.n_features_in_, seed)
        self.discrete_ = bool(getattr(energy, "discrete", False))
        flat = x.reshape(x.shape[0], -1)
        lo, hi = flat.min(0).values, flat.max(0).values
        margin = 0.1 * (hi - lo).clamp_min(1e-6)
        self.bounds_ = torch.stack([lo - margin, hi + margin], dim=1)  # (d, 2), data units
        self.standardization_ = Standardization.from_data(x) if self._wants_standardization(energy, x) else None
        z = self.standardization_.forward(x).to(x.dtype) if self.standardization_ is not None else x
        if callable(getattr(energy, "prepare", None)):
            energy.prepare(z)  # parametric energies start from the data (e.g. Quadratic: its moments)
        self.sampler_ = self._build_sampler()
        self.objective_ = self._build_objective()
        self.seed_ = seed
        self.history_ = fit(energy, z, self.objective_, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                            optimizer=self.optimizer, weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                            lr_schedule=self.lr_schedule, ema=self.ema, seed=seed, device=dev,
                            config=self._metadata(energy, strict=False), **fit_params)
        energy.eval()
        self.energy_ = StandardizedEnergy(energy, self.standardization_) if self.standardization_ is not None else energy
        self.energy_.eval()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "energy_"):
            raise ConfigError("this EnergyModel is not fitted yet: call fit(X) or EnergyModel.load(path) first")

    def _inner_energy(self) -> Energy:
        """The energy that was trained (on standardised data when ``standardization_`` is set)."""
        return self.energy_.energy if self.standardization_ is not None else self.energy_

    def _as_tensor(self, X: ArrayLike) -> torch.Tensor:
        x = check_data(X, name="X", ndim=None, min_rows=1)
        x = x.reshape(x.shape[0], *self.event_shape_) if x.ndim == 2 and len(self.event_shape_) > 1 else x
        if int(np.prod(x.shape[1:])) != self.n_features_in_:
            raise DataError(f"X has {int(np.prod(x.shape[1:]))} features per row, the model was fitted on {self.n_features_in_}")
        p = next(self.energy_.parameters())
        return x.to(device=p.device, dtype=p.dtype)

    # -- using the model -----------------------------------------------------------------------------------------
    def noise(self, n_samples: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Starting points of :meth:`sample`, in the data's units: uniform on ``bounds_``, or fair coin flips for
        binary data."""
        self._check_fitted()
        n = check_int("n_samples", n_samples)
        p = next(self.energy_.parameters())
        if self.discrete_:
            return (torch.rand((n, *self.event_shape_), generator=generator, device=p.device) < 0.5).to(p.dtype)
        b = self.bounds_.to(device=p.device, dtype=p.dtype)
        u = torch.rand((n, self.n_features_in_), generator=generator, device=p.device, dtype=p.dtype)
        return (b[:, 0] + (b[:, 1] - b[:, 0]) * u).reshape(n, *self.event_shape_)

    def sample(self, n_samples: int, *, random_state: Optional[int] = None, steps: Optional[int] = None,
               x0: Optional[ArrayLike] = None, callbacks: Sequence[Any] = (), distributed: bool = False) -> torch.Tensor:
        """Draw ``n_samples`` points: ``steps`` (default ``sample_steps``) steps of ``sampler_`` from :meth:`noise`
        (or from ``x0``, in the data's units), the last state of each chain.

        Each call with ``random_state=None`` draws a fresh seed (recorded as ``last_sample_seed_``), so repeated
        calls give new draws; an integer ``random_state`` repeats them exactly.  With an adaptive sampler (MALA,
        HMC, RWM) the step size is tuned during the first ``steps - 1`` steps; ``last_sample_info_`` reports it.
        ``callbacks`` go to the chain runner (:func:`ebmlab.samplers.sample`), e.g. to report progress;
        ``distributed=True`` splits the chains over the processes of a torchrun job (``sample(..., distributed=True)``).
        """
        from .samplers import sample as run_sampler

        self._check_fitted()
        n = check_int("n_samples", n_samples)
        steps = check_int("steps", steps if steps is not None else self.sample_steps)
        seed = fresh_seed() if random_state is None else _check_seed("random_state", random_state)
        p = next(self.energy_.parameters())
        g = torch.Generator(device=p.device).manual_seed(seed)
        start = self.noise(n, g) if x0 is None else self._as_tensor(x0)
        std = self.standardization_
        if std is not None:
            start = std.forward(start)
        z, info = run_sampler(self._inner_energy(), self.sampler_, start, steps=1, burn_in=steps - 1, generator=g,
                              keep="last", callbacks=callbacks, distributed=distributed)
        self.last_sample_info_ = info
        self.last_sample_seed_ = seed
        x = std.inverse(z) if std is not None else z
        return x.detach()

    @torch.no_grad()
    def energy_values(self, X: ArrayLike) -> torch.Tensor:
        """U(x) for each row, in the data's units (with the log-Jacobian of a standardisation, see the class)."""
        self._check_fitted()
        return self.energy_(self._as_tensor(X)).detach()

    def score_samples(self, X: ArrayLike) -> torch.Tensor:
        """Unnormalised log-density -U(x) of each row (higher = more probable)."""
        return -self.energy_values(X)

    @property
    def normalizer(self) -> Optional[str]:
        """How :meth:`log_prob` gets log Z: ``"closed_form"`` (the energy's ``log_normalizer()``),
        ``"enumeration"`` (binary data, <= 20 features), ``"grid"`` (2-D continuous data), or ``None``."""
        self._check_fitted()
        if self.discrete_:
            return "enumeration" if self.n_features_in_ <= 20 else None
        if self.energy_.log_normalizer() is not None:
            return "closed_form"
        if self.n_features_in_ == 2:
            return "grid"
        return None

    def log_prob(self, X: ArrayLike, resolution: int = 400) -> torch.Tensor:
        """Normalised log-density log p(x) of each row, in the data's units; log Z as :attr:`normalizer` says (the
        2-D grid covers ``bounds_`` with ``resolution``² cells)."""
        self._check_fitted()
        x = self._as_tensor(X)
        how = self.normalizer
        if how == "enumeration":
            from .metrics import exact_log_z

            with torch.no_grad():
                return -self.energy_(x) - exact_log_z(self.energy_)
        if how == "closed_form":
            with torch.no_grad():
                return -self.energy_(x) - torch.as_tensor(self.energy_.log_normalizer()).to(x)
        if how == "grid":
            from .metrics import grid_log_prob

            b = self.bounds_.tolist()
            return grid_log_prob(self.energy_, x, bounds=(tuple(b[0]), tuple(b[1])), resolution=resolution)
        raise ConfigError(f"log_prob needs a tractable normaliser: available for energies with a closed-form "
                          f"log_normalizer, 2-D data (grid) and binary data with <= 20 features (enumeration); this "
                          f"model has {self.n_features_in_} {'binary' if self.discrete_ else 'continuous'} features. "
                          f"Use score_samples for the unnormalised log-density.")

    def score(self, X: ArrayLike, y: Any = None) -> float:
        """Mean log-likelihood of ``X``, ``mean(log_prob(X))``, when :attr:`normalizer` is not ``None``; otherwise
        the mean unnormalised log-density ``mean(score_samples(X))`` (comparable between data sets under one
        model, not between models).  ``y`` is ignored."""
        self._check_fitted()
        values = self.log_prob(X) if self.normalizer is not None else self.score_samples(X)
        return float(values.mean())

    # -- persistence ---------------------------------------------------------------------------------------------
    def _metadata(self, energy: Energy, strict: bool) -> Dict[str, Any]:
        """The JSON configuration saved with the weights (and in training checkpoints)."""
        unsaved: List[str] = []
        params = {k: _record_value(getattr(self, k), k, unsaved) for k in self.parameter_names() if k != "energy"}
        params = {"energy": self.energy, **params}
        if isinstance(self.energy, Energy):
            name = _registered_energy_name(energy)
            options = None
            if name is not None:
                options = dict(energy.config()) if callable(getattr(energy, "config", None)) else _constructor_params(energy)
            if name is None or options is None:
                if strict:
                    raise ConfigError(f"cannot save a model whose energy is a {type(energy).__name__} object: it is not "
                                      f"a registered energy with config() (register the class in "
                                      f"ebmlab.energies.ENERGIES), so it could not be rebuilt at load")
                params["energy"] = repr(energy)
                unsaved.append("energy")
            else:
                options.pop("dim", None)
                params["energy"], params["energy_params"] = name, _record_value(options, "energy_params", unsaved)
        for key in ("sampler",):
            rec = params[key]
            if isinstance(rec, dict):  # a Sampler object: saved as a name + options
                params[key], params[f"{key}_params"] = rec["name"], {k: v for k, v in rec.items() if k != "name"}
        if strict and unsaved:
            warnings.warn(f"EnergyModel.save: {', '.join(unsaved)} saved by their repr only (for the record); give them "
                          f"again to refit a loaded model", stacklevel=3)
        return {"model": params, "n_features_in": self.n_features_in_, "event_shape": list(self.event_shape_),
                "bounds": self.bounds_.tolist(), "discrete": self.discrete_,
                "standardization": self.standardization_.to_dict() if self.standardization_ is not None else None,
                "seed": self.seed_}

    def save(self, path) -> Path:
        """Save to directory ``path`` as ``model.safetensors``: the trained energy's weights and the JSON
        configuration (parameters, standardisation, bounds); no pickle."""
        from .train.checkpoint import save_checkpoint

        self._check_fitted()
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"EnergyModel.save(path) takes a directory (it writes {MODEL_FILE} into it); {path} is "
                              f"an existing file")
        inner = self._inner_energy()
        meta = self._metadata(inner, strict=True)
        save_checkpoint(path / MODEL_FILE, {"energy": dict(inner.state_dict())}, meta)
        return path

    @classmethod
    def load(cls, path) -> "EnergyModel":
        """Load a model saved by :meth:`save` (or a run directory / training checkpoint written by the CLI)."""
        from .data.standardize import Standardization, StandardizedEnergy
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
        params = dict(meta["model"])
        if "seed" in params and "random_state" not in params:  # written before the facade's random_state
            params["random_state"] = params.pop("seed")
        unknown = sorted(set(params) - set(cls.parameter_names()))
        if unknown:
            raise DataError(f"{file}: unknown model parameters {unknown}; valid: {', '.join(cls.parameter_names())}")
        model = cls(**params)
        model.n_features_in_ = int(meta["n_features_in"])
        model.event_shape_ = tuple(meta["event_shape"])
        model.bounds_ = torch.tensor(meta["bounds"], dtype=torch.get_default_dtype())
        model.seed_ = meta.get("seed")
        if not isinstance(model.energy, str) or model.energy not in ENERGIES:
            raise DataError(f"{file}: the energy {model.energy!r} is not a registered energy; it cannot be rebuilt")
        with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: keep it untouched
            inner = build_energy(model.energy, model.n_features_in_, **(model.energy_params or {}))
        try:
            inner.load_state_dict(groups["energy"])
        except (RuntimeError, KeyError) as err:
            raise DataError(f"{file}: weights do not match the saved configuration ({err})") from None
        inner.eval()
        record = meta.get("standardization")
        model.standardization_ = Standardization.from_dict(record) if record else None
        model.energy_ = StandardizedEnergy(inner, model.standardization_) if model.standardization_ is not None else inner
        model.energy_.eval()
        model.discrete_ = bool(getattr(inner, "discrete", False))
        model.sampler_ = model._build_sampler()
        return model
