"""Composition of transition kernels: one step of :class:`Cycle` is one step of each kernel in turn."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._core.errors import ConfigError
from .base import Info, Sampler, SamplerState


class Cycle(Sampler):
    r"""The deterministic-scan composition K = K_m ∘ ... ∘ K_1 of kernels that each leave the target invariant.

    If every K_i leaves π invariant, so does their composition (Tierney 1994, "Markov chains for exploring
    posterior distributions", Ann. Statist. 22(4), Sec. 2.4): e.g. a checkerboard Gibbs sweep followed by a
    Swendsen–Wang cluster move, which together mix fast on both sides of the critical point.

    Each kernel keeps its own sampler-specific ``extra`` state (stored in ``state.extra["kernels"]``); the
    position, energy and cached gradient are shared, so all kernels must agree on ``uses_grad`` (a kernel that
    does not update the gradient would leave a stale one for the next). ``Info`` of a step: the acceptance
    probability averaged over the kernels, ``accepted`` / ``divergent`` if any kernel accepted / diverged, the
    evaluations summed. Not adaptive: give each kernel its step size.

    Parameters
    ----------
    *samplers : Sampler
        The kernels, applied in this order, at least one.
    """

    name = "cycle"
    adaptive = False

    def __init__(self, *samplers: Sampler):
        if not samplers:
            raise ConfigError("Cycle needs at least one sampler")
        for s in samplers:
            if not isinstance(s, Sampler):
                raise ConfigError(f"Cycle takes Sampler objects, got {s!r}")
        if len({bool(s.uses_grad) for s in samplers}) > 1:
            raise ConfigError("Cycle's kernels must all use the gradient or all not use it "
                              f"(got {', '.join(f'{type(s).__name__}: uses_grad={s.uses_grad}' for s in samplers)})")
        self.samplers = tuple(samplers)
        self.uses_grad = bool(samplers[0].uses_grad)

    def __repr__(self) -> str:
        return f"Cycle({', '.join(map(repr, self.samplers))})"

    def init(self, energy, x0: torch.Tensor) -> SamplerState:
        states = [s.init(energy, x0) for s in self.samplers]
        first = states[0]
        return first.replace(extra={"kernels": tuple(st.extra for st in states),
                                    "step_sizes": tuple(st.step_size for st in states)})

    def step(self, energy, state: SamplerState, generator: Optional[torch.Generator] = None) -> Tuple[SamplerState, Info]:
        extras = list(state.extra["kernels"])
        steps = list(state.extra["step_sizes"])
        rate = accepted = divergent = None
        evals = 0
        current = state
        for i, sampler in enumerate(self.samplers):
            sub = current.replace(extra=extras[i], step_size=steps[i])
            sub, info = sampler.step(energy, sub, generator=generator)
            extras[i], steps[i] = sub.extra, sub.step_size
            current = sub
            r = info.acceptance_rate
            rate = r if rate is None else rate + r
            accepted = info.accepted if accepted is None else accepted | info.accepted
            divergent = info.divergent if divergent is None else divergent | info.divergent
            evals += info.n_grad_evals
        new = current.replace(extra={"kernels": tuple(extras), "step_sizes": tuple(steps)}, step_size=state.step_size)
        return new, Info(acceptance_rate=rate / len(self.samplers), accepted=accepted, divergent=divergent,
                         step_size=state.step_size, n_grad_evals=evals)
