r"""JEM: a classifier trained as an energy-based model of p(x, y) (Grathwohl et al. 2020, "Your classifier is
secretly an energy based model and you should treat it like one", ICLR 2020).

With logits f(x) the joint model is p(x, y) ∝ exp f(x)[y], so p(y | x) = softmax f(x) and
p(x) ∝ exp(-U(x)), U(x) = -logsumexp_y f(x)[y].  Training maximises log p(y | x) + log p(x):

    L = CE(f(x), y) + px_weight · [mean U(x_data) - mean U(x_neg)] + energy_reg · [mean U(x_data)² + mean U(x_neg)²]

where the negatives x_neg come from persistent SGLD chains kept in a :class:`~ebmlab.samplers.ReplayBuffer`
(each drawn chain restarts from uniform noise with probability ``reinit_prob``; Du & Mordatch 2019) and updated by
``sgld_steps`` steps of x' = x - α ∇U(x) + σ ξ (α = ``sgld_step_size``, σ = ``sgld_noise``; JEM uses α = 1,
σ = 0.01), run by the chain runner :func:`ebmlab.samplers.sample` as ULA at h = σ²/2 on the tempered energy
U / T, T = σ² / (2α) (:class:`~ebmlab.energies.conv.ScaledEnergy`).  ``px_weight = 0`` is the same network trained
with cross-entropy only (the baseline of the JEM paper's calibration and OOD tables).

Training runs in :func:`ebmlab.fit` (the one training loop: its guard raises
:class:`~ebmlab.TrainingDivergedError` on a non-finite loss or gradient; with ``watchdog=`` its
:class:`~ebmlab.train.watchdog.Watchdog` rolls a diverging run back and retries it gentler, and sees JEM's
``energy_gap``).  JEM's known failure (the JEM repository's
issues #4 and #8: energies run away, then NaN) is caught earlier by an energy guard: when the mean energy of the data
or of the negatives leaves ±``energy_limit``, training stops with a TrainingDivergedError naming the step and the
remedies (smaller ``lr``, ``energy_reg > 0``, ``grad_clip``); a diverged model is never marked fitted, so it
cannot be saved.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from .._core.errors import ConfigError, DataError, TrainingDivergedError
from .._core.params import ParamsMixin
from .._core.random import fresh_seed, init_parameters_
from .._core.validation import check_int, check_positive, check_probability
from ..energies.conv import ClassConditionalEnergy, ClassifierEnergy, ConvClassifier, ScaledEnergy
from ..objectives.base import LossOutput, Objective
from ..samplers.buffer import ReplayBuffer
from ..samplers.driver import sample
from ..samplers.ula import ULA

MODEL_FILE = "model.safetensors"


def sgld_as_ula(step_size: float, noise: float):
    """(ULA sampler, temperature T) such that ULA at h = σ²/2 on U / T makes the step x' = x - α ∇U + σ ξ."""
    return ULA(step_size=noise ** 2 / 2.0), noise ** 2 / (2.0 * step_size)


