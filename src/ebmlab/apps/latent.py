r"""A latent-space EBM: a variational autoencoder whose latent prior is tilted by an energy trained with energy
discrepancy.

Images are hard to model with an EBM directly (they lie near a low-dimensional manifold, where energy discrepancy's
Gaussian perturbation sees mostly empty space; Schröder et al. 2023, "Energy Discrepancies: A Score-Independent Loss
for Energy-Based Models", NeurIPS, Sec. 6, who therefore train the EBM as the prior of a decoder model, after Pang
et al. 2020, "Learning latent space energy-based prior model").  Here, in two stages:

1. a VAE (Kingma & Welling 2014): encoder q(z | x) = N(μ(x), diag σ²(x)), decoder x̂ = g(z) ∈ [0,1]^d, trained by the
   negative ELBO  Σ_pixels BCE(g(z), x) + KL(q(z|x) ‖ N(0, I)),  z = μ + σ ε, through :func:`ebmlab.fit`;
2. an exponentially tilted prior p(z) ∝ exp(-f(z)) N(z; 0, I), i.e. the energy U(z) = ½‖z‖² + f(z) with an MLP f,
   trained by energy discrepancy (:class:`~ebmlab.objectives.EnergyDiscrepancy`, Gaussian perturbation) on latent
   codes z ~ q(z | x) of the training images — the prior that matches the aggregate posterior the decoder was trained
   on, where N(0, I) alone leaves "holes" that decode to non-digits.

Sampling: MALA chains on U(z) through :func:`ebmlab.samplers.sample` from N(0, I), then decoding.
``sample_prior`` decodes z ~ N(0, I), the latent prior alone, for comparison.
"""
from __future__ import annotations

import sys

import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from .._core.errors import ConfigError, DataError
from .._core.params import ParamsMixin
from .._core.random import fresh_seed, init_parameters_
from .._core.validation import check_int, check_positive
from ..energies.base import Energy
from ..energies.mlp import mlp
from ..objectives.base import LossOutput, Objective

MODEL_FILE = "model.safetensors"


