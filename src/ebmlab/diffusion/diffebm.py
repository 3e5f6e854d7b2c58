r"""DiffEBM: an energy-based model trained jointly with a diffusion sampler, without MCMC ("No MCMC teaching for
me: learning energy-based models via diffusion synergy", anonymous, under review 2024).

Each iteration, with a data batch x⁺ and a batch of controlled paths X (detached reference control, VP SDE of
:mod:`ebmlab.diffusion.sde`) whose target is the current EBM exp(-E_θ):

- sampler (control φ):  (1 - η) L_DSM(φ) + η Var[log w_φ(X)],  where L_DSM is denoising score matching of the
  control on x⁺ (u_φ(x_s, t)/σ(t) regresses the noised-data score -ε/std(s); x_s = m(s) x⁺ + std(s) ε,
  m(s) = exp(-½ ∫₀^s β), weighting std(s)²) and the LV term treats E_θ as fixed (θ detached);
- EBM (θ):  (1 - α) [mean E_θ(x⁺) - mean E_θ(x⁻)] + α Var[A(X) - E_θ(x_K) - log N(x₀; 0, I)],  with the sampler's
  terminal draws x⁻ = x_K as negatives and the control's part A = running + stochastic + reference of the log path
  weight detached (φ fixed), exactly as the paper stops gradients across the two.

The energy is three 1×1-convolution layers with SiLU (the paper's set-up; on vectors a 1×1 convolution is a dense
layer applied to the d input channels).  Optimiser: Prodigy (Mishchenko & Defazio 2024, "Prodigy: an expeditiously
adaptive parameter-free learner", package ``prodigyopt``) as in the paper, or Adam.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from torch import nn

from .._core.errors import ConfigError, TrainingDivergedError
from .._core.random import fresh_seed, init_parameters_
from .._core.validation import check_data, check_int, check_positive, check_probability
from ..energies.base import Energy
from .control import FourierControl
from .sampler import DiffusionSampler
from .sde import VPSchedule, log_standard_normal, log_variance_loss, simulate

OPTIMIZERS = ("adam", "prodigy")


class PointwiseConvEnergy(Energy):
    """E_θ(x) by three 1×1 convolutions with SiLU between them: d → h → h → 1 channels."""

    def __init__(self, dim: int, hidden: int = 128, generator: Optional[torch.Generator] = None):
        super().__init__()
        self.dim = check_int("dim", dim)
        hidden = check_int("hidden", hidden)
        with torch.random.fork_rng(devices=[]):
            self.net = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.SiLU(), nn.Conv1d(hidden, hidden, 1), nn.SiLU(),
                                     nn.Conv1d(hidden, 1, 1))
        init_parameters_(self, generator if generator is not None else torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[:, :, None]).reshape(x.shape[0])


def _optimizer_class(name: str):
    if name == "adam":
        return torch.optim.Adam
    from prodigyopt import Prodigy

    return Prodigy


def _check_optimizer_params(name: str, params: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The keyword options of the optimizer's constructor (all but ``params`` and ``lr``), validated by name."""
    import inspect

    params = dict(params or {})
    allowed = [k for k in inspect.signature(_optimizer_class(name).__init__).parameters
               if k not in ("self", "params", "lr")]
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise ConfigError(f"optimizer_params {', '.join(map(repr, bad))} are not options of {name}; allowed: "
                          f"{', '.join(allowed)}")
    return params


def _make_optimizer(name: str, params, lr: Optional[float], options: Dict[str, Any]):
    default_lr = 1e-3 if name == "adam" else 1.0
    return _optimizer_class(name)(params, lr=default_lr if lr is None else lr, **options)