class JEMObjective(Objective):
    """The JEM hybrid loss of one minibatch (see the module docstring).

    The batch holds flattened images with the class index as the last column (so that :func:`ebmlab.fit`, which
    draws rows of one tensor, draws (x, y) pairs); ``net`` is the classifier giving logits.
    """

    name = "jem"

    def __init__(self, image_shape, px_weight: float = 1.0, energy_reg: float = 0.0, sgld_steps: int = 20,
                 sgld_step_size: float = 1.0, sgld_noise: float = 0.01, buffer_size: int = 1000,
                 reinit_prob: float = 0.05):
        self.image_shape = tuple(int(s) for s in image_shape)
        self.px_weight = check_positive("px_weight", px_weight, allow_zero=True)
        self.energy_reg = check_positive("energy_reg", energy_reg, allow_zero=True)
        #: SGLD steps per iteration; named ``steps`` like the MCMC objectives', so that the watchdog of
        #: :func:`ebmlab.fit` can lengthen the chains on a rollback (``Watchdog(sample_steps_factor=2)``)
        self.steps = check_int("sgld_steps", sgld_steps)
        self.needs_sampler = self.px_weight > 0
        self.sampler, self.temperature = sgld_as_ula(check_positive("sgld_step_size", sgld_step_size),
                                                     check_positive("sgld_noise", sgld_noise))
        self.buffer = ReplayBuffer(buffer_size, reinit_prob, self._noise)
        self._like: Optional[torch.Tensor] = None

    def _noise(self, n: int, generator: Optional[torch.Generator]) -> torch.Tensor:
        like = self._like
        return torch.rand((n, *self.image_shape), generator=generator, dtype=like.dtype, device=like.device)

    def __call__(self, net, batch: torch.Tensor, generator: Optional[torch.Generator] = None) -> LossOutput:
        n = batch.shape[0]
        x = batch[:, :-1].reshape(n, *self.image_shape)
        y = batch[:, -1].round().long()
        logits = net(x)
        ce = torch.nn.functional.cross_entropy(logits, y)
        u_data = -torch.logsumexp(logits, dim=-1)
        stats: Dict[str, float] = {"ce": float(ce.detach()), "accuracy": float((logits.argmax(1) == y).float().mean()),
                                   "energy_data": float(u_data.detach().mean())}
        loss = ce
        if self.px_weight > 0:
            if n > self.buffer.buffer_size:
                raise ConfigError(f"JEM draws {n} chains per batch but buffer_size is {self.buffer.buffer_size}; "
                                  f"use buffer_size >= batch_size")
            self._like = x[:1].detach()
            x0, idx = self.buffer.sample(n, generator=generator)
            energy = ClassifierEnergy(net)
            neg, info = sample(ScaledEnergy(energy, self.temperature), self.sampler, x0, self.steps, keep="last",
                               adapt=False, warn=False, generator=generator)
            self.buffer.update(idx, neg)
            u_neg = energy(neg)
            loss = loss + self.px_weight * (u_data.mean() - u_neg.mean())
            if self.energy_reg > 0:
                loss = loss + self.energy_reg * (u_data.pow(2).mean() + u_neg.pow(2).mean())
            stats["energy_neg"] = float(u_neg.detach().mean())
            stats["energy_gap"] = stats["energy_neg"] - stats["energy_data"]
            stats["reinit_fraction"] = self.buffer.last_reinit_fraction
        return LossOutput(loss, stats)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {} if self.buffer.data is None else {"buffer": self.buffer.data.detach().cpu()}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        if "buffer" in state:
            self.buffer.load_state_dict({"buffer_size": self.buffer.buffer_size, "reinit_prob": self.buffer.reinit_prob,
                                         "data": state["buffer"]})


class EnergyGuard:
    """A :func:`ebmlab.fit` callback that raises :class:`~ebmlab.TrainingDivergedError` when the mean energy of the
    data or of the negatives is non-finite or leaves [-limit, limit] — JEM's divergence, seen before the loss turns
    NaN."""

    def __init__(self, limit: float):
        self.limit = check_positive("energy_limit", limit)

    def __call__(self, *, step: int, loss: float, stats: Dict[str, float], energy=None) -> bool:
        for key, what in (("energy_data", "data"), ("energy_neg", "SGLD negatives")):
            v = stats.get(key)
            if v is not None and not (abs(v) <= self.limit):
                raise TrainingDivergedError(
                    f"JEM training diverged at step {step}: the mean energy of the {what} is {v:.4g}, outside "
                    f"±{self.limit:g} (energy_limit). The model was not kept. Use a smaller lr, an energy penalty "
                    f"(energy_reg=1e-2 ... 1), gradient clipping (grad_clip=1), or a smaller sgld_step_size")
        return False


def _as_images(X, name: str = "X") -> torch.Tensor:
    try:
        x = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{name} could not be converted to a tensor: {err}") from None
    if x.ndim != 4:
        raise DataError(f"{name} must be images of shape [n, channels, height, width], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{name} contains non-finite values")
    return x.float()


