"""The training watchdog: detect divergence, roll back to the last good state, retry gentler, or stop.

:func:`ebmlab.fit` calls :meth:`Watchdog.check` after every iteration with the loss and the objective's statistics
(``grad_norm`` is always there; ``energy_gap``, ``acceptance``, ``ess`` where the objective reports them).  A step
is **diverged** when

- the loss, the gradient norm or any reported statistic is not finite;
- ``|loss|`` exceeds ``spike`` × max(1, m_loss), or ``|energy_gap|`` exceeds ``spike`` × max(1, m_gap), where m is
  the median of ``|value|`` over the first ``window`` healthy iterations of the run (the calibration window,
  stored in checkpoints, so a slow exponential drift cannot move its own yardstick);
- the gradient norm exceeds ``spike`` × max(1, m_grad) on the same calibration;
- for ``patience`` consecutive iterations the sampler's mean acceptance rate (``acceptance``) stays below
  ``min_acceptance``, or a reported effective sample size fraction (``ess``) below ``min_ess`` (stuck chains), or the
  energy gap between negatives and data exceeds ``max_gap_per_dim`` nats per data dimension: energies are negative
  log-densities, so a mean gap of g nats says the negatives are e^g times less probable than the data under the
  model itself — the chains are not sampling the model (e.g. a sampler step far too large), and the
  contrastive-divergence gradient is then meaningless.

On divergence, ``fit`` restores the last good state (weights, optimiser, objective state such as the replay buffer,
generators, data order, EMA, history) and retries with the learning rate multiplied by ``lr_factor`` and, for
objectives that run a sampler, ``steps`` (sampler steps per iteration) multiplied by ``sample_steps_factor``; after
``max_retries`` rollbacks it raises :class:`~ebmlab.TrainingDivergedError` with the list of rollbacks.

**Last good state.**  A state is recorded as good only at a checkpoint step where the current iteration and every
iteration since the previous good state passed :meth:`check` and no stuck-sampler streak is under way; the step-0
state (before any update) is always good.
So the checkpoint on disk never holds a diverged state: a state is written only after it has been judged good, and
a rollback rewrites the checkpoint with the restored state and the watchdog's new settings, so that ``--resume``
continues with the reduced learning rate and the retry count.

Thresholds: the guard looks for blow-ups (orders of magnitude, ``spike`` = 1e3 by default), not for noisy losses;
the PCD failure it is built for (a sampler step of 1e4: loss -3.5e11 within a few iterations) is nine orders past it.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional

from .._core.errors import ConfigError
from .._core.validation import check_int, check_positive


class Watchdog:
    """Divergence detection and bounded retries for :func:`ebmlab.fit` (``fit(..., watchdog=Watchdog())``).

    Parameters
    ----------
    max_retries : int
        Rollbacks allowed before training stops with :class:`~ebmlab.TrainingDivergedError` (default 3).
    lr_factor : float
        Learning-rate multiplier applied at each rollback, in (0, 1) (default 0.2: three retries span 125x).
    sample_steps_factor : int
        Multiplier of an MCMC objective's ``steps`` at each rollback (default 1: unchanged; 2 doubles them).
    spike : float
        Blow-up factor over the calibration medians (default 1e3).
    window : int
        Length of the calibration window, in iterations (default 20).
    min_acceptance, min_ess : float
        Acceptance rate / ESS fraction below which an iteration counts as stuck (defaults 0.01 and 0.0 = off).
    max_gap_per_dim : float
        Energy gap |mean U(negatives) - mean U(data)| per data dimension, in nats, above which an iteration counts as
        stuck (default 10).
    patience : int
        Consecutive stuck iterations that count as divergence (default 20).
    """

    def __init__(self, max_retries: int = 3, lr_factor: float = 0.2, sample_steps_factor: int = 1,
                 spike: float = 1e3, window: int = 20, min_acceptance: float = 0.01, min_ess: float = 0.0,
                 max_gap_per_dim: float = 10.0, patience: int = 20):
        self.max_retries = check_int("max_retries", max_retries, minimum=0)
        self.lr_factor = check_positive("lr_factor", lr_factor)
        if not self.lr_factor < 1:
            raise ConfigError(f"lr_factor must be in (0, 1), got {lr_factor!r}")
        self.sample_steps_factor = check_int("sample_steps_factor", sample_steps_factor, minimum=1)
        self.spike = check_positive("spike", spike)
        if not self.spike > 1:
            raise ConfigError(f"spike must be > 1, got {spike!r}")
        self.window = check_int("window", window, minimum=1)
        self.min_acceptance = check_positive("min_acceptance", min_acceptance, allow_zero=True)
        self.min_ess = check_positive("min_ess", min_ess, allow_zero=True)
        self.max_gap_per_dim = check_positive("max_gap_per_dim", max_gap_per_dim)
        self.patience = check_int("patience", patience, minimum=1)
        #: dimension of one data row (set by :func:`ebmlab.fit`)
        self.dim = 1
        # run state (saved in checkpoints)
        self.calibration: Dict[str, List[float]] = {"loss": [], "grad_norm": [], "energy_gap": []}
        self.retries = 0
        self.lr_scale = 1.0
        self.sample_steps_scale = 1
        self.rollbacks: List[Dict[str, Any]] = []
        self._stuck = 0
        self._clean_since_good = True

    # -- detection -------------------------------------------------------------------------------------------------
    def _median(self, key: str) -> Optional[float]:
        values = self.calibration[key]
        return statistics.median(values) if len(values) >= self.window else None

    def check(self, step: int, loss: float, stats: Dict[str, float]) -> Optional[str]:
        """``None`` if iteration ``step`` looks healthy, else the reason it diverged (one phrase)."""
        reason = self._reason(loss, stats)
        if reason is None:
            for key, value in (("loss", loss), ("grad_norm", stats.get("grad_norm")),
                               ("energy_gap", stats.get("energy_gap"))):
                if value is not None and len(self.calibration[key]) < self.window:
                    self.calibration[key].append(abs(float(value)))
        else:
            self._clean_since_good = False
        return reason

    def _reason(self, loss: float, stats: Dict[str, float]) -> Optional[str]:
        if not math.isfinite(loss):
            return f"the loss is {loss}"
        for k, v in stats.items():
            if isinstance(v, (int, float)) and not math.isfinite(float(v)):
                return f"the statistic {k} is {v}"
        for key, value in (("loss", loss), ("grad_norm", stats.get("grad_norm")),
                           ("energy_gap", stats.get("energy_gap"))):
            m = self._median(key)
            if value is not None and m is not None and abs(float(value)) > self.spike * max(1.0, m):
                return (f"|{key}| = {abs(float(value)):.3g} is over {self.spike:g} x its calibration median "
                        f"max(1, {m:.3g})")
        acc, ess, gap = stats.get("acceptance"), stats.get("ess"), stats.get("energy_gap")
        why = None
        if acc is not None and float(acc) < self.min_acceptance:
            why = f"acceptance {float(acc):.3g} below {self.min_acceptance:g}"
        elif ess is not None and float(ess) < self.min_ess:
            why = f"ess {float(ess):.3g} below {self.min_ess:g}"
        elif gap is not None and abs(float(gap)) > self.max_gap_per_dim * self.dim:
            why = (f"energy gap {float(gap):.3g} nats between negatives and data, over {self.max_gap_per_dim:g} per "
                   f"dimension: the chains do not sample the model")
        self._stuck = self._stuck + 1 if why else 0
        if self._stuck >= self.patience:
            self._stuck = 0
            return f"the sampler has failed for {self.patience} iterations ({why})"
        return None

    def good_now(self) -> bool:
        """True if every iteration since the last good state passed :meth:`check` and no stuck-sampler streak is in
        progress (then a new good state may be recorded; :meth:`mark_good` starts the next interval)."""
        return self._clean_since_good and self._stuck == 0

    def mark_good(self) -> None:
        self._clean_since_good = True

    # -- retries ---------------------------------------------------------------------------------------------------
    def can_retry(self) -> bool:
        return self.retries < self.max_retries

    def record_rollback(self, step: int, to_step: int, reason: str, lr: float, sample_steps: Optional[int]) -> Dict[str, Any]:
        """Count a rollback from ``step`` to ``to_step`` and apply the remedy; returns the event (for the logs)."""
        self.retries += 1
        self.lr_scale *= self.lr_factor
        self.sample_steps_scale *= self.sample_steps_factor
        self._stuck = 0
        self._clean_since_good = True
        event = {"step": step, "to_step": to_step, "reason": reason, "retry": self.retries, "lr": lr * self.lr_factor}
        if sample_steps is not None:
            event["sample_steps"] = sample_steps * self.sample_steps_factor
        self.rollbacks.append(event)
        return event

    def report(self) -> str:
        lines = [f"retry {e['retry']}: step {e['step']} -> rolled back to step {e['to_step']} ({e['reason']}); lr "
                 f"{e['lr']:.3g}" + (f", sample steps {e['sample_steps']}" if "sample_steps" in e else "")
                 for e in self.rollbacks]
        return "; ".join(lines) if lines else "no rollbacks"

    # -- persistence -----------------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"calibration": self.calibration, "retries": self.retries, "lr_scale": self.lr_scale,
                "sample_steps_scale": self.sample_steps_scale, "rollbacks": self.rollbacks}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.calibration = {k: list(v) for k, v in state.get("calibration", {}).items()} or self.calibration
        for key in ("loss", "grad_norm", "energy_gap"):
            self.calibration.setdefault(key, [])
        self.retries = int(state.get("retries", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.sample_steps_scale = int(state.get("sample_steps_scale", 1))
        self.rollbacks = list(state.get("rollbacks", []))
        self._stuck = 0
        self._clean_since_good = True


def resolve_watchdog(watchdog) -> Optional[Watchdog]:
    """``None``/``False``/``"off"`` -> no watchdog; ``True``/``"on"`` -> ``Watchdog()``; a Watchdog as is."""
    if watchdog is None or watchdog is False or watchdog == "off":
        return None
    if watchdog is True or watchdog == "on":
        return Watchdog()
    if isinstance(watchdog, Watchdog):
        return watchdog
    raise ConfigError(f"watchdog must be 'on', 'off', True, False, None or a Watchdog, got {watchdog!r}")
