r"""``DiffusionSampler``: a learned diffusion sampler for a fixed unnormalised target exp(-U)/Z.

Trained with the log-variance (LV) divergence between path measures (Richter & Berner 2024, "Improved sampling
via learned diffusions"), or the reverse KL (the time-reversed diffusion sampler of Berner, Richter & Ullrich 2024,
"An optimal control perspective on diffusion-based generative modeling"), on the VP reference SDE of
:mod:`ebmlab.diffusion.sde`.  No target samples are needed.  As by-products:

- log Ẑ = log (1/n) Σ_i w_i, an unbiased estimate of Z (exact discrete-time weights), reported with the
  delta-method standard error  SE = sqrt( (1/n) · mean((w_i / w̄ - 1)²) );
- the ELBO  E[log w] ≤ log Z;
- the Kish effective sample size  ESS = (Σ w_i)² / Σ w_i²;
- resampled draws (multinomial on w), asymptotically exact as n → ∞.

``fit`` is trainer-style: it takes ``seed`` (the network initialisation and every path's noise come from
generators seeded with it) like :func:`ebmlab.fit`; the other methods take a ``generator``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from .._core.errors import ConfigError, DataError, TrainingDivergedError
from .._core.random import as_generator, fresh_seed
from .._core.validation import check_int, check_positive
from .control import FourierControl
from .sde import VPSchedule, kl_loss, log_variance_loss, simulate

LOSSES = ("log_variance", "kl")
MODEL_FILE = "sampler.safetensors"


def log_z_from_log_weights(log_weight: torch.Tensor) -> Tuple[float, float]:
    r"""(log Ẑ, SE) from log importance weights: log Ẑ = logsumexp(log w) - log n, and the delta-method standard
    error sqrt(mean((w/w̄ - 1)²) / n) (w̄ = mean weight)."""
    lw = log_weight.detach().to(torch.float64)
    if not bool(torch.isfinite(lw).all()):
        raise DataError(f"{int((~torch.isfinite(lw)).sum())} of {lw.numel()} log weights are not finite")
    n = lw.numel()
    est = torch.logsumexp(lw, 0) - math.log(n)
    rel = torch.exp(lw - est)
    se = torch.sqrt(((rel - 1.0) ** 2).mean() / n)
    return float(est), float(se)


def effective_sample_size_from_log_weights(log_weight: torch.Tensor) -> float:
    """Kish's effective sample size (Σ w)² / Σ w² (between 1 and n): :func:`ebmlab.metrics.importance_ess`."""
    from ..metrics.mcmc_diagnostics import importance_ess

    return importance_ess(log_weight)


class _Scaled(torch.nn.Module):
    """Ũ(z) = U(σ z), ∇Ũ(z) = σ ∇U(σ z)."""

    def __init__(self, energy, scale: float):
        super().__init__()
        self.energy, self.scale = energy, scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.energy(z * self.scale)

    def energy_and_grad(self, z: torch.Tensor):
        u, g = self.energy.energy_and_grad(z * self.scale)
        return u, g * self.scale


