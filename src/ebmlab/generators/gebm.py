r"""``GEBM``: a generalized energy-based model, fitted with the KALE objective and sampled in latent space
(Arbel, Zhou & Gretton 2021, "Generalized Energy Based Models", ICLR).

Q_{B,E}(dx) ∝ exp(−E(x)) B#η(dx) with η = N(0, I_k) and a generator (base) B: R^k -> data space.  ``fit``
alternates ``n_energy_steps`` updates of E (c set to its batch maximiser each time) with one update of B
(:class:`~ebmlab.objectives.kale.KALEObjective`), ``sample`` draws z from ν_β(z) ∝ η(z) exp(−β E(B(z))) with an
ebmlab sampler and returns B(z) (:mod:`ebmlab.generators.posterior`), ``sample_generator`` returns B(z), z ~ η
(the base alone).

Conventions are :class:`ebmlab.EnergyModel`'s: keyword-only constructor that only stores its parameters,
validation in ``fit``, fitted state ending in ``_``, ``fit -> self``, ``random_state`` for randomness (an integer
repeats draws exactly; None draws a fresh seed, recorded in ``seed_`` / ``last_sample_seed_``).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from .._core.errors import ConfigError, DataError, TrainingDivergedError
from .._core.params import ParamsMixin
from .._core.random import fresh_seed, init_parameters_
from .._core.validation import check_data, check_int, check_positive
from ..energies.base import Energy
from ..energies.conv import ConvEnergy
from .networks import ConvGenerator, MLPGenerator
from .posterior import (LATENT_SAMPLERS, check_temperature, importance_resample, resolve_latent_sampler,
                        sample_latent_posterior)

#: how latent chains are started (``GEBM.sample(init=...)``)
SAMPLE_INITS = ("sir", "prior")
#: learning-rate schedules of the final energy-only updates (``GEBM(final_energy_schedule=...)``)
FINAL_SCHEDULES = ("linear", "constant")

GEBM_FILE = "gebm.safetensors"


def _check_seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ConfigError(f"{name} must be None or an integer >= 0, got {value!r}")
    return int(value)


def _check_init(init: Any) -> str:
    if init not in SAMPLE_INITS:
        raise ConfigError(f"init must be one of {', '.join(SAMPLE_INITS)}, got {init!r}")
    return init


class GEBM(ParamsMixin):
    """Generalized energy-based model (module docstring).

    Parameters
    ----------
    data_shape : int, tuple or None
        Shape of one row: ``d`` (vectors) or ``(1, 8, 8)`` / ``(1, 28, 28)`` (images).  None: read from X at fit;
        otherwise X must match it (a one-line DataError names both).
    latent_dim : int or None
        k; default min(d, 16) for vectors, 16 for 8×8 and 32 for 28×28 images.
    energy : "auto" or Energy
        "auto": an MLP energy (vectors; ``energy_params`` go to :class:`~ebmlab.energies.mlp.MLPEnergy`, default
        hidden (128, 128), SiLU) or :class:`~ebmlab.energies.ConvEnergy` (images).
    generator : "auto" or nn.Module
        The base B.  "auto": :class:`MLPGenerator` (vectors, ``generator_params`` e.g. hidden) or
        :class:`ConvGenerator` (images, sigmoid output in [0, 1]).  An object must map [n, k] to [n, *data_shape].
    steps : int
        Generator updates; each follows ``n_energy_steps`` energy updates.
    n_energy_steps : int
        Energy updates per generator update (default 5, as in the paper); before each, c is set to its exact
        batch maximiser log mean exp(−E(B(z))) (:mod:`ebmlab.objectives.kale`).
    final_energy_steps : int
        Energy updates after the last generator update, with the generator fixed (default 500): the
        alternating game leaves E adapted to an earlier B; these steps move E + c toward the maximiser of the
        KALE bound for the final B, which is the E that the model Q_{B,E} ∝ exp(−E) B#η needs.
    final_energy_schedule : "linear" or "constant"
        Learning rate of those final energy updates.  "linear" (default): lr_t = lr · (1 − t / T) for
        t = 0 .. T − 1, T = ``final_energy_steps``, a decreasing Robbins–Monro schedule, so that E settles at the
        maximiser of the bound instead of ending at one noisy iterate of constant-step Adam.  Measured on
        8gaussians/25gaussians (1500 updates): with "constant" the final E tilted the mode weights of Q_{B,E}
        (mode weights 0.095–0.186 for 0.125) and a SIR draw of Q_{B,E} was worse than the generator alone on 4 of
        4 trainings; with "linear" and ``final_batch_size`` 512 it was better on 4 of 4.  "constant": lr
        throughout.
    final_batch_size : int or None
        Mini-batch size of the final energy updates (None: 4 × ``batch_size``, capped at the number of rows);
        a larger batch lowers the variance of the mode-level gradients that set Q's mixture weights.
    batch_size, lr, generator_lr :
        Mini-batch size; Adam learning rates of E and of B (``generator_lr`` None: ``lr``).
    gradient_penalty : float
        γ of the energy's gradient penalty.
    sampler, sample_steps, temperature, sample_init :
        Defaults of :meth:`sample` (a name in ``mala | ula | hmc | kinetic_langevin`` or a Sampler object;
        ``sample_init`` "sir" (default) or "prior", where the chains start, see :meth:`sample`).
    random_state : int or None
    device : "auto", "cpu" or "cuda".

    Attributes (after fit)
    ----------------------
    energy_, generator_ : the trained networks (eval mode); log_partition_ : float, c = log mean exp(−E(B(z)))
    over 1024 fresh z ~ η after training (the log-partition of Q_{B,E} relative to B#η);
    data_shape_, latent_dim_, seed_, history_ (dict of per-step lists: ``kale_bound``, ``energy_loss``,
    ``generator_loss``, ``log_partition`` (the batch c of the last energy update), ``wall_time``;
    ``final_kale_bound`` per final energy step; ``wall_time_total``); last_sample_info_, last_sample_seed_,
    last_sample_ess_ (:meth:`sample`, :meth:`sample_importance`).
    """

    def __init__(self, *, data_shape: Union[None, int, Sequence[int]] = None, latent_dim: Optional[int] = None,
                 energy: Union[str, Energy] = "auto", energy_params: Optional[Dict[str, Any]] = None,
                 generator: Union[str, nn.Module] = "auto", generator_params: Optional[Dict[str, Any]] = None,
                 steps: int = 2000, n_energy_steps: int = 5, final_energy_steps: int = 500,
                 final_energy_schedule: str = "linear", final_batch_size: Optional[int] = None,
                 batch_size: int = 128, lr: float = 1e-3,
                 generator_lr: Optional[float] = None, gradient_penalty: float = 0.1,
                 sampler: Union[str, Any] = "mala", sample_steps: int = 200, temperature: float = 1.0,
                 sample_init: str = "sir", random_state: Optional[int] = None, device: str = "cpu"):
        self.data_shape = data_shape
        self.latent_dim = latent_dim
        self.energy = energy
        self.energy_params = energy_params
        self.generator = generator
        self.generator_params = generator_params
        self.steps = steps
        self.n_energy_steps = n_energy_steps
        self.final_energy_steps = final_energy_steps
        self.final_energy_schedule = final_energy_schedule
        self.final_batch_size = final_batch_size
        self.batch_size = batch_size
        self.lr = lr
        self.generator_lr = generator_lr
        self.gradient_penalty = gradient_penalty
        self.sampler = sampler
        self.sample_steps = sample_steps
        self.temperature = temperature
        self.sample_init = sample_init
        self.random_state = random_state
        self.device = device

    # -- validation and building ----------------------------------------------------------------------------------
    def _validate(self) -> None:
        check_int("steps", self.steps)
        check_int("n_energy_steps", self.n_energy_steps)
        check_int("final_energy_steps", self.final_energy_steps, minimum=0)
        check_int("batch_size", self.batch_size)
        if self.final_energy_schedule not in FINAL_SCHEDULES:
            raise ConfigError(f"final_energy_schedule must be one of {', '.join(FINAL_SCHEDULES)}, got "
                              f"{self.final_energy_schedule!r}")
        if self.final_batch_size is not None:
            check_int("final_batch_size", self.final_batch_size)
        check_positive("lr", self.lr)
        if self.generator_lr is not None:
            check_positive("generator_lr", self.generator_lr)
        check_positive("gradient_penalty", self.gradient_penalty, allow_zero=True)
        check_int("sample_steps", self.sample_steps)
        check_temperature(self.temperature)
        _check_init(self.sample_init)
        resolve_latent_sampler(self.sampler)
        if self.latent_dim is not None:
            check_int("latent_dim", self.latent_dim)
        if self.random_state is not None:
            _check_seed("random_state", self.random_state)
        for name in ("energy_params", "generator_params"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, dict):
                raise ConfigError(f"{name} must be a dict of keyword options, got {v!r}")
        if not (self.energy == "auto" or isinstance(self.energy, Energy)):
            raise ConfigError(f"energy must be 'auto' or an ebmlab Energy object, got {self.energy!r}")
        if not (self.generator == "auto" or isinstance(self.generator, nn.Module)):
            raise ConfigError(f"generator must be 'auto' or an nn.Module mapping [n, latent_dim] to data rows, "
                              f"got {self.generator!r}")
        if isinstance(self.energy, Energy) and self.energy_params:
            raise ConfigError("energy_params apply only to energy='auto'; configure the Energy object itself")
        if isinstance(self.generator, nn.Module) and self.generator_params:
            raise ConfigError("generator_params apply only to generator='auto'; configure the module itself")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    def _expected_shape(self) -> Optional[Tuple[int, ...]]:
        if self.data_shape is None:
            return None
        shape = (self.data_shape,) if isinstance(self.data_shape, (int, np.integer)) else tuple(self.data_shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
            raise ConfigError(f"data_shape must be a positive int or a tuple of them, got {self.data_shape!r}")
        return tuple(int(s) for s in shape)

    def _default_latent_dim(self, shape: Tuple[int, ...]) -> int:
        if self.latent_dim is not None:
            return int(self.latent_dim)
        if len(shape) == 1:
            return min(shape[0], 16)
        return 16 if shape[-1] == 8 else 32

    def _build(self, shape: Tuple[int, ...], k: int, g: torch.Generator) -> Tuple[nn.Module, nn.Module]:
        import copy

        from ..energies.mlp import MLPEnergy

        image = len(shape) == 3
        if len(shape) not in (1, 3):
            raise DataError(f"GEBM takes vectors [n, d] or single-channel images [n, 1, H, W], got rows of shape {shape}")
        with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: keep it untouched
            if self.energy == "auto":
                ep = {"hidden": (128, 128), "activation": "silu", **(self.energy_params or {})}
                energy = ConvEnergy(shape, **(self.energy_params or {})) if image else MLPEnergy(shape[0], **ep)
                init_e = True
            else:
                energy, init_e = copy.deepcopy(self.energy), False
            if self.generator == "auto":
                gp = dict(self.generator_params or {})
                base = ConvGenerator(k, shape, **gp) if image else MLPGenerator(k, shape[0], **gp)
                init_b = True
            else:
                base, init_b = copy.deepcopy(self.generator), False
        if init_e:
            init_parameters_(energy, g)
        if init_b:
            init_parameters_(base, g)
        with torch.no_grad():
            try:
                out = base(torch.zeros(2, k))
            except Exception as err:  # noqa: BLE001 - a user module that does not take [n, k]
                raise ConfigError(f"the generator does not accept latents of shape [n, {k}] ({type(err).__name__}: {err})") from None
        if tuple(out.shape[1:]) != shape:
            raise DataError(f"the generator maps [n, {k}] to rows of shape {tuple(out.shape[1:])}, the data rows have shape {shape}")
        return energy, base

    # -- fitting --------------------------------------------------------------------------------------------------
    def fit(self, X, y: Any = None, *, callbacks: Sequence[Any] = ()) -> "GEBM":
        """Train energy and generator on ``X`` ([n, d] or [n, 1, H, W]) by alternating KALE updates (module
        docstring); ``y`` is ignored.  ``callbacks``: callables ``cb(step=, model=, stats=)`` after each generator
        update.  A non-finite loss raises :class:`ebmlab.TrainingDivergedError`."""
        from ..objectives.kale import KALEObjective
        from ..train.fit import resolve_device

        self._validate()
        x = check_data(X, name="X", ndim=None)
        if x.ndim < 2:
            raise DataError(f"X must have shape (n_samples, ...) with at least 2 dimensions, got {tuple(x.shape)}")
        x = x.to(torch.get_default_dtype())
        shape = tuple(int(s) for s in x.shape[1:])
        expected = self._expected_shape()
        if expected is not None and expected != shape:
            raise DataError(f"X rows have shape {shape}, but data_shape={expected}")
        if self.batch_size > x.shape[0]:
            raise ConfigError(f"batch_size={self.batch_size} exceeds the {x.shape[0]} training rows; allowed: 1..{x.shape[0]}")
        seed = fresh_seed() if self.random_state is None else _check_seed("random_state", self.random_state)
        dev = resolve_device(self.device)
        g = torch.Generator().manual_seed(seed)
        k = self._default_latent_dim(shape)
        energy, base = self._build(shape, k, g)
        energy, base, x = energy.to(dev), base.to(dev), x.to(dev)
        objective = KALEObjective(self.gradient_penalty)
        opt_e = torch.optim.Adam(energy.parameters(), lr=self.lr, betas=(0.5, 0.9))
        opt_b = torch.optim.Adam(base.parameters(), lr=self.generator_lr or self.lr, betas=(0.5, 0.9))
        gd = torch.Generator(device=dev).manual_seed(seed + 1)
        n, bs = x.shape[0], int(self.batch_size)
        final_bs = min(n, 4 * bs) if self.final_batch_size is None else int(self.final_batch_size)
        if final_bs > n:
            raise ConfigError(f"final_batch_size={final_bs} exceeds the {n} training rows; allowed: 1..{n}")
        hist: Dict[str, List[float]] = {"kale_bound": [], "energy_loss": [], "generator_loss": [],
                                        "log_partition": [], "wall_time": []}
        t0 = time.perf_counter()
        energy.train()
        base.train()
        def energy_update(bs=bs):
            xb = x[torch.randint(0, n, (bs,), generator=gd, device=dev)]
            with torch.no_grad():
                fake = base(torch.randn((bs, k), generator=gd, device=dev))
            loss, st = objective.energy_loss(energy, xb, fake, generator=gd)
            opt_e.zero_grad(set_to_none=True)
            loss.backward()
            opt_e.step()
            return loss, st

        for step in range(int(self.steps)):
            for _ in range(int(self.n_energy_steps)):
                loss_e, stats = energy_update()
            fake = base(torch.randn((bs, k), generator=gd, device=dev))
            loss_b = objective.generator_loss(energy, fake)
            opt_b.zero_grad(set_to_none=True)
            loss_b.backward()
            opt_b.step()
            le, lb = float(loss_e.detach()), float(loss_b.detach())
            if not (math.isfinite(le) and math.isfinite(lb)):
                raise TrainingDivergedError(f"GEBM training diverged at step {step}: energy loss {le}, generator loss "
                                            f"{lb}; lower lr or raise gradient_penalty")
            hist["kale_bound"].append(stats["kale_bound"])
            hist["energy_loss"].append(le)
            hist["generator_loss"].append(lb)
            hist["log_partition"].append(stats["log_partition"])
            hist["wall_time"].append(time.perf_counter() - t0)
            for cb in callbacks:
                cb(step=step, model=self, stats={"energy_loss": le, "generator_loss": lb, **stats})
        for p in base.parameters():
            p.requires_grad_(False)
        base.eval()
        final_bound = []
        n_final = int(self.final_energy_steps)
        for t in range(n_final):
            if self.final_energy_schedule == "linear":
                for group in opt_e.param_groups:
                    group["lr"] = self.lr * (1.0 - t / n_final)
            loss_e, stats = energy_update(final_bs)
            if not math.isfinite(float(loss_e.detach())):
                raise TrainingDivergedError(f"GEBM training diverged in the final energy steps: energy loss "
                                            f"{float(loss_e.detach())}; lower lr or raise gradient_penalty")
            final_bound.append(stats["kale_bound"])
        hist["final_kale_bound"] = final_bound
        energy.eval()
        for p in energy.parameters():
            p.requires_grad_(False)
        hist["wall_time_total"] = time.perf_counter() - t0
        self.energy_, self.generator_ = energy, base
        with torch.no_grad():
            fake = base(torch.randn((1024, k), generator=gd, device=dev))
            self.log_partition_ = float(objective.optimal_log_partition(energy(fake)))
        if not math.isfinite(self.log_partition_):
            raise TrainingDivergedError(f"GEBM training diverged: log mean exp(-E(B(z))) = {self.log_partition_}")
        self.data_shape_, self.latent_dim_, self.seed_ = shape, k, seed
        self.history_ = hist
        return self

    # -- sampling -------------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "energy_"):
            raise ConfigError("this GEBM is not fitted yet: call fit(X) or GEBM.load(path) first")

    def _rng(self, random_state) -> Tuple[torch.Generator, int]:
        seed = fresh_seed() if random_state is None else _check_seed("random_state", random_state)
        dev = next(self.generator_.parameters()).device
        return torch.Generator(device=dev).manual_seed(seed), seed

    def _latent(self, n: int, g: torch.Generator) -> torch.Tensor:
        p = next(self.generator_.parameters())
        return torch.randn((n, self.latent_dim_), generator=g, device=p.device, dtype=p.dtype)

    def sample_generator(self, n_samples: int, *, random_state: Optional[int] = None) -> torch.Tensor:
        """B(z) for z ~ η = N(0, I): the base measure alone, Tensor[n_samples, *data_shape_]."""
        self._check_fitted()
        n = check_int("n_samples", n_samples)
        g, seed = self._rng(random_state)
        self.last_sample_seed_ = seed
        with torch.no_grad():
            return self.generator_(self._latent(n, g)).detach()

    def _candidates(self, n: int, candidates: Optional[int]) -> int:
        return max(20 * n, 10000) if candidates is None else check_int("candidates", candidates)

    def sample_importance(self, n_samples: int, *, temperature: Optional[float] = None,
                          candidates: Optional[int] = None, random_state: Optional[int] = None) -> torch.Tensor:
        """Sampling-importance-resampling from Q_{B,E} (β = 1 / ``temperature``): ``candidates`` latents z ~ η
        (default max(20 n, 10 000)), weights ∝ exp(−β E(B(z))), ``n_samples`` resampled with replacement, returned
        as B(z) (:func:`~ebmlab.generators.posterior.importance_resample`).  Asymptotically exact as the number of
        candidates grows, with no MCMC; ``last_sample_ess_`` is the effective sample size of the weights (compare
        it with ``n_samples``: an ESS below it means repeated draws)."""
        self._check_fitted()
        n = check_int("n_samples", n_samples)
        t = check_temperature(self.temperature if temperature is None else temperature)
        m = self._candidates(n, candidates)
        g, seed = self._rng(random_state)
        p = next(self.generator_.parameters())
        x, _, ess = importance_resample(self.energy_, self.generator_, n, candidates=m, latent_dim=self.latent_dim_,
                                        temperature=t, generator=g, dtype=p.dtype, device=p.device)
        self.last_sample_ess_, self.last_sample_seed_ = ess, seed
        return x.detach()

    def sample(self, n_samples: int, *, sampler: Union[str, Any, None] = None, temperature: Optional[float] = None,
               steps: Optional[int] = None, step_size: Optional[float] = None, init: Optional[str] = None,
               candidates: Optional[int] = None, random_state: Optional[int] = None) -> torch.Tensor:
        """Draw from Q_{B,E} at inverse temperature β = 1/``temperature``: z from ν_β(z) ∝ η(z) exp(−β E(B(z)))
        by ``steps`` steps of ``sampler`` (the final state kept; adaptive samplers tune a step size per chain
        during the first ``steps // 2``), returned as B(z), Tensor[n_samples, *data_shape_].

        ``init`` says where the chains start: "sir" (default ``sample_init``) at a sampling-importance-resampling
        draw of ν_β (:meth:`sample_importance` with ``candidates``, default max(20 n, 10 000)), so the chains
        start close to the target and their mixture weights over the modes of ν_β are already those of ν_β
        (a local sampler started at z ~ η keeps, roughly, the η-mass of each mode's basin instead, and on
        multimodal ν_β never corrects it); "prior" at z ~ η.  Defaults are the constructor's ``sampler``,
        ``temperature``, ``sample_steps`` and ``sample_init``; ``last_sample_info_`` holds the chain runner's
        :class:`~ebmlab.samplers.SampleInfo` and ``last_sample_ess_`` the ESS of the SIR start (None for
        "prior")."""
        self._check_fitted()
        n = check_int("n_samples", n_samples)
        s = resolve_latent_sampler(self.sampler if sampler is None else sampler)
        t = check_temperature(self.temperature if temperature is None else temperature)
        steps = check_int("steps", self.sample_steps if steps is None else steps)
        init = _check_init(self.sample_init if init is None else init)
        m = self._candidates(n, candidates)
        g, seed = self._rng(random_state)
        ess = None
        if init == "sir":
            p = next(self.generator_.parameters())
            _, z0, ess = importance_resample(self.energy_, self.generator_, n, candidates=m,
                                             latent_dim=self.latent_dim_, temperature=t, generator=g, dtype=p.dtype,
                                             device=p.device)
        else:
            z0 = self._latent(n, g)
        x, _, info = sample_latent_posterior(self.energy_, self.generator_, z0, sampler=s,
                                             temperature=t, steps=steps, step_size=step_size, generator=g)
        self.last_sample_info_, self.last_sample_seed_, self.last_sample_ess_ = info, seed, ess
        return x.detach()

    # -- persistence ----------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Save to directory ``path`` as ``gebm.safetensors``: weights of E and B, c, and the JSON configuration
        (only networks built from "auto" can be rebuilt at load; others raise ConfigError)."""
        from ..train.checkpoint import save_checkpoint

        self._check_fitted()
        if self.energy != "auto" or self.generator != "auto":
            raise ConfigError("GEBM.save needs energy='auto' and generator='auto' (the networks are rebuilt from "
                              "their configuration at load); save a custom module's state_dict yourself")
        if not isinstance(self.sampler, str):
            raise ConfigError(f"GEBM.save needs the sampler given by name ({', '.join(LATENT_SAMPLERS)}), got a "
                              f"{type(self.sampler).__name__} object")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"GEBM.save(path) takes a directory (it writes {GEBM_FILE} into it); {path} is a file")
        params = {k: getattr(self, k) for k in self.parameter_names()}
        if isinstance(params["data_shape"], tuple):
            params["data_shape"] = list(params["data_shape"])
        meta = {"gebm": params, "data_shape": list(self.data_shape_), "latent_dim": self.latent_dim_,
                "log_partition": self.log_partition_, "seed": self.seed_}
        save_checkpoint(path / GEBM_FILE, {"energy": dict(self.energy_.state_dict()),
                                           "generator": dict(self.generator_.state_dict())}, meta)
        return path

    @classmethod
    def load(cls, path) -> "GEBM":
        """Load a model written by :meth:`save` (a directory holding ``gebm.safetensors``)."""
        from ..train.checkpoint import load_model_file

        file, groups, meta = load_model_file(path, GEBM_FILE, "gebm", "GEBM")
        model = cls(**meta["gebm"])
        shape = tuple(int(s) for s in meta["data_shape"])
        k = int(meta["latent_dim"])
        energy, base = model._build(shape, k, torch.Generator().manual_seed(0))
        try:
            energy.load_state_dict(groups["energy"])
            base.load_state_dict(groups["generator"])
        except (RuntimeError, KeyError) as err:
            raise DataError(f"{file}: weights do not match the saved configuration ({err})") from None
        energy.eval()
        base.eval()
        for p in list(energy.parameters()) + list(base.parameters()):
            p.requires_grad_(False)
        model.energy_, model.generator_ = energy, base
        model.log_partition_ = float(meta["log_partition"])
        model.data_shape_, model.latent_dim_, model.seed_ = shape, k, meta.get("seed")
        model.history_ = None
        return model
