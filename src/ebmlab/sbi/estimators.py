r"""Energy-based neural likelihood (NLE) and posterior (NPE-style) estimation for simulation-based inference.

**NLE** (after AUNLE, Glaser, Arbel, Doucet & Gretton 2022, "Maximum likelihood learning of energy-based models for
simulation-based inference"): a joint energy on z = (η, ξ), η the standardised unconstrained parameters
(φ = T⁻¹(θ), η = (φ − μ_φ)/s_φ) and ξ the standardised data, *tilted by the known prior*:

.. math:: U(η, ξ) = E_ψ(ξ \mid η) − \log p_η(η), \qquad p(η, ξ) ∝ e^{−U(η, ξ)},

trained on the simulated pairs with an unconditional objective that needs no normaliser (energy discrepancy, NCE,
denoising score matching, or persistent contrastive divergence with MCMC negatives, :mod:`ebmlab.objectives`). One
global normaliser Z makes E_ψ a likelihood up to a constant:
p(ξ | η) = e^{−E_ψ(ξ | η)} / Z, so the posterior needs no Z(θ):

.. math:: U(η \mid ξ_o) = E_ψ(ξ_o \mid η) − \log p_η(η).

(A conditional objective on x alone would learn E_ψ only up to an arbitrary function of θ, useless for the
posterior; the joint, prior-tilted form is what identifies it.)

By default (``theta_input="bounded"``) the network computing E_ψ(ξ | η) is fed the standardised θ = T(φ(η)), not η:
chains and objectives still work in η, but a posterior against the edge of a bounded prior is then learned from
simulations the network has seen rather than extrapolated into η's logistic tails (:class:`NLE`).

**NPE** (amortised posterior energy): a conditional energy U_ψ(η | ξ) trained with the same objectives with
``context=ξ`` (only η is perturbed), so U_ψ(· | ξ) = −log p(η | ξ) + c(ξ); the posterior at ξ_o is sampled directly.

Both sample every observation of a batch in one chain run (:func:`ebmlab.sbi.posterior.sample_batched`).

**Ensembles** (``ensemble_size=K``, both estimators): K networks fitted on the same simulations from different
seeds, whose mean energy (a product of experts) is the model; see :class:`NLE` for the formula and measurements.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch

from .._core.errors import ConfigError, DataError
from .._core.params import ParamsMixin
from .._core.validation import check_choice, check_int
from .._core.random import init_parameters_
from ..energies.base import Energy
from ..energies.conditional import ConditionalMLPEnergy
from ..objectives.base import LossOutput, Objective

OBJECTIVES_SBI = ("ed", "nce", "dsm", "pcd")
#: what NLE's network is fed (``NLE(theta_input=...)``)
THETA_INPUTS = ("bounded", "unconstrained")
_DEFAULT_OBJECTIVE_PARAMS: Dict[str, Dict[str, Any]] = {"ed": {"t": 0.01, "m": 16}, "nce": {"noise_ratio": 4.0},
                                                       "dsm": {"sigmas": (1.0, 0.01, 10)},
                                                       "pcd": {"steps": 20, "init": "gaussian"}}
#: seed offset between ensemble members (``ensemble_size``): member k trains with seed + k · stride
MEMBER_SEED_STRIDE = 1_000_003
#: MALA step size of PCD's negative chains (standardised joint space; the measured pilot used it)
PCD_STEP_SIZE = 1e-3


def _build_objective(name: str, params: Optional[dict]):
    from ..objectives import base as obj_base

    if name not in OBJECTIVES_SBI:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES_SBI)}, got {name!r}")
    kwargs = dict(_DEFAULT_OBJECTIVE_PARAMS[name])
    kwargs.update(params or {})
    if name == "pcd" and "sampler" not in kwargs:
        from ..samplers.mala import MALA

        kwargs["sampler"] = MALA(step_size=PCD_STEP_SIZE)
    return obj_base.build(name, **kwargs)


class _Standardiser:
    def __init__(self, data: torch.Tensor):
        self.mean = data.mean(0)
        self.std = data.std(0).clamp_min(1e-8)

    def __call__(self, v):
        return (v - self.mean.to(v)) / self.std.to(v)

    def inverse(self, v):
        return v * self.std.to(v) + self.mean.to(v)


class _TiltedJointEnergy(Energy):
    """U(z) = E(ξ | η) − log p_η(η) on z = [η, ξ] (module docstring)."""

    def __init__(self, net: ConditionalMLPEnergy, dim_theta: int, prior_energy):
        super().__init__()
        self.net = net
        self.dim_theta = dim_theta
        self.prior_energy = prior_energy

    def forward(self, z):
        eta, xi = z[:, : self.dim_theta], z[:, self.dim_theta:]
        return self.net(xi, context=eta) + self.prior_energy(eta)


class _BoundedThetaContext(torch.nn.Module):
    """E_ψ(ξ | η) computed by a network that is fed the standardised *bounded* parameters, θ = T(φ(η)) scaled by
    the training θ's mean and std, instead of η itself (NLE's ``theta_input="bounded"``).  For a bounded prior the
    map η → θ is a sigmoid, so the network sees every part of the prior box with the density of the simulations,
    where η puts the box's edges in the logistic tails; for an unbounded prior T is the identity."""

    def __init__(self, net: ConditionalMLPEnergy, task, eta_std: "_Standardiser", theta_std: "_Standardiser"):
        super().__init__()
        self.net = net
        self.task = task
        self.eta_std = eta_std
        self.theta_std = theta_std

    def forward(self, xi, context):
        return self.net(xi, context=self.theta_std(self.task.from_unconstrained(self.eta_std.inverse(context))))


