"""A learnable Gaussian energy with an exact normaliser."""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
from torch import nn

from .._core.errors import ConfigError
from .._core.random import as_generator
from .._core.validation import check_int
from .._core.tensors import as_float_tensor
from .base import Energy
from .registry import ENERGIES


@ENERGIES.register("quadratic")
class Quadratic(Energy):
    r"""Learnable Gaussian energy :math:`U(x) = \tfrac12 (x-\mu)^\top P (x-\mu)`.

    The precision is parametrised by its log-Cholesky factor (Pinheiro & Bates 1996,
    "Unconstrained parametrizations for variance-covariance matrices"):

    .. math::

        P = L L^\top,\qquad L_{ii} = \exp(\ell_i),\qquad L_{ij} = a_{ij}\ (i > j),\qquad L_{ij} = 0\ (i < j),

    with unconstrained parameters :math:`\ell \in \mathbb R^d` (``log_diag``) and the strictly lower
    entries :math:`a \in \mathbb R^{d(d-1)/2}` (``lower``, row-major order of
    ``torch.tril_indices(d, d, -1)``).  Every finite parameter value gives a symmetric positive
    definite P, and the map (ℓ, a) -> P is a bijection onto the PD matrices, so no ``eps * I`` is
    added: a minimiser over P is a unique minimiser over the parameters.

    The normaliser is exact, :math:`\log Z = \tfrac d2 \log 2\pi - \sum_i \ell_i`
    (:math:`= \tfrac d2\log 2\pi - \tfrac12\log\det P`), so :meth:`log_prob` is the exact
    :math:`\log \mathcal N(x;\mu,P^{-1})`.

    Parameters
    ----------
    dim : int
        Dimension d (inputs of any event shape with d elements are flattened).
    mean : array-like of shape (d,), optional
        Initial mean μ.  Default: 0 until :meth:`prepare` sets it to the data's mean.
    precision : array-like of shape (d, d), optional
        Initial symmetric positive definite precision P.  Default: the identity until
        :meth:`prepare` sets it to the inverse of the data's covariance.
    dtype : torch.dtype, optional
        Dtype of the parameters (default torch's default dtype, float32).  The initial values are
        validated and factorised in float64 first, so ``dtype=torch.float64`` keeps them exact.

    Attributes
    ----------
    mean : nn.Parameter, shape (d,)
    log_diag : nn.Parameter, shape (d,)
        Logarithm of the diagonal of L.
    lower : nn.Parameter, shape (d(d-1)/2,)
        Strictly lower-triangular entries of L.

    Examples
    --------
    >>> q = Quadratic(2, mean=[1.0, 0.0], precision=[[2.0, 0.5], [0.5, 1.0]])
    >>> q.covariance()  # doctest: +SKIP

    Notes
    -----
    Starting point.  :class:`ebmlab.EnergyModel` calls :meth:`prepare` with the training data before
    training, which starts μ and P (those not given to the constructor) at the moment-matched Gaussian
    N(x̄, S), the maximum-likelihood fit.  For a Gaussian model this is also the minimiser of the
    population score-matching, denoising, energy-discrepancy and NCE losses when the data are Gaussian,
    so every consistent estimator starts at its answer up to O(n^{-1/2}); from the default start
    (μ = 0, P = I) first-order training on data far from the origin drifts instead into a flat valley
    (P → 0) and needs far more steps than the defaults give.
    """

    def __init__(
        self, dim: int, mean: Optional[Any] = None, precision: Optional[Any] = None,
        *, dtype: Optional[torch.dtype] = None,
    ):
        # validated and factorised in float64, then stored in ``dtype``
        super().__init__()
        d = check_int("dim", dim)
        self.dim = d
        mu = torch.zeros(d, dtype=torch.float64) if mean is None else as_float_tensor("mean", mean, dtype=torch.float64, shape=(d,))
        if precision is None:
            chol = torch.eye(d, dtype=torch.float64)
        else:
            p = as_float_tensor("precision", precision, dtype=torch.float64, shape=(d, d))
            scale = float(p.abs().max().clamp_min(1e-300))
            if not torch.allclose(p, p.T, rtol=1e-6, atol=1e-10 * scale):
                raise ConfigError("precision must be a symmetric matrix, got a non-symmetric one")
            chol, info = torch.linalg.cholesky_ex(0.5 * (p + p.T))
            if int(info) != 0:
                raise ConfigError("precision must be positive definite; its Cholesky factorisation failed")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ConfigError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        mu, chol = mu.to(dtype), chol.to(dtype)
        rows, cols = torch.tril_indices(d, d, offset=-1)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        self.mean = nn.Parameter(mu)
        self.log_diag = nn.Parameter(torch.log(torch.diagonal(chol)).clone())
        self.lower = nn.Parameter(chol[rows, cols].clone())
        #: which parameters :meth:`prepare` initialises from the data (those not given to the constructor)
        self.init_from_data = {"mean": mean is None, "precision": precision is None}

    @torch.no_grad()
    def prepare(self, data: torch.Tensor) -> None:
        r"""Start at the moment-matched Gaussian of ``data``: μ = x̄ and P = S⁻¹ with
        S = (1/n) Σ (x_i − x̄)(x_i − x̄)ᵀ (the maximum-likelihood estimate), for the parameters not
        given to the constructor (see :attr:`init_from_data`).  Computed in float64.

        A singular S (fewer rows than dimensions, or a constant direction) has no inverse: a ridge
        of 1e-6·tr(S)/d is added to it, with a warning.
        """
        if not (self.init_from_data["mean"] or self.init_from_data["precision"]):
            return
        flat = data.detach().reshape(data.shape[0], -1).to(torch.float64)
        if flat.shape[1] != self.dim:
            raise ConfigError(f"Quadratic(dim={self.dim}) got data with {flat.shape[1]} elements per row")
        if flat.shape[0] < 2:
            raise ConfigError(f"Quadratic.prepare needs at least 2 rows of data, got {flat.shape[0]}")
        mu = flat.mean(0)
        if self.init_from_data["mean"]:
            self.mean.copy_(mu.to(self.mean))
        if self.init_from_data["precision"]:
            c = flat - mu
            cov = c.T @ c / flat.shape[0]
            chol, info = torch.linalg.cholesky_ex(cov)
            if int(info) != 0:
                import warnings

                ridge = 1e-6 * float(torch.diagonal(cov).mean().clamp_min(1e-300))
                warnings.warn(f"Quadratic.prepare: the data covariance is singular ({flat.shape[0]} rows, "
                              f"{self.dim} dimensions); starting from S + {ridge:.3g}·I", stacklevel=2)
                chol = torch.linalg.cholesky(cov + ridge * torch.eye(self.dim, dtype=cov.dtype))
            # P = S⁻¹ = L_P L_Pᵀ with L_P the Cholesky factor of S⁻¹
            precision = torch.cholesky_inverse(chol)
            l_p = torch.linalg.cholesky(0.5 * (precision + precision.T))
            self.log_diag.copy_(torch.log(torch.diagonal(l_p)).to(self.log_diag))
            self.lower.copy_(l_p[self._rows, self._cols].to(self.lower))

    # -- matrices -------------------------------------------------------------------------------
    def cholesky(self) -> torch.Tensor:
        """The lower-triangular factor L with P = L Lᵀ (differentiable in the parameters)."""
        d = self.dim
        diag = torch.diag_embed(torch.exp(self.log_diag))
        strict = torch.zeros(d, d, dtype=self.lower.dtype, device=self.lower.device)
        strict = strict.index_put((self._rows, self._cols), self.lower)
        return diag + strict

    def precision(self) -> torch.Tensor:
        """The precision matrix P = L Lᵀ (symmetric positive definite)."""
        chol = self.cholesky()
        return chol @ chol.T

    def covariance(self) -> torch.Tensor:
        """The covariance P⁻¹, computed from the Cholesky factor."""
        return torch.cholesky_inverse(self.cholesky())

    # -- energy ---------------------------------------------------------------------------------
    def _centred(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.dim:
            raise ConfigError(f"Quadratic(dim={self.dim}) got inputs with {flat.shape[1]} elements per row")
        return flat - self.mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """U(x) = ½ ‖Lᵀ(x − μ)‖², one value per row."""
        z = self._centred(x) @ self.cholesky()
        return 0.5 * (z * z).sum(-1)

    def energy_and_grad(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Analytic (U(x), ∇U(x) = P(x − μ)), detached."""
        with torch.no_grad():
            c = self._centred(x)
            chol = self.cholesky()
            z = c @ chol
            u = 0.5 * (z * z).sum(-1)
            g = (z @ chol.T).reshape(x.shape)
        return u, g

    def log_normalizer(self) -> torch.Tensor:
        """log Z = (d/2) log 2π − Σ_i log L_ii."""
        return 0.5 * self.dim * math.log(2 * math.pi) - self.log_diag.sum()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log density log N(x; μ, P⁻¹) = −U(x) − log Z."""
        return -self(x) - self.log_normalizer()

    def sample(self, n: int, generator: Optional[torch.Generator] = None, *, seed: Optional[int] = None) -> torch.Tensor:
        """Exact samples x = μ + L⁻ᵀ ξ, ξ ~ N(0, I); returns Tensor[n, d] (no gradient)."""
        n = check_int("n", n)
        if seed is not None:
            if generator is not None:
                raise ConfigError("give either seed or generator, not both")
            generator = as_generator(seed)
        with torch.no_grad():
            chol = self.cholesky()
            xi = torch.randn(n, self.dim, dtype=chol.dtype, device=chol.device, generator=generator)
            z = torch.linalg.solve_triangular(chol.T, xi.T, upper=True).T
            return self.mean + z

    def config(self) -> dict:
        """Constructor options that rebuild this energy's architecture (saved with checkpoints)."""
        return {"dim": self.dim}

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
