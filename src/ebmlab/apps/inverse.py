r"""Linear inverse problems on images with an energy as the prior ("plug-in priors").

Observation model y = A x + σ ε, ε ~ N(0, I), with a linear operator A (:class:`Denoise`, :class:`Inpaint`,
:class:`Blur`).  With a prior p(x) ∝ exp(-U(x)) the posterior is p(x | y) ∝ exp(-U_post(x)),

    U_post(x) = ‖A x - y‖² / (2σ²) + w · U(x)                            (:class:`PosteriorEnergy`)

(w = ``prior_weight``; w = 1 is Bayes' rule, other values are chosen on a validation split).

- :func:`map_estimate`: x̂ = argmin_{x ∈ [0,1]^d} U_post(x) by projected gradient descent (Adam steps followed
  by clipping onto the pixel box, the step size annealed by a cosine schedule), for any energy — learned
  (:class:`~ebmlab.energies.ConvEnergy` trained by DSM or energy discrepancy), analytic, or :class:`TotalVariation`.
- :func:`posterior_sample`: Langevin / MALA chains on U_post through the chain runner :func:`ebmlab.samplers.sample`.
- Baselines: :func:`tikhonov`, the closed-form minimiser of ‖A x - y‖²/(2σ²) + (λ/2)‖x - m‖² (or of a general
  Gaussian prior ½ (x-m)ᵀ P (x-m), the Wiener / Gaussian-MAP estimate), the solution of the normal equations
  (AᵀA/σ² + λ I) x = Aᵀ y / σ² + λ m solved to machine precision by conjugate gradients; and total variation,
  :func:`map_estimate` with :class:`TotalVariation` (Rudin, Osher & Fatemi 1992).

Images are tensors [n, C, H, W]; each row is an independent problem.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int, check_positive, check_probability
from ..energies.base import Energy

__all__ = ["LinearOperator", "Denoise", "Inpaint", "Blur", "random_mask", "gaussian_kernel", "PosteriorEnergy",
           "TotalVariation", "map_estimate", "posterior_sample", "tikhonov", "psnr", "learn_prior"]


def _check_images(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise DataError(f"{name} must be a Tensor of images [n, channels, height, width], got "
                        f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not x.is_floating_point():
        raise DataError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{name} contains non-finite values")
    return x


class LinearOperator:
    """A linear forward model A on images: ``op(x)`` = A x and ``op.adjoint(y)`` = Aᵀ y (⟨A x, y⟩ = ⟨x, Aᵀ y⟩)."""

    name = "operator"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """AᵀA x."""
        return self.adjoint(self(x))


class Denoise(LinearOperator):
    """A = I: y = x + σ ε."""

    name = "denoise"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y


class Inpaint(LinearOperator):
    """A = diag(mask): observed pixels (mask 1) are kept, missing ones (mask 0) are set to 0.

    Parameters
    ----------
    mask : Tensor[C, H, W] or Tensor[n, C, H, W] of {0, 1}
        One mask for every image, or one per image.
    """

    name = "inpaint"

    def __init__(self, mask: torch.Tensor):
        if not isinstance(mask, torch.Tensor) or mask.ndim not in (3, 4):
            raise ConfigError(f"mask must be a Tensor [C, H, W] or [n, C, H, W], got "
                              f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ConfigError("mask must contain only 0 (missing) and 1 (observed)")
        self.mask = mask.float()

    def _m(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mask.to(device=x.device, dtype=x.dtype)
        if m.ndim == 4 and m.shape[0] != x.shape[0]:
            raise DataError(f"Inpaint holds {m.shape[0]} masks, got a batch of {x.shape[0]} images")
        if tuple(m.shape[-3:]) != tuple(x.shape[1:]):
            raise DataError(f"mask of shape {tuple(m.shape[-3:])} does not match images of shape {tuple(x.shape[1:])}")
        return m

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._m(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._m(y)


def random_mask(shape: Sequence[int], missing: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A {0,1} mask of ``shape`` in which each pixel is missing (0) independently with probability ``missing``."""
    missing = check_probability("missing", missing)
    return (torch.rand(tuple(shape), generator=generator) >= missing).float()


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """A normalised ``size``×``size`` Gaussian blur kernel exp(-(i² + j²) / (2 sigma²)) / Σ."""
    size = check_int("size", size)
    if size % 2 == 0:
        raise ConfigError(f"size must be odd (the kernel is centred), got {size}")
    sigma = check_positive("sigma", sigma)
    r = torch.arange(size, dtype=torch.float64) - size // 2
    k = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return (k / k.sum()).float()