class DiffusionSampler:
    r"""A controlled VP diffusion whose terminal law approximates exp(-U)/Z (module docstring).

    Parameters
    ----------
    energy : Energy
        The target U (differentiable by autograd; ``energy_and_grad`` is used for the score-informed control).
    dim : int
        Dimension of x.
    sde_steps : int
        K, the number of Euler steps of the controlled chain (default 100).
    beta_min, beta_max : float
        The linear VP schedule β(s) = β_min + s (β_max - β_min) (defaults .1 and 10).
    hidden : sequence of int
        Hidden widths of the Fourier MLP (default (64, 64)).
    n_frequencies : int
        Sinusoid pairs of the time embedding (default 8).
    use_energy_grad : bool
        Add the score-informed term g(t) ⊙ σ clip(-∇U(x)) (one ∇U per SDE step; default True).
    score_clip : float
        Coordinate-wise clip of -∇U in the control (default 100).
    score_interpolation : bool
        Start from the interpolation σ[(1 - t)(-x) + t clip(-∇U)] of the prior's and the target's scores instead of
        the prior's alone (:class:`~ebmlab.diffusion.control.FourierControl`; default False).
    prior_std : float
        σ_p: the chain runs in z = x / σ_p on the target Ũ(z) = U(σ_p z) (log Z = log Z̃ + d log σ_p), i.e. the
        VP SDE whose stationary law and prior are N(0, σ_p² I) (default 1; larger for wide targets such as the
        funnel).
    dtype : torch.dtype
        float32 (default) or float64.
    """

    def __init__(self, energy, dim: int, *, sde_steps: int = 100, beta_min: float = 0.1, beta_max: float = 10.0,
                 hidden: Sequence[int] = (64, 64), n_frequencies: int = 8, use_energy_grad: bool = True,
                 score_clip: float = 100.0, score_interpolation: bool = False, prior_std: float = 1.0,
                 dtype: torch.dtype = torch.float32):
        if not callable(energy):
            raise ConfigError(f"energy must be an Energy (a callable x -> U(x)), got {energy!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        self.energy = energy
        self.dim = check_int("dim", dim)
        self.prior_std = check_positive("prior_std", prior_std)
        self._target = energy if self.prior_std == 1.0 else _Scaled(energy, self.prior_std)
        self._log_jacobian = self.dim * math.log(self.prior_std)
        self.schedule = VPSchedule(sde_steps, beta_min, beta_max)
        self.options = {"hidden": list(hidden) if not isinstance(hidden, int) else hidden,
                        "n_frequencies": n_frequencies, "use_energy_grad": use_energy_grad, "score_clip": score_clip,
                        "score_interpolation": score_interpolation}
        FourierControl(self.dim, self.schedule, **self.options)  # validate the options now
        self.dtype = dtype
        self.control_: Optional[FourierControl] = None
        self.history_: Dict[str, list] = {}

    # -- training ------------------------------------------------------------------------------------------------
    def fit(self, steps: int = 2000, loss: str = "log_variance", batch_size: int = 256, lr: float = 1e-3,
            seed: Optional[int] = 0, grad_clip: Optional[float] = 10.0, lr_decay: bool = True,
            progress: bool = False) -> "DiffusionSampler":
        """Train a freshly initialised control for ``steps`` Adam steps on ``batch_size`` paths each.

        ``loss="log_variance"``: Var(log w) on paths of the detached control; ``"kl"``: E[-log w] on on-policy
        paths (reparametrised).  ``lr_decay``: cosine decay of ``lr`` to 0.  ``grad_clip``: clip of the gradient's
        norm (None: off).  ``seed=None`` draws a fresh seed, stored in ``seed_``.  A non-finite path weight raises
        :class:`~ebmlab.TrainingDivergedError` naming the step.
        """
        steps = check_int("steps", steps)
        batch_size = check_int("batch_size", batch_size, minimum=2)
        lr = check_positive("lr", lr)
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if grad_clip is not None:
            grad_clip = check_positive("grad_clip", grad_clip)
        if seed is None:
            seed = fresh_seed()
        elif isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an int or None, got {seed!r}")
        self.seed_ = int(seed)
        gen = torch.Generator().manual_seed(self.seed_)
        control = FourierControl(self.dim, self.schedule, generator=gen, **self.options).to(self.dtype)
        opt = torch.optim.Adam(control.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if lr_decay else None
        mode = "log_variance" if loss == "log_variance" else "kl"
        hist = {"loss": [], "elbo": [], "log_z": []}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=f"diffusion sampler ({loss})")
        t0 = time.perf_counter()
        for step in range(steps):
            paths = simulate(control, self._target, self.schedule, batch_size, self.dim, mode=mode, generator=gen,
                             dtype=self.dtype)
            lw = paths.log_weight
            if not bool(torch.isfinite(lw).all()):
                raise TrainingDivergedError(
                    f"diffusion sampler diverged at training step {step}: {int((~torch.isfinite(lw)).sum())} of "
                    f"{batch_size} path weights are not finite (try a smaller lr, a smaller score_clip or more sde_steps)")
            value = log_variance_loss(lw) if mode == "log_variance" else kl_loss(lw)
            opt.zero_grad(set_to_none=True)
            value.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(control.parameters(), grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            with torch.no_grad():
                hist["loss"].append(float(value))
                hist["elbo"].append(float(lw.mean()))
                hist["log_z"].append(float(torch.logsumexp(lw.detach().double(), 0) - math.log(batch_size)))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(value):.3g}")
        if bar is not None:
            bar.close()
        control.eval()
        for p in control.parameters():
            p.requires_grad_(False)
        self.control_ = control
        self.history_ = hist
        self.fit_info_ = {"steps": steps, "loss": loss, "batch_size": batch_size, "lr": lr, "seed": self.seed_,
                          "wall_time": time.perf_counter() - t0,
                          "energy_evals": steps * batch_size * self._evals_per_path()}
        return self

    def _evals_per_path(self) -> int:
        return self.schedule.sde_steps * int(bool(self.options["use_energy_grad"])) + 1

    def _check_fitted(self) -> FourierControl:
        if self.control_ is None:
            raise ConfigError("this DiffusionSampler is not fitted yet: call fit(...) or DiffusionSampler.load(...)")
        return self.control_

    # -- inference -----------------------------------------------------------------------------------------------
    def paths(self, n_samples: int, generator: Union[torch.Generator, int, None] = None,
              batch_size: int = 4096) -> Tuple[torch.Tensor, torch.Tensor]:
        """``n_samples`` terminal draws [n, dim] and their log path weights [n] (float64), in chunks of
        ``batch_size`` paths."""
        control = self._check_fitted()
        n_samples = check_int("n_samples", n_samples)
        batch_size = check_int("batch_size", batch_size)
        gen = as_generator(generator)
        xs, lws = [], []
        for start in range(0, n_samples, batch_size):
            m = min(batch_size, n_samples - start)
            p = simulate(control, self._target, self.schedule, m, self.dim, mode="eval", generator=gen,
                         dtype=self.dtype)
            xs.append(p.x * self.prior_std)
            lws.append(p.log_weight.double() + self._log_jacobian)
        return torch.cat(xs), torch.cat(lws)

    def sample(self, n_samples: int, generator: Union[torch.Generator, int, None] = None,
               resample: bool = False) -> torch.Tensor:
        """Draws of the learned terminal law, Tensor[n_samples, dim]; ``resample=True`` resamples ``n_samples``
        paths multinomially with probabilities ∝ w (asymptotically exact draws of exp(-U)/Z)."""
        if not isinstance(resample, bool):
            raise ConfigError(f"resample must be true or false, got {resample!r}")
        gen = as_generator(generator)
        x, lw = self.paths(n_samples, gen)
        if not resample:
            return x
        if not bool(torch.isfinite(lw).all()):
            raise DataError("cannot resample: some path weights are not finite")
        prob = torch.softmax(lw, 0)
        idx = torch.multinomial(prob, x.shape[0], replacement=True, generator=gen)
        return x[idx]

    def log_z(self, n_samples: int = 10000, generator: Union[torch.Generator, int, None] = None) -> Tuple[float, float]:
        """(log Ẑ, standard error) by importance weighting of ``n_samples`` paths (module docstring)."""
        return log_z_from_log_weights(self.paths(n_samples, generator)[1])

    def elbo(self, n_samples: int = 10000, generator: Union[torch.Generator, int, None] = None) -> float:
        """The evidence lower bound E[log w] ≤ log Z, averaged over ``n_samples`` paths."""
        return float(self.paths(n_samples, generator)[1].mean())

    def effective_sample_size(self, n_samples: int = 10000,
                              generator: Union[torch.Generator, int, None] = None) -> float:
        """Kish's ESS (Σ w)² / Σ w² of ``n_samples`` paths (divide by ``n_samples`` for the efficiency)."""
        return effective_sample_size_from_log_weights(self.paths(n_samples, generator)[1])

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the control's weights and the configuration to ``path/sampler.safetensors`` (no pickle)."""
        from ..train.checkpoint import save_checkpoint

        control = self._check_fitted()
        path = Path(path)
        meta = {"dim": self.dim, "schedule": self.schedule.to_dict(), "options": self.options,
                "prior_std": self.prior_std,
                "dtype": str(self.dtype).replace("torch.", ""), "fit": getattr(self, "fit_info_", None)}
        save_checkpoint(path / MODEL_FILE, {"control": dict(control.state_dict())}, meta)
        return path

    @classmethod
    def load(cls, path, energy) -> "DiffusionSampler":
        """Load a sampler written by :meth:`save`, for the target ``energy`` (energies are not saved)."""
        from ..train.checkpoint import load_checkpoint

        path = Path(path)
        file = path / MODEL_FILE if path.is_dir() else path
        groups, meta = load_checkpoint(file)
        if "schedule" not in meta or "control" not in groups:
            raise DataError(f"{file} is not a DiffusionSampler checkpoint")
        dtype = {"float32": torch.float32, "float64": torch.float64}[meta["dtype"]]
        self = cls(energy, meta["dim"], dtype=dtype, prior_std=meta.get("prior_std", 1.0), **meta["schedule"],
                   **meta["options"])
        control = FourierControl(self.dim, self.schedule, **self.options).to(dtype)
        control.load_state_dict(groups["control"])
        control.eval()
        for p in control.parameters():
            p.requires_grad_(False)
        self.control_ = control
        if meta.get("fit"):
            self.fit_info_ = meta["fit"]
            self.seed_ = meta["fit"].get("seed")
        return self
