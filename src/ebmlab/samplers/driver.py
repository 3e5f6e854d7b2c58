"""The sampling driver: burn-in (with step-size adaptation), thinning, bookkeeping."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

import torch

from .._core.errors import ConfigError
from .._core.random import as_generator
from .._core.validation import check_int
from .adaptation import DualAveraging
from .base import SAMPLERS, Info, Sampler, SamplerState

_CHUNK = 64  # steps between bookkeeping flushes in the sampling loop


@dataclass(frozen=True)
class SampleInfo:
    """Summary of a :func:`sample` run.

    Attributes
    ----------
    acceptance_rate : float
        Mean Metropolis–Hastings acceptance probability over post-burn-in steps and chains
        (1.0 for unadjusted samplers).
    acceptance_per_chain : Tensor[chains]
        The same mean, per chain.
    step_size : float
        Step size used after burn-in (the dual-averaging result when adapted).
    n_grad_evals : int
        Energy(-and-gradient) evaluations in total (init, burn-in and sampling), per batch of chains.
    divergences : int
        Divergent transitions after burn-in, summed over chains.
    wall_time : float
        Seconds spent in :func:`sample`.
    steps, burn_in, thin : int
        The run's settings.
    adapted : bool
        Whether the step size was tuned during burn-in.
    state : SamplerState
        The final state (pass ``state.x`` as ``x0`` to continue the chains).
    """

    acceptance_rate: float
    acceptance_per_chain: torch.Tensor
    step_size: float
    n_grad_evals: int
    divergences: int
    wall_time: float
    steps: int
    burn_in: int
    thin: int
    adapted: bool
    state: SamplerState


def sample(
    energy,
    sampler: Union[Sampler, str],
    x0: torch.Tensor,
    steps: int,
    burn_in: int = 0,
    thin: int = 1,
    generator: Union[torch.Generator, int, None] = None,
    adapt: Optional[bool] = None,
    progress: bool = False,
    callback: Optional[Callable[[int, SamplerState, Info], None]] = None,
) -> Tuple[torch.Tensor, SampleInfo]:
    """Run ``burn_in + steps`` steps of ``sampler`` on chains started at ``x0`` and keep every
    ``thin``-th post-burn-in state.

    During burn-in, when ``adapt`` is on, the step size is tuned toward ``sampler.target_accept``
    by dual averaging (:class:`~ebmlab.samplers.adaptation.DualAveraging`, Hoffman & Gelman 2014,
    Alg. 5) on the mean acceptance over chains, then frozen at the averaged value h̄ for the
    sampling phase, so the kept draws come from a fixed, valid kernel.

    Parameters
    ----------
    energy : Energy
        The target exp(-U(x)) / Z.
    sampler : Sampler or str
        A sampler, or a registered name (built with its default hyper-parameters).
    x0 : Tensor[chains, *event_shape]
        Initial positions (float32 or float64; never modified).
    steps : int
        Post-burn-in steps, >= 1.
    burn_in : int
        Steps discarded first (and used for adaptation), >= 0.
    thin : int
        Keep post-burn-in steps 0, thin, 2 thin, ...: ``ceil(steps / thin)`` draws.
    generator : torch.Generator or int, optional
        Randomness (an int is a seed for a fresh generator). The same seed gives the same draws.
    adapt : bool, optional
        Tune the step size during burn-in. Default: ``sampler.adaptive and burn_in > 0``.
    progress : bool
        Show a tqdm progress bar.
    callback : callable, optional
        ``callback(i, state, info)`` after every step i = 0 .. burn_in + steps - 1.

    Returns
    -------
    x : Tensor[draws, chains, *event_shape]
        Kept draws, same dtype and device as ``x0``, not attached to any autograd graph.
    info : SampleInfo
    """
    t_start = time.perf_counter()
    if isinstance(sampler, str):
        sampler = SAMPLERS.build(sampler)
    if not isinstance(sampler, Sampler):
        raise ConfigError(f"sampler must be a Sampler or a registered name ({', '.join(SAMPLERS.names())}), got {sampler!r}")
    steps = check_int("steps", steps, minimum=1)
    burn_in = check_int("burn_in", burn_in, minimum=0)
    thin = check_int("thin", thin, minimum=1)
    if adapt is None:
        adapt = bool(sampler.adaptive) and burn_in > 0
    elif not isinstance(adapt, bool):
        raise ConfigError(f"adapt must be True, False or None, got {adapt!r}")
    if adapt and not sampler.adaptive:
        raise ConfigError(f"adapt=True but sampler {type(sampler).__name__} has no acceptance to target; use adapt=False")
    if adapt and burn_in == 0:
        raise ConfigError("adapt=True needs burn_in > 0 (the step size is tuned during burn-in)")
    if adapt and sampler.target_accept is None:
        raise ConfigError(f"adapt=True needs sampler.target_accept to be set, got None for {type(sampler).__name__}")
    generator = as_generator(generator, device=x0.device if isinstance(x0, torch.Tensor) else None)

    total = burn_in + steps
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"sampling ({type(sampler).__name__})", leave=False)

    with torch.no_grad():
        state = sampler.init(energy, x0)
        n_evals = 1
        it = 0
        if burn_in > 0:
            da = DualAveraging(sampler.target_accept) if adapt else None
            da_state = da.init(state.step_size) if adapt else None
            for _ in range(burn_in):
                state, info = sampler.step(energy, state, generator=generator)
                n_evals += info.n_grad_evals
                if adapt:
                    da_state = da.update(da_state, info.acceptance_rate.mean().item())
                    state = state.replace(step_size=da_state.step_size)
                if callback is not None:
                    callback(it, state, info)
                if bar is not None:
                    bar.update(1)
                it += 1
            if adapt:
                state = state.replace(step_size=da.final(da_state))

        # Bookkeeping in chunks: kept states (new tensors every step, never modified by a pure
        # sampler) and per-step acceptance / divergence flags are collected by reference and
        # written or summed once per chunk, which saves three small kernels per step.
        x = state.x
        draws = math.ceil(steps / thin)
        out = torch.empty((draws,) + tuple(x.shape), dtype=x.dtype, device=x.device)
        acc_sum = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        div_sum = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
        kept, rates, divs = [], [], []
        k = 0
        for i in range(steps):
            state, info = sampler.step(energy, state, generator=generator)
            n_evals += info.n_grad_evals
            rates.append(info.acceptance_rate)
            divs.append(info.divergent)
            if i % thin == 0:
                kept.append(state.x)
            if len(rates) == _CHUNK or i == steps - 1:
                acc_sum += torch.stack(rates).sum(0)
                div_sum += torch.stack(divs).sum(0)
                rates, divs = [], []
            if len(kept) == _CHUNK or (i == steps - 1 and kept):
                torch.stack(kept, out=out[k : k + len(kept)])
                k += len(kept)
                kept = []
            if callback is not None:
                callback(it, state, info)
            if bar is not None:
                bar.update(1)
            it += 1
    if bar is not None:
        bar.close()
    per_chain = acc_sum / steps
    result = SampleInfo(
        acceptance_rate=float(per_chain.mean()),
        acceptance_per_chain=per_chain,
        step_size=float(state.step_size),
        n_grad_evals=n_evals,
        divergences=int(div_sum.sum()),
        wall_time=time.perf_counter() - t_start,
        steps=steps,
        burn_in=burn_in,
        thin=thin,
        adapted=adapt,
        state=state,
    )
    return out, result