class _MeanEnergy(torch.nn.Module):
    """E(y | c) = (1/K) Σ_k E_k(y | c): the product of experts of an ensemble's members (``ensemble_size``)."""

    def __init__(self, nets):
        super().__init__()
        self.nets = torch.nn.ModuleList(nets)

    def forward(self, y, context):
        return torch.stack([net(y, context=context) for net in self.nets]).mean(0)


class ContextObjective(Objective):
    """Runs a context-aware objective on rows [y, c] of a joint data set: ``objective(energy, y, context=c)``, so
    that :func:`ebmlab.fit` trains conditional energies unchanged (``prepare`` sees the y part only)."""

    def __init__(self, objective, dim: int):
        self.objective = objective
        self.dim = dim

    def prepare(self, data):
        prep = getattr(self.objective, "prepare", None)
        if callable(prep):
            prep(data[:, : self.dim])

    def __call__(self, energy, batch, generator=None) -> LossOutput:
        return self.objective(energy, batch[:, : self.dim], generator=generator, context=batch[:, self.dim:])

    def parameters(self):
        return self.objective.parameters()

    def state_dict(self):
        return self.objective.state_dict()

    def load_state_dict(self, state):
        return self.objective.load_state_dict(state)


class _BaseEstimator(ParamsMixin):
    """Shared by :class:`NLE` and :class:`NPE`: a keyword-only constructor that only stores its parameters
    (``get_params`` / ``set_params`` / ``repr`` from :class:`~ebmlab._core.params.ParamsMixin`); ``fit`` validates."""
    _kind = ""

    def __init__(self, *, objective: str = "ed", hidden: Sequence[int] = (128, 128, 128), activation: str = "silu",
                 steps: int = 30_000, batch_size: int = 256, lr: float = 1e-3, objective_params: Optional[dict] = None,
                 ensemble_size: int = 1, random_state: Optional[int] = None):
        self.objective = objective
        self.hidden = hidden
        self.activation = activation
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.objective_params = objective_params
        self.ensemble_size = ensemble_size
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------------------------------------------
    def _prepare(self, theta, x, prior):
        if prior is None or not hasattr(prior, "to_unconstrained"):
            raise ConfigError(f"{type(self).__name__}.fit needs prior= a task (ebmlab.sbi.get_task(name)), got {prior!r}")
        theta = prior.check_theta(theta, "theta")
        x = prior.check_x(x, "x")
        if x.ndim != 2 or x.shape[0] != theta.shape[0]:
            raise DataError(f"theta and x must have the same number of rows, got {theta.shape[0]} and {tuple(x.shape)}")
        if theta.shape[0] < 10:
            raise DataError(f"{type(self).__name__}.fit needs at least 10 simulations, got {theta.shape[0]}")
        phi = prior.to_unconstrained(theta)
        self.prior_ = prior
        self.theta_std_ = _Standardiser(phi)
        self.x_std_ = _Standardiser(x)
        return self.theta_std_(phi).float(), self.x_std_(x).float()

    def _base_seed(self) -> int:
        """The run's seed (``seed_``): ``random_state``, or a fresh one when it is None."""
        from .._core.random import fresh_seed

        self.seed_ = fresh_seed() if self.random_state is None else int(self.random_state)
        return self.seed_

    def _ensemble_size(self) -> int:
        return check_int("ensemble_size", self.ensemble_size)

    @staticmethod
    def _member_seed(seed: int, k: int) -> int:
        """Member k's seed (member 0 keeps the run's seed, so ``ensemble_size=1`` is the single fit)."""
        return int(seed) + MEMBER_SEED_STRIDE * int(k)

    def _fit_members(self, build, data, make_objective):
        """Fit ``ensemble_size`` members on ``data``: ``build(seed) -> (net, energy to train)``; returns the model
        network (member 0's, or the members' :class:`_MeanEnergy`) and sets ``seed_``, ``histories_``, ``history_``."""
        k_members = self._ensemble_size()
        seed = self._base_seed()
        nets, histories = [], []
        for k in range(k_members):
            member_seed = self._member_seed(seed, k)
            net, energy = build(member_seed)
            histories.append(self._fit_energy(energy, data, make_objective(), member_seed))
            nets.append(net)
        self.histories_ = histories
        self.history_ = histories[0]
        return nets[0] if k_members == 1 else _MeanEnergy(nets)

    def _fit_energy(self, energy, data, objective, seed: int):
        from ..train.fit import fit

        return fit(energy, data, objective, steps=int(self.steps), batch_size=int(self.batch_size), lr=float(self.lr),
                   seed=int(seed), lr_schedule="cosine")

    def _new_net(self, dim, context_dim, seed: int):
        with torch.random.fork_rng(devices=[]):
            net = ConditionalMLPEnergy(dim, context_dim, self.hidden, self.activation)
        init_parameters_(net, torch.Generator().manual_seed(int(seed) + 7919))
        return net

    def _prior_energy_eta(self, eta):
        """−log p_η(η) (up to a constant): the prior in the standardised unconstrained space."""
        phi = self.theta_std_.inverse(eta.double())
        return -self.prior_.prior_log_prob_unconstrained(phi).to(eta.dtype)

    # -- sampling -------------------------------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "energy_"):
            raise ConfigError(f"this {type(self).__name__} is not fitted yet; call fit(theta, x, prior=task) first")

    def posterior_potential(self):
        """U(η | ξ) as a callable (η [m, dθ], ξ [m, dx]) -> Tensor[m] (standardised coordinates)."""
        raise NotImplementedError(f"{type(self).__name__} must implement posterior_potential()")

    def sample_posterior(self, x_o, n_samples: int = 10_000, *, prior=None, generator=None, sampler="hmc",
                         chains_per_observation: int = 100, burn_in: int = 500, thin: int = 5, init: str = "sir",
                         n_proposals: int = 10_000, min_init_ess: float = 1_000.0, max_proposals: int = 1_000_000,
                         advise_budget: int = 20_000, return_info: bool = False,
                         warn: bool = True, labels=None):
        """Posterior draws for x_o: Tensor[n, dθ] for x_o [dx], Tensor[k, n, dθ] for a batch [k, dx] (all chains of
        all observations in one batched run, :func:`ebmlab.sbi.posterior.sample_batched`). Chains start from a SIR
        draw of ``n_proposals`` prior draws, doubled while their importance ESS is below ``min_init_ess``, up to
        ``max_proposals`` (:func:`~ebmlab.sbi.posterior.sir_init`): chains do not cross between mirror-image modes,
        so this ESS sets the draws' mode weights (two_moons, 10⁴ simulations: C2ST .571 with 10⁴ fixed proposals,
        .555 with the default doubling). ``sampler="auto"`` runs
        :func:`ebmlab.samplers.advise` on the batch first and uses its best sampler. With ``return_info=True``
        returns ``(samples, PosteriorInfo)`` (R̂, ESS, stuck chains per observation); ``labels`` name the
        observations in warnings and in the info (default 0..k-1, their rows in ``x_o``)."""
        from .._core.random import as_generator
        from .posterior import sample_batched

        self._check_fitted()
        if prior is not None and prior is not self.prior_ and getattr(prior, "name", None) != getattr(self.prior_, "name", None):
            raise ConfigError(f"prior {prior!r} differs from the one given to fit ({self.prior_!r})")
        task = self.prior_
        x_o = task.check_x(x_o, "x_o")
        single = x_o.ndim == 1
        x_batch = x_o.reshape(-1, task.dim_x)
        xi = self.x_std_(x_batch).float()
        g = as_generator(generator)
        potential = self.posterior_potential()

        def propose(n):
            phi = task.to_unconstrained(task.sample_prior(n, generator=g))
            eta = self.theta_std_(phi).float()
            return eta, (-self._prior_energy_eta(eta)).float()

        to_theta = lambda eta: task.from_unconstrained(self.theta_std_.inverse(eta.double()))
        advice, start = None, None
        if sampler == "auto":
            from ..samplers.advise import advise
            from .posterior import RowContextPotential, initial_states

            c = int(chains_per_observation)
            start = initial_states(potential, xi, c, propose, init=init, n_proposals=n_proposals,
                                   min_init_ess=min_init_ess, max_proposals=max_proposals, generator=g)
            advice = advise(RowContextPotential(potential, xi.repeat_interleave(c, 0)), start[0], budget=advise_budget,
                            groups=xi.shape[0], generator=g)
            sampler = advice.best
        def quotient(eta):
            # R-hat on the quotient by the task's exact symmetries: chains in mirror-image modes do not cross (their
            # weights come from the SIR start), so only within-mode mixing is diagnosed
            shape = eta.shape
            th = to_theta(eta.reshape(-1, shape[-1]))
            return self.theta_std_(task.to_unconstrained(task.canonical(th))).to(eta.dtype).reshape(shape)

        canonical = quotient if task.symmetries else None
        theta, info = sample_batched(potential, xi, n_samples, dim=task.dim_theta, propose=propose, to_theta=to_theta,
                                     sampler=sampler, chains_per_observation=chains_per_observation, burn_in=burn_in,
                                     thin=thin, init=init, n_proposals=n_proposals, min_init_ess=min_init_ess,
                                     max_proposals=max_proposals, generator=g, warn=warn,
                                     canonical=canonical, start=start, labels=labels)
        info.advice = advice
        theta = theta.float()
        out = theta[0] if single else theta
        return (out, info) if return_info else out


