r"""Denoising score matching (Vincent 2011), single and multiple noise levels (Song & Ermon 2019)."""
from __future__ import annotations

import math
from numbers import Integral
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .._core.errors import ConfigError
from .._core.random import randn_like
from .._core.validation import check_int, check_positive
from .base import OBJECTIVES, LossOutput, Objective
from .autograd import differentiable_input, energy_and_grad_graph

DEFAULT_SIGMA = 0.1


def geometric_sigmas(sigma_max: float, sigma_min: float, n: int) -> List[float]:
    r"""n noise levels in geometric progression from ``sigma_max`` down to ``sigma_min``.

    :math:`\sigma_i = \sigma_{max} (\sigma_{min}/\sigma_{max})^{i/(n-1)}`, i = 0..n-1
    (Song & Ermon 2019, "Generative modeling by estimating gradients of the data distribution").
    """
    hi = check_positive("sigma_max", sigma_max)
    lo = check_positive("sigma_min", sigma_min)
    n = check_int("number of noise levels n", n, minimum=2)
    if not hi > lo:
        raise ConfigError(f"sigma_max must be > sigma_min for geometric noise levels, got {hi!r} <= {lo!r}")
    ratio = math.log(lo / hi) / (n - 1)
    return [hi * math.exp(i * ratio) for i in range(n)]


def parse_sigmas(sigmas: Any) -> Tuple[float, ...]:
    """Turn the ``sigmas`` option of :class:`DenoisingScoreMatching` into a tuple of levels.

    Accepted forms: a **tuple** ``(sigma_max, sigma_min, n)`` whose last entry is a Python int
    (geometric levels, see :func:`geometric_sigmas`); a mapping ``{"max": .., "min": .., "n": ..}``
    (the same, convenient in YAML); any other list/tuple: the noise levels themselves, each > 0.
    """
    if isinstance(sigmas, dict):
        unknown = set(sigmas) - {"max", "min", "n"}
        if unknown or len(sigmas) != 3:
            raise ConfigError(f"sigmas as a mapping needs exactly the keys max, min, n; got {sorted(sigmas)}")
        return tuple(geometric_sigmas(sigmas["max"], sigmas["min"], sigmas["n"]))
    if (
        isinstance(sigmas, tuple) and len(sigmas) == 3
        and isinstance(sigmas[2], Integral) and not isinstance(sigmas[2], bool)
    ):
        return tuple(geometric_sigmas(*sigmas))
    if isinstance(sigmas, torch.Tensor):
        sigmas = sigmas.reshape(-1).tolist()
    if not isinstance(sigmas, (list, tuple)) or len(sigmas) == 0:
        raise ConfigError(
            "sigmas must be a non-empty list of noise levels, a tuple (sigma_max, sigma_min, n) "
            f"or a mapping with keys max, min, n; got {sigmas!r}"
        )
    return tuple(check_positive("each noise level in sigmas", s) for s in sigmas)


def is_noise_conditional(energy) -> bool:
    """True if ``energy`` declares ``noise_conditional = True``, i.e. takes ``forward(x, sigma)``
    with ``sigma`` a float or ``Tensor[batch]`` (see :class:`ebmlab.energies.NoiseConditionalMLPEnergy`)."""
    return bool(getattr(energy, "noise_conditional", False))