class DiffEBM:
    r"""Joint training of an EBM and a diffusion sampler (module docstring).  Trainer-style: ``fit(data, steps=,
    batch_size=, seed=)`` -> self; afterwards ``energy_`` (the EBM), ``sampler_`` (a fitted
    :class:`DiffusionSampler` whose target is ``energy_``), ``history_``.

    Parameters
    ----------
    dim : int
    hidden : int
        Channels of the 1×1-convolution energy (default 128).
    eta : float
        η ∈ [0, 1], weight of the LV term in the sampler's loss (default .5).
    alpha : float
        α ∈ [0, 1], weight of the LV term in the EBM's loss (default .5).
    sde_steps, control_hidden, use_energy_grad :
        The sampler's chain and control (:class:`DiffusionSampler`).
    optimizer : {"adam", "prodigy"}
        Default Adam.  The paper uses Prodigy; at the package's defaults (lr 1, no safeguard warm-up, no bias
        correction) the joint training diverged (non-finite loss at iteration 42 on 8gaussians_unit, batch 128,
        30 SDE steps).  ``optimizer_params={"safeguard_warmup": True, "use_bias_correction": True}`` trained
        stably in our runs, with sampler draws no closer to the data than Adam's at equal iterations.
    lr : float, optional
        Default 1.0 for Prodigy (its recommended value), 1e-3 for Adam.
    optimizer_params : dict, optional
        Further options of the optimizer's constructor (e.g. Prodigy's ``d_coef``, ``safeguard_warmup``,
        ``use_bias_correction``, ``weight_decay``; Adam's ``betas``), the same for both models.
    grad_clip : float, optional
        Clip the gradient norm of each model's update to this value (default None: no clipping).
    """

    def __init__(self, dim: int, *, hidden: int = 128, eta: float = 0.5, alpha: float = 0.5, sde_steps: int = 50,
                 control_hidden: Sequence[int] = (64, 64), use_energy_grad: bool = True,
                 optimizer: str = "adam", lr: Optional[float] = None,
                 optimizer_params: Optional[Dict[str, Any]] = None, grad_clip: Optional[float] = None):
        self.dim = check_int("dim", dim)
        self.hidden = check_int("hidden", hidden)
        self.eta = check_probability("eta", eta)
        self.alpha = check_probability("alpha", alpha)
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        self.optimizer = optimizer
        self.lr = None if lr is None else check_positive("lr", lr)
        self.optimizer_params = _check_optimizer_params(optimizer, optimizer_params)
        self.grad_clip = None if grad_clip is None else check_positive("grad_clip", grad_clip)
        self.sde_steps = check_int("sde_steps", sde_steps)
        self.control_hidden = list(control_hidden)
        self.use_energy_grad = use_energy_grad
        FourierControl(self.dim, VPSchedule(self.sde_steps), hidden=self.control_hidden,
                       use_energy_grad=use_energy_grad)  # validate now

    def _dsm(self, control: FourierControl, energy: Energy, schedule: VPSchedule, x: torch.Tensor,
             gen: torch.Generator) -> torch.Tensor:
        k = torch.randint(0, schedule.sde_steps, (x.shape[0],), generator=gen)
        s = (1.0 - schedule.t[k]).to(x.dtype)
        log_m = -0.5 * (schedule.beta_min * s + 0.5 * (schedule.beta_max - schedule.beta_min) * s * s)
        m = torch.exp(log_m)[:, None]
        std = torch.sqrt(-torch.expm1(2.0 * log_m))[:, None]
        eps = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        xs = m * x + std * eps
        grad_u = energy.energy_and_grad(xs)[1] if control.uses_energy_grad else None
        u = control(xs, k, grad_u)
        sig = schedule.sigma[k].to(x.dtype)[:, None]
        return ((std * u / sig + eps) ** 2).sum(-1).mean()

    def fit(self, data, steps: int = 2000, batch_size: int = 256, seed: Optional[int] = 0,
            callback: Optional[Callable[..., Any]] = None) -> "DiffEBM":
        """Train for ``steps`` iterations on ``data`` [n, dim]; ``callback(step=, loss=, stats=)`` after each.
        A non-finite loss or path weight raises :class:`~ebmlab.TrainingDivergedError` naming the iteration."""
        x_all = check_data(data).to(torch.float32)
        if x_all.shape[1] != self.dim:
            raise ConfigError(f"data has {x_all.shape[1]} columns but DiffEBM(dim={self.dim})")
        steps = check_int("steps", steps)
        batch_size = check_int("batch_size", batch_size, minimum=2)
        self.seed_ = fresh_seed() if seed is None else int(seed)
        gen = torch.Generator().manual_seed(self.seed_)
        schedule = VPSchedule(self.sde_steps)
        energy = PointwiseConvEnergy(self.dim, self.hidden, generator=gen)
        control = FourierControl(self.dim, schedule, hidden=self.control_hidden,
                                 use_energy_grad=self.use_energy_grad, generator=gen)
        opt_e = _make_optimizer(self.optimizer, energy.parameters(), self.lr, self.optimizer_params)
        opt_c = _make_optimizer(self.optimizer, control.parameters(), self.lr, self.optimizer_params)
        hist: Dict[str, list] = {"ebm_loss": [], "sampler_loss": [], "dsm": [], "lv": [], "mle": []}
        t0 = time.perf_counter()
        for step in range(steps):
            idx = torch.randint(0, x_all.shape[0], (batch_size,), generator=gen)
            xp = x_all[idx]
            # sampler update: the EBM is a fixed target here (its parameters get no gradient)
            for p in energy.parameters():
                p.requires_grad_(False)
            paths = simulate(control, energy, schedule, batch_size, self.dim, mode="log_variance", generator=gen)
            if not bool(torch.isfinite(paths.log_weight).all()):
                raise TrainingDivergedError(f"DiffEBM diverged at iteration {step}: non-finite path weights")
            lv = log_variance_loss(paths.log_weight)
            dsm = self._dsm(control, energy, schedule, xp, gen)
            loss_c = (1.0 - self.eta) * dsm + self.eta * lv
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(control.parameters(), self.grad_clip)
            opt_c.step()
            for p in energy.parameters():
                p.requires_grad_(True)
            # EBM update: the control's part of the log weight is detached
            xn = paths.x.detach()
            a = (paths.running + paths.stochastic + paths.reference).detach() - log_standard_normal(paths.x0)
            en = energy(xn)
            mle = energy(xp).mean() - en.mean()
            lv_e = log_variance_loss(a - en)
            loss_e = (1.0 - self.alpha) * mle + self.alpha * lv_e
            if not (math.isfinite(float(loss_e.detach())) and math.isfinite(float(loss_c.detach()))):
                raise TrainingDivergedError(f"DiffEBM diverged at iteration {step}: loss is not finite")
            opt_e.zero_grad(set_to_none=True)
            loss_e.backward()
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(energy.parameters(), self.grad_clip)
            opt_e.step()
            for key, v in (("ebm_loss", loss_e), ("sampler_loss", loss_c), ("dsm", dsm), ("lv", lv), ("mle", mle)):
                hist[key].append(float(v.detach()))
            if callback is not None:
                callback(step=step, loss=float(loss_e.detach()), stats={k: hist[k][-1] for k in hist})
        for p in list(energy.parameters()) + list(control.parameters()):
            p.requires_grad_(False)
        energy.eval()
        control.eval()
        self.energy_ = energy
        sampler = DiffusionSampler(energy, self.dim, sde_steps=self.sde_steps, hidden=self.control_hidden,
                                   use_energy_grad=self.use_energy_grad)
        sampler.control_ = control
        sampler.seed_ = self.seed_
        self.sampler_ = sampler
        self.history_ = hist
        self.fit_info_ = {"steps": steps, "batch_size": batch_size, "seed": self.seed_,
                          "wall_time": time.perf_counter() - t0}
        return self

    def sample(self, n_samples: int, generator=None, resample: bool = False) -> torch.Tensor:
        """Draws of the trained sampler (``resample=True``: importance-resampled toward exp(-E_θ))."""
        if not hasattr(self, "sampler_"):
            raise ConfigError("this DiffEBM is not fitted yet: call fit(data, ...)")
        return self.sampler_.sample(n_samples, generator=generator, resample=resample)