class NLE(_BaseEstimator):
    """Energy-based neural likelihood estimation (module docstring), sklearn-style.

    Parameters
    ----------
    objective : {"ed", "nce", "dsm", "pcd"}
        Training objective (default ``"ed"``, the best measured in ``ebmlab bench sbi``; ``"pcd"`` is persistent
        contrastive divergence on the joint energy, the maximum-likelihood training of AUNLE, with MALA chains
        kept in a :class:`~ebmlab.samplers.buffer.ReplayBuffer`).
    hidden, activation
        The MLP E_ψ(ξ | η) (:class:`~ebmlab.energies.conditional.ConditionalMLPEnergy`).
    steps, batch_size, lr
        Adam training (cosine learning-rate schedule) through :func:`ebmlab.fit`; default 30,000 steps (the
        length of the best two_moons row; training length is what improved C2ST most).
    objective_params : dict, optional
        Options of the objective (defaults: ED t = 0.01 (the noise variance on standardised data), M = 16; NCE
        ν = 4; DSM σ from 1 to 0.01, 10 levels; PCD 20 MALA steps per update, Gaussian re-initialisation).
        Measured on two_moons at 10⁴ simulations (mean C2ST, observations 1–3): ED t = 0.01 3,000 steps .805,
        t = 0.002 .832, PCD (MALA, step 10⁻³) .836; on observations 1–10, ED t = 0.01: 10,000 steps .761,
        16,000 steps .661, 30,000 steps .603 (ED t = 0.05 with 4,000 steps: .793). slcp prefers t = 0.05 (16,000 steps .770, 6,000
        steps .831, against t = 0.01 with 10,000 steps .889): pass ``objective_params={"t": 0.05, "m": 16}`` there.
    theta_input : {"bounded", "unconstrained"}
        What the network E_ψ(ξ | ·) is fed: ``"bounded"`` (default) the standardised parameters θ themselves,
        ``"unconstrained"`` the standardised unconstrained η that the chains move in.  Training and sampling stay
        in η either way (the prior tilt and the Jacobian are unchanged).  Measured on two_moons at 10⁴ simulations
        (30,000 steps, ED t = .01, seed 0, C2ST at 10,000 draws, observations 1–10, SIR start from a fixed 10⁴
        prior draws): "bounded" .571 ± .046 (``ebmlab.bench.sbi.run_case``), "unconstrained" .627 ± .075;
        observation 2, whose posterior sits in a corner of the prior box, .650 against .801.
    ensemble_size : int
        K ≥ 1 networks trained on the same simulations from different seeds (member k: ``random_state`` + k ·
        :data:`MEMBER_SEED_STRIDE`; member 0 is the single fit), combined as a product of experts: the mean energy
        E(ξ | η) = (1/K) Σ_k E_k(ξ | η), i.e. the geometric mean of the members' likelihoods.  Each member is
        normalised up to one global constant; their geometric mean is too, up to a factor ∫ Π_k p_k^{1/K} dξ ≤ 1
        (Hölder) that depends on η only through how much the members disagree there, which is the error an
        ensemble averages out.  Training costs K fits; sampling is one chain run on the mean energy.  Measured on
        slcp at 10⁴ simulations (ED t = .05, 30,000 steps, observations 1–10, C2ST at 10,000 draws): one network
        .771 ± .086, three .757 ± .065, five .728 ± .064 (a mixture of the five members' posteriors, 2,000 draws
        each: .722 ± .062): the members' errors in the mass of the four sign modes of (θ₃, θ₄) are partly
        independent and average out.  On two_moons three networks gave .553 against .555 (the error is shared).
    random_state : int, optional
        Seed of the weights and of training.

    Attributes (after fit)
    ----------------------
    energy_ : the tilted joint energy (over the members' mean energy when ``ensemble_size`` > 1); history_ :
    training history (member 0's); histories_ : every member's; seed_ : the run's seed; prior_ : the task.
    """

    _kind = "nle"

    def __init__(self, *, objective: str = "ed", hidden: Sequence[int] = (128, 128, 128), activation: str = "silu",
                 steps: int = 30_000, batch_size: int = 256, lr: float = 1e-3, objective_params: Optional[dict] = None,
                 theta_input: str = "bounded", ensemble_size: int = 1, random_state: Optional[int] = None):
        super().__init__(objective=objective, hidden=hidden, activation=activation, steps=steps,
                         batch_size=batch_size, lr=lr, objective_params=objective_params, ensemble_size=ensemble_size,
                         random_state=random_state)
        self.theta_input = theta_input

    def fit(self, theta, x, prior=None) -> "NLE":
        check_choice("theta_input", self.theta_input, THETA_INPUTS)
        self._ensemble_size()
        eta, xi = self._prepare(theta, x, prior)
        theta_std = None
        if self.theta_input == "bounded":
            theta_std = _Standardiser(prior.check_theta(theta, "theta").to(torch.float64))

        def build(seed):
            net = self._new_net(xi.shape[1], eta.shape[1], seed)
            if theta_std is not None:
                net = _BoundedThetaContext(net, prior, self.theta_std_, theta_std)
            return net, _TiltedJointEnergy(net, eta.shape[1], self._prior_energy_eta)

        net = self._fit_members(build, torch.cat([eta, xi], 1),
                                lambda: _build_objective(self.objective, self.objective_params))
        self.energy_ = _TiltedJointEnergy(net, eta.shape[1], self._prior_energy_eta).eval()
        for p in self.energy_.parameters():
            p.requires_grad_(False)
        return self

    def posterior_potential(self):
        energy = self.energy_
        return lambda eta, xi: energy(torch.cat([eta, xi.to(eta)], 1))


class NPE(_BaseEstimator):
    """Amortised posterior energy U_ψ(η | ξ) (module docstring), sklearn-style; parameters as :class:`NLE`
    (``ensemble_size`` > 1: the mean of K posterior energies, a product of the members' posteriors)."""

    _kind = "npe"

    def fit(self, theta, x, prior=None) -> "NPE":
        if self.objective == "pcd":
            raise ConfigError("objective 'pcd' trains the joint energy of NLE only; NPE takes ed, nce or dsm")
        self._ensemble_size()
        eta, xi = self._prepare(theta, x, prior)

        def build(seed):
            net = self._new_net(eta.shape[1], xi.shape[1], seed)
            return net, net

        net = self._fit_members(build, torch.cat([eta, xi], 1), lambda: ContextObjective(
            _build_objective(self.objective, self.objective_params), eta.shape[1]))
        self.energy_ = net.eval()
        for p in self.energy_.parameters():
            p.requires_grad_(False)
        return self

    def posterior_potential(self):
        energy = self.energy_
        return lambda eta, xi: energy(eta, context=xi.to(eta))