class VAE(nn.Module):
    """Fully connected VAE for images [n, C, H, W] in [0, 1]: d → hidden → hidden → (μ, log σ²) ∈ ℝ^{2k};
    k → hidden → hidden → d with a sigmoid output."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int = 8, hidden: int = 256):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        d = math.prod(self.image_shape)
        self.latent_dim = check_int("latent_dim", latent_dim)
        h = check_int("hidden", hidden)
        self.encoder = nn.Sequential(nn.Linear(d, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 2 * self.latent_dim))
        self.decoder = nn.Sequential(nn.Linear(self.latent_dim, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, d))

    def encode(self, x: torch.Tensor):
        """(μ, log σ²) of q(z | x), each [n, k]."""
        mu, logvar = self.encoder(x.reshape(x.shape[0], -1)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).reshape(z.shape[0], *self.image_shape)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """g(z) ∈ [0, 1], [n, C, H, W]."""
        return torch.sigmoid(self.decode_logits(z))


class ELBOLoss(Objective):
    """Negative ELBO per image: Σ_pixels BCE(g(z), x) + β KL(N(μ, σ²) ‖ N(0, I)), z = μ + σ ε (one draw);
    β = ``kl_weight`` (1: the ELBO; β < 1 trades a looser fit of the N(0, I) prior for sharper reconstructions,
    Higgins et al. 2017)."""

    name = "elbo"

    def __init__(self, image_shape: Sequence[int], kl_weight: float = 1.0):
        self.image_shape = tuple(int(s) for s in image_shape)
        self.kl_weight = check_positive("kl_weight", kl_weight)

    def __call__(self, vae: VAE, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> LossOutput:
        x = batch.reshape(batch.shape[0], *self.image_shape)
        mu, logvar = vae.encode(x)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        rec = nn.functional.binary_cross_entropy_with_logits(vae.decode_logits(z), x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        loss = (rec + self.kl_weight * kl).mean()
        return LossOutput(loss, {"reconstruction": float(rec.detach().mean()), "kl": float(kl.detach().mean())})


class TiltedGaussianEnergy(Energy):
    """U(z) = ½‖z‖² + f(z): the prior N(0, I) tilted by exp(-f(z)), f an MLP (Pang et al. 2020)."""

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.f = mlp(dim, hidden, "silu")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 0.5 * z.pow(2).sum(1) + self.f(z).squeeze(-1)


class LatentEBM(ParamsMixin):
    """VAE + energy-discrepancy-trained latent prior (module docstring), scikit-learn style.

    Parameters
    ----------
    latent_dim, hidden : VAE sizes (default 8, 256).
    kl_weight : β of the VAE loss (:class:`ELBOLoss`).
    vae_steps, ebm_steps : training iterations of the two stages (default 3000, 2000).
    batch_size, lr : for both stages (default 128, 1e-3).
    energy_hidden : widths of the MLP f (default (128, 128)).
    ed_m, ed_w, ed_t : energy discrepancy's M, w and Gaussian perturbation variance t (default 16, 1, 0.1; ``None``:
        t from the codes, ≈ 1 here, which was measured to give samples no better than the prior alone).
    sample_steps : MALA steps of :meth:`sample` (the step size is adapted during the first half).
    device : str
    random_state : int or None
    """

    def __init__(self, *, latent_dim: int = 8, hidden: int = 256, kl_weight: float = 1.0, vae_steps: int = 3000, ebm_steps: int = 2000,
                 batch_size: int = 128, lr: float = 1e-3, energy_hidden: Sequence[int] = (128, 128), ed_m: int = 16,
                 ed_w: float = 1.0, ed_t: Optional[float] = 0.1, sample_steps: int = 400, device: str = "cpu",
                 random_state: Optional[int] = None):
        self.latent_dim, self.hidden, self.vae_steps, self.ebm_steps = latent_dim, hidden, vae_steps, ebm_steps
        self.kl_weight = kl_weight
        self.batch_size, self.lr, self.energy_hidden = batch_size, lr, energy_hidden
        self.ed_m, self.ed_w, self.ed_t, self.sample_steps = ed_m, ed_w, ed_t, sample_steps
        self.device, self.random_state = device, random_state

    def _build(self, image_shape, seed: int):
        with torch.random.fork_rng(devices=[]):
            vae = VAE(image_shape, self.latent_dim, self.hidden)
            energy = TiltedGaussianEnergy(self.latent_dim, tuple(self.energy_hidden))
        init_parameters_(vae, torch.Generator().manual_seed(seed))
        init_parameters_(energy, torch.Generator().manual_seed(seed + 1))
        return vae, energy

    def fit(self, X, y=None, *, progress: bool = False) -> "LatentEBM":
        """Train the VAE on images ``X`` [n, C, H, W] in [0, 1], then the latent energy (``y`` is ignored)."""
        from ..train.fit import fit as train_fit, resolve_device

        x = torch.as_tensor(X).float()
        if x.ndim != 4 or x.shape[0] < 2:
            raise DataError(f"X must be images [n, channels, height, width] with n >= 2, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
            raise DataError("X must be finite with pixel values in [0, 1] (the decoder is Bernoulli)")
        for name in ("vae_steps", "ebm_steps", "batch_size", "sample_steps", "ed_m"):
            check_int(name, getattr(self, name))
        check_positive("lr", self.lr)
        seed = fresh_seed() if self.random_state is None else check_int("random_state", self.random_state, minimum=0)
        dev = resolve_device(self.device)
        image_shape = tuple(int(s) for s in x.shape[1:])
        vae, energy = self._build(image_shape, seed)
        self.vae_history_ = train_fit(vae, x.reshape(x.shape[0], -1), ELBOLoss(image_shape, self.kl_weight), steps=self.vae_steps,
                                      batch_size=self.batch_size, lr=self.lr, seed=seed, device=dev, progress=progress)
        vae.eval()
        self.vae_, self.image_shape_, self.seed_ = vae, image_shape, seed
        with torch.no_grad():
            mu, logvar = vae.encode(x.to(dev))
            g = torch.Generator(device=dev).manual_seed(seed + 2)
            codes = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, device=dev)
        self.codes_ = codes.detach().cpu()
        return self._fit_energy(energy, progress)

    def _fit_energy(self, energy, progress: bool = False) -> "LatentEBM":
        from ..objectives.energy_discrepancy import EnergyDiscrepancy
        from ..train.fit import fit as train_fit

        kwargs = {} if self.ed_t is None else {"t": check_positive("ed_t", self.ed_t)}
        objective = EnergyDiscrepancy("gaussian", m=self.ed_m, w=self.ed_w, **kwargs)
        p = next(self.vae_.parameters())
        self.ebm_history_ = train_fit(energy, self.codes_.to(p.device), objective, steps=self.ebm_steps,
                                      batch_size=self.batch_size, lr=self.lr, seed=self.seed_ + 3, device=p.device,
                                      progress=progress)
        energy.eval()
        self.energy_ = energy
        return self

    def _check_fitted(self):
        if not hasattr(self, "energy_"):
            raise ConfigError("this LatentEBM is not fitted: call fit(X) or LatentEBM.load(path) first")

    def sample_latent(self, n_samples: int, *, random_state: Optional[int] = None, steps: Optional[int] = None):
        """z ~ p(z) ∝ exp(-U(z)) by MALA from N(0, I): ``steps // 2`` burn-in steps with step-size adaptation, then
        ``steps - steps // 2``; the last state of each chain.  Returns (Tensor[n, k], SampleInfo)."""
        from ..samplers import MALA, sample

        self._check_fitted()
        n = check_int("n_samples", n_samples)
        steps = check_int("steps", steps if steps is not None else self.sample_steps, minimum=2)
        seed = fresh_seed() if random_state is None else check_int("random_state", random_state, minimum=0)
        p = next(self.energy_.parameters())
        g = torch.Generator(device=p.device).manual_seed(seed)
        z0 = torch.randn((n, self.latent_dim), generator=g, device=p.device, dtype=p.dtype)
        z, info = sample(self.energy_, MALA(step_size=0.1), z0, steps - steps // 2, burn_in=steps // 2,
                         keep="last", adapt="per_chain", generator=g)
        return z, info

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        return self.vae_.decode(z.to(next(self.vae_.parameters()))).cpu()

    def sample(self, n_samples: int, *, random_state: Optional[int] = None, steps: Optional[int] = None) -> torch.Tensor:
        """Decoded samples g(z), z from the latent EBM: Tensor[n, C, H, W] in [0, 1]."""
        z, info = self.sample_latent(n_samples, random_state=random_state, steps=steps)
        self.last_sample_info_ = info
        return self.decode(z)

    def sample_prior(self, n_samples: int, *, random_state: Optional[int] = None) -> torch.Tensor:
        """Decoded samples of the latent prior alone, g(z) with z ~ N(0, I)."""
        self._check_fitted()
        n = check_int("n_samples", n_samples)
        seed = fresh_seed() if random_state is None else check_int("random_state", random_state, minimum=0)
        g = torch.Generator().manual_seed(seed)
        return self.decode(torch.randn((n, self.latent_dim), generator=g))

    def reconstruct(self, X) -> torch.Tensor:
        """g(μ(x)): the VAE's reconstruction of images ``X``."""
        self._check_fitted()
        x = torch.as_tensor(X).float().to(next(self.vae_.parameters()))
        with torch.no_grad():
            return self.vae_.decode(self.vae_.encode(x)[0]).cpu()

    def save(self, path) -> Path:
        """Write ``path/model.safetensors`` (VAE and energy weights, JSON configuration)."""
        from ..train.checkpoint import save_checkpoint

        self._check_fitted()
        path = Path(path)
        params = self.get_params()
        params["energy_hidden"] = list(params["energy_hidden"])
        save_checkpoint(path / MODEL_FILE, {"vae": dict(self.vae_.state_dict()), "energy": dict(self.energy_.state_dict())},
                        {"latent_ebm": params, "image_shape": list(self.image_shape_), "seed": self.seed_})
        return path

    @classmethod
    def load(cls, path) -> "LatentEBM":
        from ..train.checkpoint import load_model_file

        file, groups, meta = load_model_file(path, MODEL_FILE, "latent_ebm", "LatentEBM")
        model = cls(**meta["latent_ebm"])
        vae, energy = model._build(meta["image_shape"], 0)
        vae.load_state_dict(groups["vae"])
        energy.load_state_dict(groups["energy"])
        vae.eval()
        energy.eval()
        model.vae_, model.energy_, model.image_shape_, model.seed_ = vae, energy, tuple(meta["image_shape"]), meta.get("seed")
        return model