#: ``model_params`` of ``ebmlab train --model diffebm``
RUN_PARAMS = ("hidden", "eta", "alpha", "sde_steps", "control_hidden", "use_energy_grad", "optimizer_params",
              "grad_clip")
_RUN_KEYS = {"model", "model_params", "data", "n_train", "n_test", "steps", "batch_size", "lr", "optimizer", "seed",
             "n_samples", "resolution", "progress", "name", "device"}


def train_diffebm_run(cfg: Dict[str, Any], out=None, resume: bool = False):
    """``ebmlab train --model diffebm``: train :class:`DiffEBM` on ``cfg['data']`` and write a run directory
    (config.yaml, log.csv, metrics.json, ebm.safetensors, sampler.safetensors, samples.png, energy.png,
    energy_true.png where the data's density is known, loss.png).  ``model_params``: see ``RUN_PARAMS``;
    ``optimizer``: "adam" (with ``lr``) or "prodigy" (pass ``--lr 1.0``, Prodigy's own scale)."""
    import json
    import sys

    import yaml

    from .._core.fsutil import atomic_write_text
    from ..data import toy_bounds, toy_density_names, toy_names
    from ..metrics import sinkhorn
    from ..report.plots import plot_energy, plot_loss, plot_samples
    from ..run import _data_splits, new_run_dir, reject_unused_keys
    from ..train.checkpoint import save_checkpoint

    reject_unused_keys(cfg, "diffebm", _RUN_KEYS)
    if resume:
        raise ConfigError("--model diffebm does not support --resume (runs are short; start a new run)")
    if str(cfg.get("device", "auto")) not in ("auto", "cpu"):
        raise ConfigError(f"--model diffebm runs on the CPU; got device {cfg['device']!r} (use auto or cpu)")
    params = dict(cfg.get("model_params") or {})
    bad = sorted(set(params) - set(RUN_PARAMS))
    if bad:
        raise ConfigError(f"--model diffebm has no model_params {', '.join(map(repr, bad))}; allowed: "
                          f"{', '.join(RUN_PARAMS)}")
    optimizer = cfg.get("optimizer", "adam")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--model diffebm: optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    train, test, reference, name = _data_splits(cfg)
    if train.shape[1] != 2 and name in toy_names():
        raise ConfigError(f"data {name!r} is not 2-D")
    model = DiffEBM(train.shape[1], optimizer=optimizer, lr=float(cfg["lr"]), **params)
    run_dir = new_run_dir(cfg, out, resume, default_name=f"diffebm-{name}")
    lines = ["step,ebm_loss,sampler_loss,dsm,lv,mle"]
    steps = int(cfg["steps"])
    every = max(1, steps // 10)

    def log(step, loss, stats):
        lines.append(f"{step},{stats['ebm_loss']:.6g},{stats['sampler_loss']:.6g},{stats['dsm']:.6g},"
                     f"{stats['lv']:.6g},{stats['mle']:.6g}")
        if cfg.get("progress", True) and (step + 1) % every == 0:
            print(f"diffebm: step {step + 1}/{steps} ebm loss {stats['ebm_loss']:.4g} sampler loss "
                  f"{stats['sampler_loss']:.4g}", file=sys.stderr, flush=True)

    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.perf_counter()
    status = "ok"
    try:
        model.fit(train, steps=steps, batch_size=int(cfg["batch_size"]), seed=int(cfg["seed"]), callback=log)
    except TrainingDivergedError as err:
        status = "diverged"
        atomic_write_text(run_dir / "log.csv", "\n".join(lines) + "\n")
        atomic_write_text(run_dir / "metrics.json", json.dumps({"status": status, "error": str(err)}, indent=2))
        raise
    wall = time.perf_counter() - t0
    atomic_write_text(run_dir / "log.csv", "\n".join(lines) + "\n")
    n = int(cfg["n_samples"])
    samples = model.sample(n, generator=torch.Generator().manual_seed(int(cfg["seed"]) + 3))
    metrics = {"status": status, "model": "diffebm", "data": name, "steps": steps, "wall_time_s": round(wall, 2),
               "sinkhorn": sinkhorn(samples, test), "sinkhorn_data_floor": sinkhorn(reference, test),
               "final": {k: v[-1] for k, v in model.history_.items()}}
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    save_checkpoint(run_dir / "ebm.safetensors", {"energy": dict(model.energy_.state_dict())},
                    {"dim": model.dim, "hidden": model.hidden, "config": cfg})
    model.sampler_.save(run_dir)
    if train.shape[1] == 2:
        bounds = toy_bounds(name) if name in toy_names() else None
        if bounds is None:
            lo, hi = test.min(0).values, test.max(0).values
            bounds = ((float(lo[0]) - 1, float(hi[0]) + 1), (float(lo[1]) - 1, float(hi[1]) + 1))
        title = f"{name}: DiffEBM, {steps} iterations"
        plot_samples(test, samples, run_dir / "samples.png", bounds, title=title + " (sampler draws)")
        res = int(cfg.get("resolution", 200))
        plot_energy(model.energy_, test, run_dir / "energy.png", bounds, resolution=res, title=title)
        if name in toy_density_names():
            from ..data import toy_density

            plot_energy(toy_density(name), test, run_dir / "energy_true.png", bounds, resolution=res,
                        title=f"{name}: true density")
        plot_loss(list(range(1, steps + 1)), model.history_["ebm_loss"], run_dir / "loss.png", title="DiffEBM EBM loss")
    return run_dir, metrics
