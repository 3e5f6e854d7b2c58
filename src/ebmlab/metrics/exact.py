"""Exact quantities of small discrete models by enumeration, and Kaufman's exact log Z.

Every function here enumerates all 2^n states of a discrete energy on {0,1}^n (see
:mod:`ebmlab.energies.binary` for the conventions) in chunks, in float64, and is exact up to
floating-point rounding.  Enumeration is allowed up to :data:`MAX_SITES` = 20 sites (about a
million states); above that a :class:`~ebmlab.ConfigError` says so and points to AIS / MCMC.

Enumeration order: state k has x_i = bit i of k (site 0 is the least significant bit).

The functions are differentiable with respect to the energy's parameters (the energy is
evaluated in float64 through ``torch.func.functional_call`` on float64 copies of its
parameters, which are differentiable casts), so the exact maximum-likelihood estimate of a
small model can be computed by minimising ``exact_log_z(energy) + mean U(data)``.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch
from torch.func import functional_call

from .._core.errors import ConfigError
from .._core.validation import check_choice, check_int, check_positive

__all__ = [
    "MAX_SITES",
    "enumerate_states",
    "exact_log_z",
    "exact_log_prob",
    "exact_expectation",
    "exact_marginals",
    "exact_moments",
    "ExactMoments",
    "kaufman_log_z",
]

#: Largest number of sites enumerated (2^20 states).
MAX_SITES = 20
_CHUNK = 1 << 15


def _n_sites(energy, n_sites: Optional[int]) -> int:
    if n_sites is None:
        n_sites = getattr(energy, "n_sites", None)
        if n_sites is None:
            n_sites = getattr(energy, "dim", None)
        if n_sites is None:
            raise ConfigError(
                f"cannot tell the number of sites of {type(energy).__name__}; pass n_sites=..."
            )
    n = check_int("n_sites", n_sites, minimum=1)
    if n > MAX_SITES:
        raise ConfigError(
            f"exact enumeration of n_sites={n} needs 2^{n} = {2 ** n:.3g} states, too many (at most "
            f"{MAX_SITES} sites); estimate log Z with annealed importance sampling (AIS) and moments with MCMC "
            f"(e.g. ebmlab.samplers.Gibbs)"
        )
    return n


def enumerate_states(n: int, *, start: int = 0, stop: Optional[int] = None, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """All states of {0,1}^n (or those with index in [start, stop)), shape [2^n, n].

    State k has x_i = (k >> i) & 1.  ``n`` is limited to :data:`MAX_SITES`.
    """
    n = _n_sites(None, n)
    stop = 1 << n if stop is None else stop
    k = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = torch.arange(n, device=device, dtype=torch.int64)
    return ((k.unsqueeze(1) >> bits) & 1).to(dtype)


def _float64_energy(energy) -> Callable[[torch.Tensor], torch.Tensor]:
    """U(x) evaluated with float64 copies of the energy's parameters and buffers (differentiable)."""
    if not isinstance(energy, torch.nn.Module):
        return lambda x: energy(x).to(torch.float64)
    tensors = {}
    for name, p in energy.named_parameters():
        tensors[name] = p.to(torch.float64) if p.is_floating_point() else p
    for name, b in energy.named_buffers():
        tensors[name] = b.to(torch.float64) if b.is_floating_point() else b
    return lambda x: functional_call(energy, tensors, (x,)).to(torch.float64)


def _device(energy):
    if isinstance(energy, torch.nn.Module):
        for t in list(energy.parameters()) + list(energy.buffers()):
            return t.device
    return torch.device("cpu")


def exact_log_z(energy, n_sites: Optional[int] = None) -> torch.Tensor:
    r"""log Z = log sum_{x in {0,1}^n} exp(-U(x)) by enumeration (float64, chunked).

    Parameters
    ----------
    energy : Energy
        A discrete energy on {0,1}^n (``n_sites`` or ``dim`` attribute, or pass ``n_sites``).
    n_sites : int, optional
        Number of sites, at most 20.

    Returns
    -------
    Tensor
        0-dim float64 tensor, differentiable w.r.t. the energy's parameters.
    """
    n = _n_sites(energy, n_sites)
    u_fn = _float64_energy(energy)
    dev = _device(energy)
    parts = []
    for start in range(0, 1 << n, _CHUNK):
        x = enumerate_states(n, start=start, stop=min(1 << n, start + _CHUNK), device=dev)
        parts.append(torch.logsumexp(-u_fn(x), dim=0))
    return torch.logsumexp(torch.stack(parts), dim=0)


def exact_log_prob(energy, x: torch.Tensor, n_sites: Optional[int] = None) -> torch.Tensor:
    """log p(x) = -U(x) - log Z for given states x [batch, n] (float64)."""
    u_fn = _float64_energy(energy)
    return -u_fn(x.to(torch.float64)) - exact_log_z(energy, n_sites)


def exact_expectation(energy, fn: Callable[[torch.Tensor], torch.Tensor], n_sites: Optional[int] = None) -> torch.Tensor:
    r"""E_p[fn(x)] = sum_x fn(x) exp(-U(x) - log Z) by enumeration (float64, chunked).

    ``fn`` maps float64 states [k, n] to a tensor [k, ...]; the result has shape [...].
    """
    n = _n_sites(energy, n_sites)
    u_fn = _float64_energy(energy)
    dev = _device(energy)
    log_z = exact_log_z(energy, n)
    total = None
    for start in range(0, 1 << n, _CHUNK):
        x = enumerate_states(n, start=start, stop=min(1 << n, start + _CHUNK), device=dev)
        w = torch.exp(-u_fn(x) - log_z)
        v = fn(x).to(torch.float64)
        part = torch.tensordot(w, v, dims=([0], [0]))
        total = part if total is None else total + part
    return total