@OBJECTIVES.register("dsm")
class DenoisingScoreMatching(Objective):
    r"""Denoising score matching (Vincent 2011, "A connection between score matching and denoising
    autoencoders", Neural Computation 23) and its multi-level form (Song & Ermon 2019, NeurIPS).

    **Single level** (``sigma``): perturb :math:`\tilde x = x + \sigma\varepsilon`,
    :math:`\varepsilon\sim\mathcal N(0, I)`, and regress the model score on the score of the
    perturbation kernel, :math:`\nabla_{\tilde x}\log q_\sigma(\tilde x|x) = -(\tilde x - x)/\sigma^2`:

    .. math::

        J(\theta) = E_{x,\tilde x}\ \tfrac12\Big\|\nabla U_\theta(\tilde x) - \frac{\tilde x - x}{\sigma^2}\Big\|^2
                  = E\ \tfrac12\Big\|\nabla U_\theta(\tilde x) - \frac{\varepsilon}{\sigma}\Big\|^2 .

    It equals, up to a constant, the Fisher divergence to the **σ-smoothed** data
    :math:`q_\sigma = p_{data} * \mathcal N(0,\sigma^2 I)`: the optimum is
    :math:`U^\ast = -\log q_\sigma + c`, not the data energy.  For Gaussian data with covariance
    C the optimal Gaussian has covariance :math:`C + \sigma^2 I`.

    **Several levels** (``sigmas``): each row draws a level :math:`\sigma_k` uniformly from the
    list (as in the NCSN reference code) and the loss is weighted by :math:`\lambda(\sigma)=\sigma^2`:

    .. math::

        J(\theta) = \frac1L\sum_{k=1}^L \sigma_k^2\, E\ \tfrac12\Big\|\nabla U_\theta(\tilde x,\sigma_k)
                     - \frac{\varepsilon}{\sigma_k}\Big\|^2
                  = \frac1L\sum_k E\ \tfrac12\big\|\sigma_k\nabla U_\theta(\tilde x,\sigma_k) - \varepsilon\big\|^2 .

    *Noise-conditional energy* (one declaring ``noise_conditional = True``, called as
    ``energy(x_tilde, sigma_rows)``): level k learns :math:`-\log q_{\sigma_k}` (+ a constant per
    level).  *Shared energy* (any other energy, called as ``energy(x_tilde)``): the pointwise
    minimiser of :math:`\sum_k \sigma_k^2 q_{\sigma_k}(\tilde x)\|\nabla U - \nabla\log q_{\sigma_k}\|^2`
    is :math:`\nabla U = -\nabla \log \sum_k \sigma_k^2 q_{\sigma_k}`, i.e. a single energy learns
    the **mixture of smoothings** :math:`\bar q \propto \sum_k \sigma_k^2 q_{\sigma_k}` (heavier tails
    than the data, dominated by the largest levels).

    Parameters
    ----------
    sigma : float, optional
        Noise level of the single-level loss (default 0.1).  Not allowed together with ``sigmas``.
    sigmas : list of float, tuple (sigma_max, sigma_min, n) or mapping {max, min, n}, optional
        Noise levels of the multi-level loss; a tuple whose last entry is an int means geometric
        levels (see :func:`parse_sigmas`).

    Notes
    -----
    Draw order from ``generator`` (see :meth:`perturb`): the level of each row (multi-level
    only), then the noise.  Stats: ``score_sq`` (mean ‖∇U(x̃)‖²), ``sigma_mean``.
    """

    name = "dsm"
    continuous = True

    def __init__(self, sigma: Optional[float] = None, sigmas: Optional[Sequence[float]] = None):
        if sigma is not None and sigmas is not None:
            raise ConfigError(f"give either sigma or sigmas, not both (got sigma={sigma!r}, sigmas={sigmas!r})")
        if sigmas is None:
            self.sigma: Optional[float] = check_positive("sigma", DEFAULT_SIGMA if sigma is None else sigma)
            self.sigmas: Optional[Tuple[float, ...]] = None
        else:
            self.sigma = None
            self.sigmas = parse_sigmas(sigmas)

    def perturb(
        self, batch: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Draw :math:`(\tilde x, \varepsilon, \sigma_{rows})` with :math:`\tilde x = x + \sigma_{rows}\varepsilon`.

        ``sigma_rows`` is ``Tensor[batch]``: the constant σ, or the level drawn for each row.
        """
        b = batch.shape[0]
        if self.sigmas is None:
            sig = torch.full((b,), self.sigma, dtype=batch.dtype, device=batch.device)
        else:
            levels = torch.tensor(self.sigmas, dtype=batch.dtype, device=batch.device)
            idx = torch.randint(0, len(self.sigmas), (b,), generator=generator, device=batch.device)
            sig = levels[idx]
        eps = randn_like(batch, generator)
        x_tilde = batch + sig.reshape((b,) + (1,) * (batch.ndim - 1)) * eps
        return x_tilde, eps, sig

    def terms(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None,
              context: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Per-row ``loss`` (weighted as documented), ``score_sq`` = ‖∇U(x̃)‖² and ``sigma``. With ``context``
        (one row per data row), a conditional energy is called as ``energy(x̃, context=c)`` and only x is noised."""
        batch = differentiable_input(batch).detach()
        x_tilde, eps, sig = self.perturb(batch, generator)
        x_tilde = x_tilde.requires_grad_(True)
        args = (sig,) if is_noise_conditional(energy) else ()
        fn = energy if context is None else (lambda z, *a: energy(z, *a, context=context))
        _, g = energy_and_grad_graph(fn, x_tilde, *args)
        b = batch.shape[0]
        g = g.reshape(b, -1)
        eps = eps.reshape(b, -1)
        if self.sigmas is None:   # ½‖∇U − ε/σ‖²
            rows = 0.5 * (g - eps / self.sigma).pow(2).sum(-1)
        else:                     # σ²·½‖∇U − ε/σ‖² = ½‖σ∇U − ε‖²
            rows = 0.5 * (sig[:, None] * g - eps).pow(2).sum(-1)
        return {"loss": rows, "score_sq": g.pow(2).sum(-1), "sigma": sig}

    def per_sample(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None,
                   context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The loss of each row: Tensor[batch]."""
        return self.terms(energy, batch, generator, context=context)["loss"]

    def __call__(self, energy, batch: torch.Tensor, generator: Optional[torch.Generator] = None,
                 context: Optional[torch.Tensor] = None) -> LossOutput:
        t = self.terms(energy, batch, generator, context=context)
        stats = {
            "score_sq": float(t["score_sq"].detach().mean()),
            "sigma_mean": float(t["sigma"].mean()),
        }
        return LossOutput(t["loss"].mean(), stats)