class Blur(LinearOperator):
    """A x = k ⋆ x: 2-D convolution of every channel with ``kernel`` (odd size, zero padding, same output size);
    Aᵀ is the convolution with the flipped kernel (implemented as the transposed convolution).

    Parameters
    ----------
    kernel : Tensor[k, k]
        E.g. :func:`gaussian_kernel`.
    """

    name = "deblur"

    def __init__(self, kernel: torch.Tensor):
        if not isinstance(kernel, torch.Tensor) or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] \
                or kernel.shape[0] % 2 == 0:
            raise ConfigError(f"kernel must be a square Tensor [k, k] with k odd, got "
                              f"{tuple(kernel.shape) if isinstance(kernel, torch.Tensor) else type(kernel).__name__}")
        self.kernel = kernel.float()

    def _w(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return self.kernel.to(device=x.device, dtype=x.dtype)[None, None].expand(c, 1, -1, -1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel.shape[0] // 2
        return torch.nn.functional.conv2d(x, self._w(x), padding=p, groups=x.shape[1])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        p = self.kernel.shape[0] // 2
        return torch.nn.functional.conv_transpose2d(y, self._w(y), padding=p, groups=y.shape[1])


class PosteriorEnergy(Energy):
    """U_post(x) = ‖A x - y‖² / (2σ²) + w · U(x), one value per row (row i is the problem of observation y_i).

    Parameters
    ----------
    prior : Energy or None
        U; ``None`` is the flat prior (maximum likelihood).
    forward : LinearOperator
    y : Tensor[n, C, H, W]
        Observations; a batch evaluated must have the same n rows.
    noise_std : float
        σ > 0.
    prior_weight : float
        w >= 0.
    """

    def __init__(self, prior: Optional[torch.nn.Module], forward: LinearOperator, y: torch.Tensor, noise_std: float,
                 prior_weight: float = 1.0):
        super().__init__()
        self.prior = prior
        self.forward_op = forward
        self.register_buffer("y", y.detach())
        self.noise_std = check_positive("noise_std", noise_std)
        self.prior_weight = check_positive("prior_weight", prior_weight, allow_zero=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape != self.y.shape:
            raise DataError(f"PosteriorEnergy holds observations of shape {tuple(self.y.shape)}, got {tuple(x.shape)}")
        r = self.forward_op(x) - self.y
        u = r.pow(2).flatten(1).sum(1) / (2 * self.noise_std ** 2)
        if self.prior is not None and self.prior_weight > 0:
            u = u + self.prior_weight * self.prior(x)
        return u


class TotalVariation(Energy):
    """Isotropic total variation U(x) = weight · Σ_pixels sqrt((∂_h x)² + (∂_v x)² + eps²) (forward differences,
    zero at the last row / column; Rudin, Osher & Fatemi 1992), smoothed by ``eps`` so that it is differentiable.

    Parameters
    ----------
    weight : float
        λ >= 0.
    eps : float
        Smoothing (default 1e-3).
    """

    def __init__(self, weight: float = 1.0, eps: float = 1e-3):
        super().__init__()
        self.weight = check_positive("weight", weight, allow_zero=True)
        self.eps = check_positive("eps", eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dh = torch.nn.functional.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
        dv = torch.nn.functional.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
        return self.weight * torch.sqrt(dh ** 2 + dv ** 2 + self.eps ** 2).flatten(1).sum(1)


def _box(bounds):
    if bounds is None:
        return None
    try:
        lo, hi = float(bounds[0]), float(bounds[1])
    except (TypeError, ValueError, IndexError):
        raise ConfigError(f"bounds must be None or (low, high), got {bounds!r}") from None
    if not lo < hi:
        raise ConfigError(f"bounds must have low < high, got {bounds!r}")
    return lo, hi


def map_estimate(energy: Optional[torch.nn.Module], forward: LinearOperator, y: torch.Tensor, noise_std: float, *,
                 steps: int = 500, lr: float = 0.05, prior_weight: float = 1.0, x0: Optional[torch.Tensor] = None,
                 bounds=(0.0, 1.0)) -> torch.Tensor:
    r"""MAP estimate x̂ = argmin_{x ∈ box} ‖A x - y‖² / (2σ²) + w · U(x) for every row of ``y``.

    Projected gradient descent: ``steps`` Adam steps (Kingma & Ba 2015) on U_post (each row's objective is
    independent, and Adam's update is per coordinate, so the rows do not interact), learning rate annealed from
    ``lr`` to 0 by a cosine schedule, each step followed by clipping onto ``bounds`` (the pixel box [0, 1] by
    default; ``None`` for no constraint).  The loop is an optimiser, not a sampler: no chain runner is involved.

    Parameters
    ----------
    energy : Energy or None
        The prior U (``None``: flat prior).
    forward : LinearOperator
    y : Tensor[n, C, H, W]
    noise_std : float
        σ.
    steps : int
        Gradient steps (default 500).
    lr : float
        Initial Adam step (default 0.05, in pixel units).
    prior_weight : float
        w (default 1).
    x0 : Tensor, optional
        Start (default Aᵀ y clipped to the box).
    bounds : (low, high) or None

    Returns
    -------
    Tensor[n, C, H, W], detached.
    """
    y = _check_images(y, "y")
    steps = check_int("steps", steps)
    lr = check_positive("lr", lr)
    box = _box(bounds)
    post = PosteriorEnergy(energy, forward, y, noise_std, prior_weight)
    x = (forward.adjoint(y) if x0 is None else _check_images(x0, "x0")).detach().clone()
    if x.shape != y.shape:
        raise DataError(f"x0 must have the shape of y {tuple(y.shape)}, got {tuple(x.shape)}")
    if box is not None:
        x.clamp_(*box)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    requires = [p.requires_grad for p in post.parameters()]
    for p in post.parameters():
        p.requires_grad_(False)
    try:
        for t in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * t / steps))
            opt.zero_grad(set_to_none=True)
            u = post(x)
            if not bool(torch.isfinite(u).all()):
                raise DataError(f"map_estimate: the posterior energy became non-finite at step {t}; use a smaller lr "
                                f"or check the prior")
            u.sum().backward()
            opt.step()
            if box is not None:
                with torch.no_grad():
                    x.clamp_(*box)
    finally:
        for p, r in zip(post.parameters(), requires):
            p.requires_grad_(r)
    return x.detach()


def posterior_sample(energy: Optional[torch.nn.Module], forward: LinearOperator, y: torch.Tensor, noise_std: float, *,
                     n_samples: int = 8, sampler="mala", steps: int = 200, burn_in: int = 200,
                     prior_weight: float = 1.0, x0: Optional[torch.Tensor] = None,
                     generator: Optional[torch.Generator] = None, **sample_kwargs):
    r"""Draws from p(x | y) ∝ exp(-U_post(x)) by MCMC through :func:`ebmlab.samplers.sample`.

    ``n_samples`` independent chains per observation (n · n_samples chains in one batch, started at ``x0`` or at
    Aᵀ y clipped to [0, 1]), ``burn_in`` steps (with step-size adaptation for MALA / HMC, per chain) then
    ``steps`` steps; the last state of each chain is kept.  The chains are not confined to the pixel box.

    Returns
    -------
    x : Tensor[n_samples, n, C, H, W]
    info : SampleInfo
    """
    from ..samplers.driver import resolve_sampler, sample

    y = _check_images(y, "y")
    n_samples = check_int("n_samples", n_samples)
    n = y.shape[0]
    ys = y.repeat(n_samples, 1, 1, 1)
    op = forward
    if isinstance(forward, Inpaint) and forward.mask.ndim == 4:
        op = Inpaint(forward.mask.repeat(n_samples, 1, 1, 1))
    post = PosteriorEnergy(energy, op, ys, noise_std, prior_weight)
    start = forward.adjoint(y).clamp(0, 1) if x0 is None else _check_images(x0, "x0")
    start = start.repeat(n_samples, 1, 1, 1).detach()
    sampler = resolve_sampler(sampler)
    if burn_in > 0 and sampler.adaptive and "adapt" not in sample_kwargs and getattr(sampler, "per_chain_step_size", False):
        sample_kwargs["adapt"] = "per_chain"
    x, info = sample(post, sampler, start, steps, burn_in=burn_in, keep="last", generator=generator, **sample_kwargs)
    return x.reshape(n_samples, n, *y.shape[1:]), info


def _apply_precision(precision: Optional[torch.Tensor], lam: float, v: torch.Tensor) -> torch.Tensor:
    if precision is None:
        return lam * v
    flat = v.flatten(1)
    return (flat @ precision.to(flat).T).reshape(v.shape)


def tikhonov(forward: LinearOperator, y: torch.Tensor, noise_std: float, lam: float = 1.0, *,
             mean: Union[None, float, torch.Tensor] = None, precision: Optional[torch.Tensor] = None,
             tol: float = 1e-10, max_iter: Optional[int] = None) -> torch.Tensor:
    r"""Closed-form Tikhonov / Gaussian-MAP estimate (Tikhonov 1963; the Wiener filter for a Gaussian prior):

        x̂ = argmin_x ‖A x - y‖² / (2σ²) + ½ (x - m)ᵀ P (x - m) = (AᵀA/σ² + P)⁻¹ (Aᵀ y / σ² + P m),

    with P = λ I (default) or a given precision matrix P [d, d] (a Gaussian prior N(m, P⁻¹)), and m = ``mean``
    (0, a scalar, or an image [C, H, W]).  The normal equations are solved for every row by conjugate gradients
    (Hestenes & Stiefel 1952), which is exact after at most d iterations and stops when the residual norm falls
    below ``tol`` times that of the right-hand side.  Unconstrained (no pixel box).
    """
    y = _check_images(y, "y")
    sigma2 = check_positive("noise_std", noise_std) ** 2
    if precision is None:
        lam = check_positive("lam", lam)
    else:
        d = y[0].numel()
        if not isinstance(precision, torch.Tensor) or precision.shape != (d, d):
            raise ConfigError(f"precision must be a Tensor [{d}, {d}], got "
                              f"{tuple(precision.shape) if isinstance(precision, torch.Tensor) else type(precision).__name__}")
    m = torch.zeros_like(y[:1]) if mean is None else torch.as_tensor(mean, dtype=y.dtype, device=y.device).expand_as(y[:1])
    m = m.expand_as(y)

    def apply(v):
        return forward.normal(v) / sigma2 + _apply_precision(precision, lam, v)

    b = forward.adjoint(y) / sigma2 + _apply_precision(precision, lam, m)
    x = m.clone()
    r = b - apply(x)
    p = r.clone()
    rs = r.pow(2).flatten(1).sum(1)
    b_norm = b.pow(2).flatten(1).sum(1).sqrt().clamp_min(torch.finfo(y.dtype).tiny)
    max_iter = 2 * y[0].numel() if max_iter is None else check_int("max_iter", max_iter)
    shape = (-1,) + (1,) * (y.ndim - 1)
    tiny = torch.finfo(y.dtype).tiny
    for _ in range(max_iter):
        done = rs.sqrt() <= tol * b_norm
        if bool(done.all()):
            break
        ap = apply(p)
        alpha = torch.where(done, torch.zeros_like(rs), rs / p.mul(ap).flatten(1).sum(1).clamp_min(tiny))
        x = x + alpha.reshape(shape) * p
        r = r - alpha.reshape(shape) * ap
        rs_new = r.pow(2).flatten(1).sum(1)
        beta = torch.where(done, torch.zeros_like(rs), rs_new / rs.clamp_min(tiny))
        p = r + beta.reshape(shape) * p
        rs = torch.where(done, rs, rs_new)
    return x


def psnr(x: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, 10 log10(data_range² / mean((x - reference)²)) in dB."""
    mse = (x - reference).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def learn_prior(images: torch.Tensor, *, objective: str = "dsm", steps: int = 1500, sigma: float = 0.1,
                batch_size: int = 128, lr: float = 1e-3, channels: int = 32, hidden: int = 128, seed: int = 0,
                device: str = "cpu", progress: bool = False):
    """Train a :class:`~ebmlab.energies.ConvEnergy` prior on ``images`` [n, C, H, W] with :func:`ebmlab.fit`.

    ``objective="dsm"``: denoising score matching at noise level ``sigma`` (Vincent 2011; learns the σ-smoothed
    data density); ``"ed"``: energy discrepancy with a Gaussian perturbation of variance t = ``sigma``²
    (Schröder et al. 2023).  Returns the energy in eval mode with its parameters frozen, and the training History.
    """
    from .._core.random import init_parameters_
    from ..energies.conv import ConvEnergy
    from ..objectives import build as build_objective
    from ..train.fit import fit

    x = _check_images(images, "images")
    if objective not in ("dsm", "ed"):
        raise ConfigError(f"objective must be 'dsm' or 'ed', got {objective!r}")
    sigma = check_positive("sigma", sigma)
    obj = build_objective("dsm", sigma=sigma) if objective == "dsm" else build_objective("ed", t=sigma ** 2)
    with torch.random.fork_rng(devices=[]):
        energy = ConvEnergy(tuple(x.shape[1:]), channels=channels, hidden=hidden)
    init_parameters_(energy, torch.Generator().manual_seed(int(seed)))
    history = fit(energy, x, obj, steps=steps, batch_size=batch_size, lr=lr, seed=int(seed), device=device,
                  progress=progress)
    energy.eval()
    for p in energy.parameters():
        p.requires_grad_(False)
    return energy, history
