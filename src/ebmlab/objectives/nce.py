"""Noise-contrastive estimation (Gutmann & Hyvärinen, JMLR 2012).

NCE turns density estimation into logistic regression: tell data x ~ p_data from noise y ~ q
(ν = T_n / T_d noise points per data point) with the classifier h(u) = σ(G(u)) on the log-ratio

    G(u) = log p_θ(u) - log(ν q(u)) = -U(u) - c - log ν - log q(u),

where c is a learnable log-normaliser (so that log p_θ = -U - c is a normalised model at the optimum).
The objective (Gutmann & Hyvärinen 2012, eq. 8, divided by T_d and negated) is

    J(θ, c) = -(1/T_d) [ Σ_t log σ(G(x_t)) + Σ_t log σ(-G(y_t)) ],

consistent for θ and for c = log Z_θ as T_d → ∞, whatever ν > 0, provided q > 0 wherever p_data > 0.
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, Optional, Union

import torch
import torch.nn.functional as F

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int, check_positive
from .base import OBJECTIVES, LossOutput, Objective


class FittedGaussianNoise:
    r"""Gaussian noise q = N(μ, Σ) with full covariance, fitted to data (NCE's default noise).

    μ and Σ are the sample mean and (unbiased) covariance of the flattened rows, Σ inflated by
    ``scale``² and regularised by ``jitter``·tr(Σ)/d·I.  ``sample(n, generator)`` draws μ + L ξ with
    Σ = L Lᵀ; ``log_prob(x) = -½|L⁻¹(x-μ)|² - Σ log L_ii - (d/2) log 2π``.

    Parameters
    ----------
    scale : float
        Standard-deviation inflation (default 1.0: the data's own covariance).
    jitter : float
        Relative ridge added to Σ (default 1e-6).
    """

    def __init__(self, scale: float = 1.0, jitter: float = 1e-6):
        self.scale = check_positive("noise scale", scale)
        self.jitter = check_positive("noise jitter", jitter, allow_zero=True)
        self.mean: Optional[torch.Tensor] = None
        self.chol: Optional[torch.Tensor] = None
        self._event_shape: Optional[torch.Size] = None

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    def fit(self, data: torch.Tensor) -> "FittedGaussianNoise":
        """Set μ, Σ from ``data`` (rows = samples; any event shape, flattened)."""
        if data.shape[0] < 2:
            raise DataError(f"NCE noise needs at least 2 rows to fit a Gaussian, got shape {tuple(data.shape)}")
        flat = data.detach().reshape(data.shape[0], -1).double()
        d = flat.shape[1]
        mean = flat.mean(0)
        cov = torch.cov(flat.T).reshape(d, d) * self.scale**2
        ridge = self.jitter * float(torch.diagonal(cov).mean().clamp_min(1e-12))
        cov = cov + ridge * torch.eye(d, dtype=cov.dtype, device=cov.device)
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:
            raise DataError("NCE noise: the data covariance is not positive definite; increase the noise jitter")
        self.mean, self.chol = mean, chol
        self._event_shape = data.shape[1:]
        return self

    def _require(self) -> None:
        if not self.fitted:
            raise ConfigError("the NCE noise is not fitted yet; call fit(data) (NCE does it in prepare/first batch)")

    def sample(self, n: int, generator: Optional[torch.Generator] = None, like: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Draw ``n`` rows μ + L ξ in the dtype/device of ``like`` (default float64, CPU)."""
        self._require()
        dtype = like.dtype if like is not None else self.mean.dtype
        device = like.device if like is not None else self.mean.device
        d = self.mean.shape[0]
        xi = torch.randn((n, d), dtype=dtype, device=device, generator=generator)
        x = self.mean.to(dtype=dtype, device=device) + xi @ self.chol.to(dtype=dtype, device=device).T
        return x.reshape(n, *self._event_shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; μ, Σ), one value per row."""
        self._require()
        flat = x.reshape(x.shape[0], -1)
        mean = self.mean.to(flat)
        chol = self.chol.to(flat)
        z = torch.linalg.solve_triangular(chol, (flat - mean).T, upper=False).T
        d = flat.shape[1]
        return -0.5 * z.pow(2).sum(1) - torch.log(torch.diagonal(chol)).sum() - 0.5 * d * math.log(2 * math.pi)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        if not self.fitted:
            return {}
        return {"mean": self.mean.cpu(), "chol": self.chol.cpu(),
                "event_shape": torch.tensor(list(self._event_shape), dtype=torch.int64)}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self.mean, self.chol = state["mean"].clone(), state["chol"].clone()
        self._event_shape = torch.Size(int(s) for s in state["event_shape"].tolist())

    def __repr__(self) -> str:
        return f"FittedGaussianNoise(scale={self.scale}, jitter={self.jitter}, fitted={self.fitted})"


def _cycle(context: torch.Tensor, n: int) -> torch.Tensor:
    """Rows 0, 1, .., n-1 of ``context`` taken modulo its length."""
    return context[torch.arange(n, device=context.device) % context.shape[0]]


@OBJECTIVES.register("nce")
class NoiseContrastiveEstimation(Objective):
    r"""Noise-contrastive estimation with a learnable log-normaliser (Gutmann & Hyvärinen 2012).

    Each call draws T_n = round(ν·T_d) noise points for a batch of T_d data points and returns

    .. math::
        J = -\frac{1}{T_d}\Big[\sum_{t=1}^{T_d} \log\sigma(G(x_t)) + \sum_{t=1}^{T_n} \log\sigma(-G(y_t))\Big],
        \qquad G(u) = -U(u) - c - \log\nu - \log q(u),

    computed with ``logsigmoid`` (no overflow).  c is ``log_z`` (a learnable scalar, exposed by
    :meth:`parameters` and saved by :meth:`state_dict`); at the optimum c = log Z_θ, reported as
    the ``log_z`` stat.

    Parameters
    ----------
    noise : object, optional
        Any object with ``sample(n, generator)`` and ``log_prob(x)`` (e.g.
        :class:`ebmlab.energies.analytic.Gaussian`, a Bernoulli noise for binary data).  Default
        (``None``): a full-covariance Gaussian fitted to the data (:class:`FittedGaussianNoise`):
        on the whole training set by :meth:`prepare` (which :func:`ebmlab.fit` calls) or
        :meth:`fit_noise`, otherwise lazily on the first batch seen.
    noise_ratio : float
        ν = T_n / T_d > 0 (default 1.0).
    learn_log_z : bool
        Learn c (default True).  With False, c stays at ``log_z_init`` and the energy must absorb
        the normaliser itself (e.g. through the last bias of a network).
    log_z_init : float or "auto"
        Initial value of c.  ``"auto"`` (default): at the first call, the importance-sampling estimate
        of log Z_θ of the energy as it then is, with the noise as proposal (:meth:`initialize_log_z`),

        .. math::
            c_0 = \log \frac1K \sum_{k=1}^K \exp\big(-U(y_k) - \log q(y_k)\big), \qquad y_k \sim q,

        so that training starts with a normalised model: c is learned with the energy's learning
        rate, and a c that starts n nats away from log Z_θ needs ~n / lr optimiser steps to get there
        (with c_0 = 0, a Gaussian model with log Z ≈ 2 was still 39 % off in its covariance after
        2,000 Adam steps at lr 1e-3).
    n_log_z_init : int
        K, the number of noise draws of that estimate (default 4096).
    """

    name = "nce"
    #: the default (fitted Gaussian) noise is continuous; a discrete noise object makes NCE work on {0,1} data
    continuous = True

    def __init__(self, noise=None, noise_ratio: float = 1.0, learn_log_z: bool = True,
                 log_z_init: Union[float, str] = "auto", n_log_z_init: int = 4096):
        if noise is not None and not (callable(getattr(noise, "sample", None)) and callable(getattr(noise, "log_prob", None))):
            raise ConfigError(f"noise must have sample(n, generator) and log_prob(x) methods, got {noise!r}")
        if not isinstance(learn_log_z, bool):
            raise ConfigError(f"learn_log_z must be True or False, got {learn_log_z!r}")
        self.noise = FittedGaussianNoise() if noise is None else noise
        self._fits_noise = noise is None
        self.noise_ratio = check_positive("noise_ratio", noise_ratio)
        self.learn_log_z = learn_log_z
        self.log_z_init = log_z_init
        self.n_log_z_init = check_int("n_log_z_init", n_log_z_init, minimum=1)
        if log_z_init == "auto":
            start = 0.0
        elif isinstance(log_z_init, bool) or not isinstance(log_z_init, (int, float)) or not math.isfinite(log_z_init):
            raise ConfigError(f"log_z_init must be a finite number or 'auto', got {log_z_init!r}")
        else:
            start = float(log_z_init)
        self.log_z = torch.nn.Parameter(torch.tensor(start), requires_grad=learn_log_z)
        #: True until c has been estimated by :meth:`initialize_log_z` (``log_z_init="auto"`` only)
        self.log_z_pending = log_z_init == "auto"

    def __repr__(self) -> str:
        return (f"NoiseContrastiveEstimation(noise={self.noise!r}, noise_ratio={self.noise_ratio}, "
                f"learn_log_z={self.learn_log_z}, log_z_init={self.log_z_init!r})")

    # -- noise -----------------------------------------------------------------------------------
    def fit_noise(self, data: torch.Tensor) -> None:
        """Fit the default Gaussian noise to ``data`` (no effect when a noise object was given)."""
        if self._fits_noise:
            self.noise.fit(data)

    def prepare(self, data: torch.Tensor) -> None:
        """Called by :func:`ebmlab.fit` with the whole training set: fits the default noise on it."""
        self.fit_noise(data)

    def _sample_noise(self, n: int, like: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        if self._fits_noise:
            return self.noise.sample(n, generator=generator, like=like)
        y = self.noise.sample(n, generator=generator)
        return y.to(dtype=like.dtype, device=like.device)

    @torch.no_grad()
    def initialize_log_z(self, energy, like: torch.Tensor, generator: Optional[torch.Generator] = None,
                         context: Optional[torch.Tensor] = None) -> float:
        """Set c to the importance-sampling estimate log (1/K) Σ_k exp(-U(y_k) - log q(y_k)), y_k ~ q, of
        log Z_θ for the current energy (K = ``n_log_z_init``; ``like``: a batch giving dtype and device; with
        ``context``, the draws take its rows in turn, so c starts at the mean log Z over the batch's contexts).
        Returns the estimate."""
        y = self._sample_noise(self.n_log_z_init, like, generator)
        u = energy(y) if context is None else energy(y, context=_cycle(context, y.shape[0]))
        log_w = -u - self.noise.log_prob(y).to(like.dtype)
        estimate = torch.logsumexp(log_w.double(), 0) - math.log(self.n_log_z_init)
        if not bool(torch.isfinite(estimate)):
            raise ConfigError(f"NCE: the importance-sampling estimate of log Z for log_z_init='auto' is {float(estimate)} "
                              f"(the energy is not finite at the noise draws); pass a number as log_z_init")
        self.log_z.data.fill_(float(estimate))
        self.log_z_pending = False
        return float(estimate)

    # -- objective ---------------------------------------------------------------------------------
    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return iter([self.log_z] if self.learn_log_z else [])

    def state_dict(self) -> Dict[str, torch.Tensor]:
        state = {"log_z": self.log_z.detach().cpu().clone()}
        if self._fits_noise:
            state.update({f"noise.{k}": v for k, v in self.noise.state_dict().items()})
        return state

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        unknown = set(state) - {"log_z", "noise.mean", "noise.chol", "noise.event_shape"}
        if unknown:
            raise ValueError(f"unexpected keys in an NCE state: {sorted(unknown)}")
        if "log_z" in state:
            with torch.no_grad():
                self.log_z.data = state["log_z"].to(self.log_z.device, self.log_z.dtype).clone()
            self.log_z_pending = False  # a resumed run continues from its own c
        noise_state = {k[len("noise."):]: v for k, v in state.items() if k.startswith("noise.")}
        if noise_state and self._fits_noise:
            self.noise.load_state_dict(noise_state)

    def to(self, device=None, dtype=None) -> "NoiseContrastiveEstimation":
        """Move (and optionally cast) the log-normaliser; the optimizer must be built afterwards."""
        self.log_z.data = self.log_z.data.to(device=device, dtype=dtype)
        return self

    def log_ratio(self, energy, x: torch.Tensor, ratio: Optional[float] = None,
                  context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """G(x) = -U(x) - c - log ν - log q(x) (ν = ``ratio``, default ``noise_ratio``; a conditional energy is
        called as ``energy(x, context=context)``)."""
        u = energy(x) if context is None else energy(x, context=context)
        log_q = self.noise.log_prob(x).to(u)
        nu = self.noise_ratio if ratio is None else ratio
        return -u - self.log_z.to(u) - math.log(nu) - log_q

    def __call__(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None,
                 context: Optional[torch.Tensor] = None) -> LossOutput:
        """``context`` (Tensor[T_d, ...], optional): one context row per data row for a conditional energy
        U(x | c); noise point t takes context row t mod T_d, so the classifier compares p(x | c) with q(x) at the
        same contexts (c stays one scalar; a θ-dependent log Z(c) is absorbed by U)."""
        n_data = batch.shape[0]
        if self._fits_noise and not self.noise.fitted:
            self.noise.fit(batch)
        if self.log_z_pending:
            self.initialize_log_z(energy, batch, generator, context=context)
        n_noise = max(1, int(round(self.noise_ratio * n_data)))
        y = self._sample_noise(n_noise, batch, generator).detach()
        nu = n_noise / n_data  # the ratio actually used in this batch (rounding)
        g_data = self.log_ratio(energy, batch, nu, context=context)
        g_noise = self.log_ratio(energy, y, nu, context=None if context is None else _cycle(context, n_noise))
        loss = -(F.logsigmoid(g_data).sum() + F.logsigmoid(-g_noise).sum()) / n_data
        with torch.no_grad():
            acc = (torch.cat([(g_data > 0), (g_noise <= 0)]).double().mean())
        stats = {"log_z": float(self.log_z.detach()), "accuracy": float(acc),
                 "log_ratio_data": float(g_data.detach().mean()), "log_ratio_noise": float(g_noise.detach().mean())}
        return LossOutput(loss, stats)