#: ``model_params`` accepted by ``ebmlab train --model latent_ebm`` (LatentEBM parameters not set by top-level keys).
TRAIN_MODEL_PARAMS = ("latent_dim", "hidden", "kl_weight", "vae_steps", "energy_hidden", "ed_m", "ed_w", "ed_t", "sample_steps")


def train_run(cfg: Dict[str, Any], out=None, resume: bool = False):
    """``ebmlab train --model latent_ebm``: fit a :class:`LatentEBM` on an image set and write a run directory
    (``model.safetensors``, ``metrics.json``, ``samples.png``: decoded latent-EBM samples beside decoded samples of
    N(0, I), ``reconstructions.png``).

    Keys read: ``data`` (``digits`` (also for the default 2-D set name) or ``mnist``), ``steps`` (the EBM's
    energy-discrepancy iterations), ``batch_size``, ``lr``, ``seed``, ``n_samples`` (decoded samples drawn, at most
    5000), ``progress``, ``name``, ``device`` and ``model_params`` (:data:`TRAIN_MODEL_PARAMS`).
    """
    import json

    from ..cli import DEFAULTS
    from ..data import IMAGE_SETS, load_images
    from ..run import new_run_dir, reject_unused_keys
    from .figures import image_grid

    used = {"model", "model_params", "data", "steps", "batch_size", "lr", "seed", "n_samples", "progress", "name",
            "device"}
    reject_unused_keys(cfg, "latent_ebm", used)
    if resume:
        raise ConfigError("--model latent_ebm has no --resume (its two training stages are short); start a new run")
    params = dict(cfg.get("model_params") or {})
    bad = sorted(set(params) - set(TRAIN_MODEL_PARAMS))
    if bad:
        raise ConfigError(f"--model latent_ebm has no model_params {bad}; allowed: {', '.join(TRAIN_MODEL_PARAMS)}")
    data = cfg["data"]
    if data == DEFAULTS["data"]:
        data = "digits"
        print("note: --model latent_ebm trains on an image set; using --data digits (or pass --data mnist)",
              file=sys.stderr)
    if data not in IMAGE_SETS:
        raise ConfigError(f"--model latent_ebm trains on an image set ({', '.join(IMAGE_SETS)}), got data={data!r}")
    n_samples = check_int("n_samples", cfg["n_samples"], maximum=5000)
    x, _ = load_images(data, "train")
    xt, _ = load_images(data, "test")
    model = LatentEBM(ebm_steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"], random_state=cfg["seed"],
                      device=cfg["device"], **params)
    run_dir = new_run_dir(cfg, out, resume, f"latent_ebm-{data}")
    model.fit(x, progress=bool(cfg["progress"]))
    model.save(run_dir)
    ebm = model.sample(n_samples, random_state=int(cfg["seed"]) + 1)
    base = model.sample_prior(n_samples, random_state=int(cfg["seed"]) + 1)
    rec = model.reconstruct(xt)
    metrics = {"data": data, "vae_negative_elbo": model.vae_history_.loss[-1], "ed_loss": model.ebm_history_.loss[-1],
               "test_reconstruction_mse": float((rec - xt).pow(2).mean()),
               "mala_acceptance": model.last_sample_info_.acceptance_rate, "n_samples": n_samples}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    image_grid({"latent EBM samples (decoded)": ebm[:100], "latent prior N(0, I) (decoded)": base[:100]},
               run_dir / "samples.png")
    image_grid({"test images": xt[:50], "VAE reconstructions": rec[:50]}, run_dir / "reconstructions.png")
    return run_dir, metrics