def exact_marginals(energy, n_sites: Optional[int] = None) -> torch.Tensor:
    """Single-site marginals P(x_i = 1), shape [n] (float64)."""
    return exact_expectation(energy, lambda x: x, n_sites)


class ExactMoments(NamedTuple):
    """First and second moments of a discrete model.

    Attributes
    ----------
    mean : Tensor [n]
        E[v_i].
    second : Tensor [n, n]
        E[v_i v_j] (diagonal E[v_i^2]: E[x_i] for {0,1} states, 1 for spins).
    convention : str
        "01" (v = x in {0,1}) or "spins" (v = s = 2x - 1 in {-1,+1}).
    """

    mean: torch.Tensor
    second: torch.Tensor
    convention: str


def exact_moments(energy, n_sites: Optional[int] = None, convention: str = "01") -> ExactMoments:
    r"""Exact E[v] and E[v v^T] by enumeration, with v = x (``"01"``) or v = 2x - 1 (``"spins"``).

    The two are related by E[s] = 2 E[x] - 1 and E[s s^T] = 4 E[x x^T] - 2 E[x] 1^T
    - 2 1 E[x]^T + 1 1^T.
    """
    check_choice("convention", convention, ["01", "spins"])
    n = _n_sites(energy, n_sites)

    def stats(x):
        v = x if convention == "01" else 2.0 * x - 1.0
        return torch.cat([v, (v.unsqueeze(2) * v.unsqueeze(1)).reshape(v.shape[0], -1)], dim=1)

    m = exact_expectation(energy, stats, n)
    return ExactMoments(mean=m[:n], second=m[n:].reshape(n, n), convention=convention)


def _log_2cosh(a: float) -> float:
    a = abs(a)
    return a + math.log1p(math.exp(-2.0 * a))


def _log_abs_2sinh(a: float) -> float:
    a = abs(a)
    if a == 0.0:
        return -math.inf
    return a + math.log(-math.expm1(-2.0 * a))


def kaufman_log_z(side: int, beta: float) -> float:
    r"""Exact log Z of the periodic ``side x side`` Ising model, U = -beta sum_<ij> s_i s_j (Kaufman 1949).

    .. math::

        Z = \tfrac12 (2 \sinh 2K)^{N/2} \sum_{k=1}^{4} Z_k, \qquad N = L^2, K = \beta,

        Z_1 = \prod_{r=0}^{L-1} 2\cosh(\tfrac L2 \gamma_{2r+1}),\;
        Z_2 = \prod_{r=0}^{L-1} 2\sinh(\tfrac L2 \gamma_{2r+1}),\;
        Z_3 = \prod_{r=0}^{L-1} 2\cosh(\tfrac L2 \gamma_{2r}),\;
        Z_4 = \prod_{r=0}^{L-1} 2\sinh(\tfrac L2 \gamma_{2r}),

    with :math:`\cosh\gamma_k = \cosh 2K \coth 2K - \cos(\pi k / L)` (gamma_k > 0) for k != 0 and
    :math:`\gamma_0 = 2K + \log\tanh K`, which is negative below the critical coupling, so Z_4
    changes sign: the sum is done with signs in log space.  Valid for beta > 0 (ferromagnet, zero
    field); the model is the :class:`~ebmlab.energies.IsingLattice` with ``coupling = beta``.

    References
    ----------
    B. Kaufman (1949), Crystal statistics II. Partition function evaluated by spinor analysis.
    Phys. Rev. 76, 1232.  P. D. Beale (1996), Exact distribution of energies in the
    two-dimensional Ising model. Phys. Rev. Lett. 76, 78 (eqs. 2-5, the form used here).
    """
    L = check_int("side", side, minimum=2)
    K = check_positive("beta", beta)
    N = L * L
    c = math.cosh(2 * K) / math.tanh(2 * K)

    def gamma(k: int) -> float:
        if k == 0:
            return 2 * K + math.log(math.tanh(K))
        return math.acosh(c - math.cos(math.pi * k / L))

    odd = [gamma(2 * r + 1) for r in range(L)]
    even = [gamma(2 * r) for r in range(L)]
    terms = []  # (sign, log|Z_k|)
    terms.append((1.0, sum(_log_2cosh(0.5 * L * g) for g in odd)))
    terms.append((1.0, sum(_log_abs_2sinh(0.5 * L * g) for g in odd)))  # all odd gammas > 0
    terms.append((1.0, sum(_log_2cosh(0.5 * L * g) for g in even)))
    sign4 = 1.0
    for g in even:
        if g < 0:
            sign4 = -sign4
    terms.append((sign4, sum(_log_abs_2sinh(0.5 * L * g) for g in even)))
    ref = max(t for _, t in terms if math.isfinite(t))
    total = sum(sg * math.exp(t - ref) for sg, t in terms if math.isfinite(t))
    return -math.log(2.0) + 0.5 * N * math.log(2.0 * math.sinh(2.0 * K)) + ref + math.log(total)
