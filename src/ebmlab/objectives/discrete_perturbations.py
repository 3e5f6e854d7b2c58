r"""Energy-discrepancy perturbations on binary data {0,1}^d.

Schröder, Ou, Li, Duncan (2024), "Energy-based modelling for discrete and mixed data via heat
equations on structured spaces" (NeurIPS 2024), and Schröder, Ou, Li, Duncan (2023), "Training discrete
energy-based models with energy discrepancy" (ICML 2023 workshop on Sampling and Optimization in
Discrete Space, arXiv:2307.07595), which introduces the Bernoulli, neighbourhood and deterministic
(pooling) perturbations below.  Each class implements the :class:`~ebmlab.objectives.perturbations.Perturbation`
interface of :class:`~ebmlab.objectives.energy_discrepancy.EnergyDiscrepancy`:

- ``perturb(x)`` draws y ~ q(. | x);
- ``contrast(y, m)`` draws m contrastive states x'_j ~ r(. | y) with r(x' | y) ∝ q(y | x').

**Why w = 1 makes these estimators consistent for any M.**  With r(x'|y) ∝ q(y|x') the joint law of
the M + 1 candidates {x, x'_1..x'_M} given y is exchangeable up to the factor p_data(x), so the
posterior probability that candidate k is the data point is p_data(x_k) / Σ_j p_data(x_j).  With
w = 1 the ED loss is exactly the cross-entropy of the classifier softmax(-U) over the candidates,
``log(1 + Σ_j exp(U(x) - U(x'_j)))`` (minus the constant log M), so its population minimiser is
U = -log p_data + const on the states the perturbation connects: no M → ∞ limit is needed.  The
reference code's defaults are flip probability 0.1, M = 32, w = 1 (pass ``m=32`` to ``EnergyDiscrepancy``;
its own default M = 4 is the continuous one).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from .._core.errors import ConfigError, DataError
from .._core.validation import check_int, check_probability
from .perturbations import PERTURBATIONS, Perturbation


def _flat(x: torch.Tensor) -> torch.Tensor:
    if x.ndim < 2:
        raise DataError(f"binary data must have shape (batch, *event), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1)


@PERTURBATIONS.register("bernoulli")
class BernoulliPerturbation(Perturbation):
    r"""Independent bit flips: q(y | x) = Π_i ρ^{[y_i ≠ x_i]} (1 - ρ)^{[y_i = x_i]}, ρ = ``flip_prob``.

    ``y = x XOR ξ`` with ξ_i ~ Bernoulli(ρ) i.i.d.  The kernel is symmetric (q(y|x) = q(x|y)), so
    the contrastive samples are drawn by perturbing y again: ``x'_j = y XOR ξ'_j``
    (Schröder et al. 2024, "Bernoulli perturbation").  Every state is reachable, so ED with w = 1
    identifies the full distribution.

    Parameters
    ----------
    flip_prob : float
        Probability ρ in (0, 1) that each bit flips (default 0.1, the reference code's default).
    """

    name = "bernoulli"
    discrete = True

    def __init__(self, flip_prob: float = 0.1):
        self.flip_prob = check_probability("flip_prob", flip_prob, open_low=True, open_high=True)

    def _flip(self, x: torch.Tensor, shape, generator: Optional[torch.Generator]) -> torch.Tensor:
        # x XOR mask for {0,1} data, as one boolean kernel (a third of the cost of where(mask, 1 - x, x))
        mask = torch.rand(shape, dtype=x.dtype, device=x.device, generator=generator) < self.flip_prob
        return torch.logical_xor(x != 0, mask).to(x.dtype)

    def perturb(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """y = x XOR ξ, ξ_i ~ Bernoulli(flip_prob); same shape as x."""
        return self._flip(x, x.shape, generator)

    def contrast(self, y: torch.Tensor, m: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """x'_j = y XOR ξ'_j for j = 1..m; shape (batch, m, *event)."""
        m = check_int("m", m, minimum=1)
        yy = y.unsqueeze(1).expand(y.shape[0], m, *y.shape[1:])
        return self._flip(yy, yy.shape, generator)


@PERTURBATIONS.register("neighbourhood")
class NeighbourhoodPerturbation(Perturbation):
    r"""One-bit neighbourhood: y is x with one uniformly chosen bit flipped.

    q(y | x) = 1/d for the d states at Hamming distance 1 from x (the grid neighbourhood
    N(x) = {x ± e_k}, Schröder et al. 2023, arXiv:2307.07595).  The neighbourhood relation is
    symmetric and every state has d neighbours, so the contrastive samples are drawn from the inverse
    neighbourhood N^{-1}(y) = N(y):
    each x'_j is y with one (independently, uniformly chosen) bit flipped.  Note that x'_j = x with
    probability 1/d.  Every pair of states is connected through chains of neighbourhoods, so ED with
    w = 1 identifies the full distribution.
    """

    name = "neighbourhood"
    discrete = True

    def perturb(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Flip one uniformly chosen bit per row; same shape as x."""
        flat = _flat(x)
        idx = torch.randint(flat.shape[1], (flat.shape[0], 1), device=x.device, generator=generator)
        y = flat.clone()
        y.scatter_(1, idx, 1 - flat.gather(1, idx))
        return y.reshape(x.shape)

    def contrast(self, y: torch.Tensor, m: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """m copies of y, each with one uniformly chosen bit flipped; shape (batch, m, *event)."""
        m = check_int("m", m, minimum=1)
        flat = _flat(y)
        b, d = flat.shape
        idx = torch.randint(d, (b, m, 1), device=y.device, generator=generator)
        out = flat.unsqueeze(1).expand(b, m, d).clone()
        out.scatter_(2, idx, 1 - out.gather(2, idx))
        return out.reshape(b, m, *y.shape[1:])


@PERTURBATIONS.register("pooling")
class PoolingPerturbation(Perturbation):
    r"""Deterministic pooling: y = g(x), the number of ones in each window; x' uniform on g^{-1}(y).

    Schröder et al. 2023 (arXiv:2307.07595), deterministic transforms: for an information-losing map g,
    ED_g(p_data, p) = KL(p_data || p) - KL(g#p_data || g#p), and the contrastive law is the uniform
    distribution on the preimage of y.  Here g sums the bits of non-overlapping windows:

    - 1-D (``shape=None``): windows of ``window`` consecutive sites of the flattened state (the last
      window is shorter when ``window`` does not divide d);
    - 2-D (``shape=(H, W)``, e.g. a lattice flattened row-major): blocks of ``window`` x ``window``
      sites (or ``(a, b)``), edge blocks shorter when the block does not divide the side.

    ``perturb`` returns the pooled value written back to every site of its window (mean pooling
    followed by nearest unpooling, the pooling/unpooling picture of Schröder et al. 2023): ``y_i`` = mean of x
    over the window of i, same shape as x.  ``contrast`` draws, independently for every window with
    count c = size · y, a uniformly random subset of c sites of the window set to 1 (random keys,
    the c smallest win): exactly uniform on {x' : g(x') = g(x)}.

    **What it identifies.**  ED_g = 0 iff p(x | g(x)) = p_data(x | g(x)): pooling ED is a consistent
    estimator of the conditional law within each preimage, *not* of the law of the pooled values,
    and in general not of the parameters.  For an exponential family U = -θ·T(x) it identifies θ
    only modulo the directions v with v·T constant on every preimage; their gradient is zero and
    they keep their initial values.  For an Ising model with windows of two sites {0,1}, {2,3}, ...:
    J_01 is invisible (s_0 s_1 is fixed by the count), and of J_02, J_03, J_12, J_13 only the two
    contrasts J_02 - J_03 - J_12 + J_13 and J_12 + J_13 - J_02 - J_03 are seen (together with field
    differences h_0 - h_1), so the learned J differs from the true one even with infinite data.
    Use it for what it guarantees, or combine it with a perturbation that reaches every state
    (Bernoulli, neighbourhood).

    Parameters
    ----------
    window : int or (int, int)
        Window length (1-D) or block size (2-D), >= 2 (default 2).
    shape : (int, int), optional
        The 2-D shape the flattened state is viewed in; ``None`` for 1-D windows.
    """

    name = "pooling"
    discrete = True

    def __init__(self, window: Union[int, Sequence[int]] = 2, shape: Optional[Sequence[int]] = None):
        if shape is None:
            if not isinstance(window, int) or isinstance(window, bool):
                raise ConfigError(f"window must be an int >= 2 for 1-D pooling (shape=None), got {window!r}")
            self.window: Union[int, Tuple[int, int]] = check_int("window", window, minimum=2)
            self.shape: Optional[Tuple[int, int]] = None
        else:
            try:
                h, w = (int(v) for v in shape)
            except (TypeError, ValueError):
                raise ConfigError(f"shape must be a pair (H, W) of positive ints or None, got {shape!r}") from None
            self.shape = (check_int("shape[0]", h), check_int("shape[1]", w))
            if isinstance(window, int) and not isinstance(window, bool):
                a = b = window
            else:
                try:
                    a, b = (int(v) for v in window)
                except (TypeError, ValueError):
                    raise ConfigError(f"window must be an int or a pair (a, b) of ints, got {window!r}") from None
            a = check_int("window[0]", a)
            b = check_int("window[1]", b)
            if a * b < 2:
                raise ConfigError(f"a pooling block must hold at least 2 sites, got window {window!r}")
            self.window = (a, b)
        self._cache: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ windows
    def groups(self, d: int) -> torch.Tensor:
        """Window index of every site of a flattened state of d sites (LongTensor[d])."""
        if self.shape is None:
            return torch.arange(d) // self.window
        h, w = self.shape
        if h * w != d:
            raise DataError(f"pooling shape {self.shape} has {h * w} sites but the data have {d} per row")
        a, b = self.window
        rows = torch.arange(h).unsqueeze(1) // a
        cols = torch.arange(w).unsqueeze(0) // b
        n_col_blocks = -(-w // b)
        return (rows * n_col_blocks + cols).reshape(-1)

    def _tables(self, d: int, device: torch.device):
        key = (d, str(device))
        if key not in self._cache:
            grp = self.groups(d)
            k = int(grp.max()) + 1
            sizes = torch.bincount(grp, minlength=k)
            s = int(sizes.max())
            members = torch.full((k, s), d, dtype=torch.long)  # pad -> dummy site d
            order = torch.argsort(grp, stable=True)
            starts = torch.cumsum(sizes, 0) - sizes
            pos = torch.arange(d) - starts[grp[order]]
            members[grp[order], pos] = order
            self._cache[key] = (grp.to(device), members.to(device), sizes.to(device))
        return self._cache[key]

    # ------------------------------------------------------------------ interface
    def perturb(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """y_i = mean of x over the window of site i (deterministic; ``generator`` unused)."""
        flat = _flat(x)
        b, d = flat.shape
        grp, _, sizes = self._tables(d, x.device)
        counts = torch.zeros(b, sizes.shape[0], dtype=flat.dtype, device=x.device)
        counts.index_add_(1, grp, flat)
        return (counts / sizes.to(flat.dtype))[:, grp].reshape(x.shape)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """g(x): the number of ones per window, Tensor[batch, n_windows] (integer-valued floats)."""
        flat = _flat(x)
        grp, _, sizes = self._tables(flat.shape[1], x.device)
        counts = torch.zeros(flat.shape[0], sizes.shape[0], dtype=flat.dtype, device=x.device)
        return counts.index_add_(1, grp, flat)

    def contrast(self, y: torch.Tensor, m: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """m states drawn uniformly from the preimage of y; shape (batch, m, *event)."""
        m = check_int("m", m, minimum=1)
        flat = _flat(y)
        b, d = flat.shape
        grp, members, sizes = self._tables(d, y.device)
        k, s = members.shape
        first = members[:, 0]
        counts = torch.round(flat[:, first] * sizes.to(flat.dtype)).long()  # [b, k]
        keys = torch.rand((b, m, k, s), device=y.device, generator=generator)
        keys = keys.masked_fill(members == d, 2.0)  # padding never selected
        perm = keys.argsort(-1)  # a uniformly random order of each window's sites (padding last)
        first_c = (torch.arange(s, device=y.device) < counts[:, None, :, None]).to(flat.dtype).expand(b, m, k, s)
        chosen = torch.zeros((b, m, k, s), dtype=flat.dtype, device=y.device).scatter_(-1, perm, first_c.contiguous())
        out = torch.zeros(b, m, d + 1, dtype=flat.dtype, device=y.device)
        out.scatter_(2, members.reshape(1, 1, -1).expand(b, m, k * s), chosen.reshape(b, m, k * s))
        return out[..., :d].reshape(b, m, *y.shape[1:])