class JEM(ParamsMixin):
    """Joint energy-based model of images and labels (Grathwohl et al. 2020), scikit-learn style.

    The constructor only stores parameters; :meth:`fit` validates them and trains a
    :class:`~ebmlab.energies.conv.ConvClassifier` with the JEM loss (module docstring).

    Parameters
    ----------
    channels, hidden, activation :
        The classifier network (:class:`~ebmlab.energies.conv.ConvClassifier`).
    steps, batch_size, lr, weight_decay, grad_clip :
        Training (:func:`ebmlab.fit`, Adam; defaults 1000, 64, 1e-3, 0, None: the measured recipe on digits).
    px_weight : float
        Weight of the log p(x) term (1 as in JEM; 0 = cross-entropy only).
    energy_reg : float
        Weight of the energy penalty mean U(x)² + mean U(x_neg)² (Du & Mordatch 2019); keeps energies bounded.
    sgld_steps, sgld_step_size, sgld_noise :
        SGLD per iteration: steps, α, σ (JEM: 20, 1, 0.01).
    buffer_size, reinit_prob :
        Replay buffer of persistent chains (JEM: 10000, 0.05; default here 1000 for the 1,437 digits).
    energy_limit : float
        The energy guard's bound (see :class:`EnergyGuard`): a hard stop, always on.
    watchdog : None, bool or ebmlab.train.watchdog.Watchdog
        Passed to :func:`ebmlab.fit`: with a watchdog, a diverging step (non-finite or exploding loss, gradient norm or
        energy gap) is rolled back to the last good state and retried with a smaller learning rate, up to its
        ``max_retries``; then TrainingDivergedError (default ``None``: off, as in ``ebmlab.fit``).
    sample_steps : int
        SGLD steps of :meth:`sample` (from the replay buffer, or uniform noise).
    device : str
    random_state : int or None
        Seed of weights, minibatches and chains (None: a fresh seed, recorded as ``seed_``).

    Attributes (after fit)
    ----------------------
    classifier_ : ConvClassifier
    classes_ : ndarray
        The sorted labels; predictions are entries of it.
    history_ : ebmlab.train.History
    """

    def __init__(self, *, channels: int = 32, hidden: int = 128, activation: str = "silu", steps: int = 1000,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.0, grad_clip: Optional[float] = None,
                 px_weight: float = 1.0, energy_reg: float = 0.1, sgld_steps: int = 20, sgld_step_size: float = 1.0,
                 sgld_noise: float = 0.01, buffer_size: int = 1000, reinit_prob: float = 0.05,
                 energy_limit: float = 1e3, watchdog=None, sample_steps: int = 200, device: str = "cpu",
                 random_state: Optional[int] = None):
        self.channels, self.hidden, self.activation = channels, hidden, activation
        self.steps, self.batch_size, self.lr, self.weight_decay, self.grad_clip = steps, batch_size, lr, weight_decay, grad_clip
        self.px_weight, self.energy_reg = px_weight, energy_reg
        self.sgld_steps, self.sgld_step_size, self.sgld_noise = sgld_steps, sgld_step_size, sgld_noise
        self.buffer_size, self.reinit_prob, self.energy_limit = buffer_size, reinit_prob, energy_limit
        self.watchdog = watchdog
        self.sample_steps, self.device, self.random_state = sample_steps, device, random_state

    def _json_params(self) -> Dict[str, Any]:
        p = self.get_params(deep=False)
        if not isinstance(p["watchdog"], (bool, type(None), str)):
            p["watchdog"] = True  # a Watchdog object is saved as "on" (its settings are not needed to use the model)
        return p

    # -- fitting -------------------------------------------------------------------------------------------------
    def _build_net(self, image_shape, n_classes: int, seed: int) -> ConvClassifier:
        with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: keep it untouched
            net = ConvClassifier(image_shape, n_classes, self.channels, self.hidden, self.activation)
        init_parameters_(net, torch.Generator().manual_seed(seed))
        return net

    def fit(self, X, y, **fit_params: Any) -> "JEM":
        """Train on images ``X`` [n, C, H, W] and labels ``y`` [n].  Extra keywords go to :func:`ebmlab.fit`
        (``log_csv``, ``callbacks``, ``progress``, ``checkpoint_dir``...).

        Raises
        ------
        TrainingDivergedError
            When the guard sees diverging energies or fit sees a non-finite loss; the estimator stays unfitted.
        """
        from ..train.fit import fit as train_fit, resolve_device

        x = _as_images(X)
        labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
            raise DataError(f"y must have one label per image ({x.shape[0]}), got shape {labels.shape}")
        classes, codes = np.unique(labels, return_inverse=True)
        if classes.shape[0] < 2:
            raise DataError(f"y must contain at least 2 classes, got {classes.tolist()}")
        check_int("steps", self.steps)
        check_int("batch_size", self.batch_size)
        check_positive("energy_limit", self.energy_limit)
        check_int("sample_steps", self.sample_steps)
        check_probability("reinit_prob", self.reinit_prob)
        check_int("buffer_size", self.buffer_size)
        if self.px_weight > 0 and self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size})")
        seed = fresh_seed() if self.random_state is None else check_int("random_state", self.random_state, minimum=0)
        image_shape = tuple(int(s) for s in x.shape[1:])
        net = self._build_net(image_shape, int(classes.shape[0]), seed)
        objective = JEMObjective(image_shape, self.px_weight, self.energy_reg, self.sgld_steps, self.sgld_step_size,
                                 self.sgld_noise, self.buffer_size, self.reinit_prob)
        rows = torch.cat([x.reshape(x.shape[0], -1), torch.as_tensor(codes, dtype=x.dtype)[:, None]], dim=1)
        callbacks = [EnergyGuard(self.energy_limit), *fit_params.pop("callbacks", ())]
        history = train_fit(net, rows, objective, steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                            weight_decay=self.weight_decay, grad_clip=self.grad_clip, seed=seed,
                            device=resolve_device(self.device), callbacks=callbacks, watchdog=self.watchdog,
                            config={"jem": self._json_params()}, **fit_params)
        net.eval()
        self.classifier_, self.classes_, self.image_shape_ = net, classes, image_shape
        self.seed_, self.history_, self.objective_ = seed, history, objective
        return self

    # -- using the model -----------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise ConfigError("this JEM is not fitted: call fit(X, y) or JEM.load(path) first")

    def _images(self, X) -> torch.Tensor:
        self._check_fitted()
        x = _as_images(X)
        if tuple(x.shape[1:]) != self.image_shape_:
            raise DataError(f"X has images of shape {tuple(x.shape[1:])}, the model was fitted on {self.image_shape_}")
        p = next(self.classifier_.parameters())
        return x.to(device=p.device, dtype=p.dtype)

    @torch.no_grad()
    def logits(self, X) -> torch.Tensor:
        """f(x), Tensor[n, n_classes]."""
        return self.classifier_(self._images(X)).cpu()

    def predict_proba(self, X) -> np.ndarray:
        """p(y | x) = softmax f(x), ndarray [n, n_classes] (columns in the order of ``classes_``)."""
        return torch.softmax(self.logits(X), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """The most probable class of each image (entries of ``classes_``)."""
        self._check_fitted()
        return self.classes_[self.logits(X).argmax(1).numpy()]

    def score_samples(self, X) -> np.ndarray:
        """-U(x) = logsumexp_y f(x)[y], the unnormalised log p(x): the OOD score (higher = more in-distribution)."""
        return torch.logsumexp(self.logits(X), dim=1).numpy()

    def score(self, X, y) -> float:
        """Accuracy on (X, y)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def sample(self, n_samples: int, label=None, *, random_state: Optional[int] = None,
               steps: Optional[int] = None, init: Optional[str] = None) -> torch.Tensor:
        """Draw images by SGLD (α = ``sgld_step_size``, σ = ``sgld_noise``): ``steps`` (default ``sample_steps``)
        steps on U(x) (``label=None``) or on U(x | y) = -f(x)[y] for a label (one value, or one per sample).

        ``init="buffer"`` starts the chains from rows of the training replay buffer drawn at random (as JEM samples:
        the persistent chains are the closest to the model), ``"noise"`` from uniform noise on [0, 1]; the default is
        ``"buffer"`` when the model has one (``px_weight > 0``), else ``"noise"``.
        Returns Tensor[n_samples, C, H, W] (not clipped to [0, 1])."""
        self._check_fitted()
        n = check_int("n_samples", n_samples)
        steps = check_int("steps", steps if steps is not None else self.sample_steps)
        seed = fresh_seed() if random_state is None else check_int("random_state", random_state, minimum=0)
        p = next(self.classifier_.parameters())
        g = torch.Generator(device=p.device).manual_seed(seed)
        buffer = self.objective_.buffer.data
        if init is None:
            init = "buffer" if buffer is not None else "noise"
        if init not in ("buffer", "noise"):
            raise ConfigError(f"init must be 'buffer' or 'noise', got {init!r}")
        if init == "buffer" and buffer is None:
            raise ConfigError("init='buffer' needs a replay buffer, and this model has none (px_weight=0); use "
                              "init='noise'")
        if label is None:
            energy = ClassifierEnergy(self.classifier_)
        else:
            lab = np.broadcast_to(np.asarray(label), (n,))
            code = np.searchsorted(self.classes_, lab)
            if np.any(code >= len(self.classes_)) or np.any(self.classes_[np.minimum(code, len(self.classes_) - 1)] != lab):
                raise ConfigError(f"label must be one of the fitted classes {self.classes_.tolist()}, got {label!r}")
            energy = ClassConditionalEnergy(self.classifier_, torch.as_tensor(code, device=p.device))
        sampler, temperature = sgld_as_ula(self.sgld_step_size, self.sgld_noise)
        if init == "buffer":
            rows = torch.randint(buffer.shape[0], (n,), generator=g, device=p.device)
            x0 = buffer.to(device=p.device, dtype=p.dtype)[rows]
        else:
            x0 = torch.rand((n, *self.image_shape_), generator=g, device=p.device, dtype=p.dtype)
        x, info = sample(ScaledEnergy(energy, temperature), sampler, x0, steps, keep="last", adapt=False, generator=g)
        self.last_sample_seed_ = seed
        return x.detach().cpu()

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write ``path/model.safetensors``: classifier weights, the replay buffer and the JSON configuration."""
        from ..train.checkpoint import save_checkpoint

        self._check_fitted()
        path = Path(path)
        groups = {"classifier": dict(self.classifier_.state_dict())}
        if self.objective_.buffer.data is not None:
            groups["buffer"] = {"data": self.objective_.buffer.data}
        meta = {"jem": self._json_params(), "classes": self.classes_.tolist(), "image_shape": list(self.image_shape_),
                "seed": self.seed_}
        save_checkpoint(path / MODEL_FILE, groups, meta)
        return path

    @classmethod
    def load(cls, path) -> "JEM":
        """Load a model written by :meth:`save`."""
        from ..train.checkpoint import load_model_file

        file, groups, meta = load_model_file(path, MODEL_FILE, "jem", "JEM")
        model = cls(**meta["jem"])
        classes = np.asarray(meta["classes"])
        with torch.random.fork_rng(devices=[]):
            net = ConvClassifier(meta["image_shape"], len(classes), model.channels, model.hidden, model.activation)
        net.load_state_dict(groups["classifier"])
        net.eval()
        model.classifier_, model.classes_, model.image_shape_ = net, classes, tuple(meta["image_shape"])
        model.seed_, model.history_ = meta.get("seed"), None
        model.objective_ = JEMObjective(model.image_shape_, model.px_weight, model.energy_reg, model.sgld_steps,
                                        model.sgld_step_size, model.sgld_noise, model.buffer_size, model.reinit_prob)
        if "buffer" in groups:
            model.objective_.load_state_dict({"buffer": groups["buffer"]["data"]})
        return model


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """ECE = Σ_b (|B_b| / n) |acc(B_b) - conf(B_b)| over ``n_bins`` equal-width bins of the confidence max_y p(y|x)
    (Guo et al. 2017, "On calibration of modern neural networks"; 15 bins as there and in JEM)."""
    conf = proba.max(1)
    correct = (proba.argmax(1) == np.asarray(y)).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def reliability_bins(proba: np.ndarray, y: np.ndarray, n_bins: int = 15):
    """(bin centres, accuracy per bin, confidence per bin, count per bin) for a reliability diagram (NaN where empty)."""
    conf = proba.max(1)
    correct = (proba.argmax(1) == np.asarray(y)).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    acc, cf, cnt = np.full(n_bins, np.nan), np.full(n_bins, np.nan), np.zeros(n_bins, int)
    for b in range(n_bins):
        m = bins == b
        cnt[b] = int(m.sum())
        if m.any():
            acc[b], cf[b] = correct[m].mean(), conf[m].mean()
    return (edges[:-1] + edges[1:]) / 2, acc, cf, cnt


def auroc(score_in: np.ndarray, score_out: np.ndarray) -> float:
    """Area under the ROC curve for telling in-distribution (higher score) from OOD: the Mann–Whitney probability
    P(s_in > s_out) + ½ P(s_in = s_out)."""
    s_in, s_out = np.asarray(score_in, float), np.asarray(score_out, float)
    allv = np.concatenate([s_in, s_out])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    r_in = ranks[: len(s_in)].sum()
    return float((r_in - len(s_in) * (len(s_in) + 1) / 2.0) / (len(s_in) * len(s_out)))
