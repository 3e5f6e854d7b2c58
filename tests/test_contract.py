"""The contract of every registered component, read from the registries at collection time.

Every sampler (``ebmlab.samplers.base.SAMPLERS``), objective (``ebmlab.objectives.base.OBJECTIVES``, plus ED
with every registered perturbation) and energy (``ebmlab.energies.registry.ENERGIES``) is tested here, after
every module of ``ebmlab`` has been imported, so a component registered later is tested without anyone adding it
to a list.  What is checked, per component:

- samplers (``sample`` and ``init``/``step``): shapes, dtypes float32/float64 kept, the ``device`` of the chains
  kept, ``step`` pure (its input state is never modified), the cached energy/gradient equal to a fresh
  evaluation, the same generator seed giving the same draws, and ``torch.get_rng_state()`` left unchanged;
- objectives: a finite scalar loss of the batch's dtype/device, finite gradients reaching every trainable
  parameter (of the energy, and the objective's own ``parameters()``), nonzero unless the parameter only adds
  a constant to U; the batch and the energy left unmodified; the same generator seed giving the same loss;
  the global RNG untouched; ``state_dict`` / ``load_state_dict`` round-tripping through safetensors;
- energies: ``U(x)`` of shape [batch] in the input's dtype/device, deterministic, not modifying x;
  ``energy_and_grad``, ``grad`` and ``score`` equal to autograd of ``forward``; every parameter moving U;
  ``delta`` (discrete energies) equal to brute-force flips; ``log_normalizer`` (where given) equal to
  enumeration or quadrature; the state dict round-tripping through safetensors.

Which data a component gets is derived from its attributes, not from its name: a sampler or energy with
``discrete = True`` gets {0,1} states, an objective with ``continuous = False`` (or, when it does not say, one
whose ``sampler`` is discrete) gets {0,1} data and the registered discrete energies, everything else gets real
vectors.  Components that do not build with their defaults need an entry in the factory tables below; a
registered component that neither builds with its defaults nor has an entry FAILS (it is not skipped).
"""
from __future__ import annotations

import copy
import importlib
import inspect
import itertools
import math
import pkgutil
from typing import Callable, Dict, List, Tuple

import pytest
import torch
from safetensors.torch import load_file, save_file

import ebmlab
from ebmlab._core.random import init_parameters_
from ebmlab.energies import Energy, IsingLattice
from ebmlab.energies.registry import ENERGIES
from ebmlab.objectives.base import OBJECTIVES, LossOutput, Objective
from ebmlab.objectives.perturbations import PERTURBATIONS
from ebmlab.samplers import sample
from ebmlab.samplers.base import SAMPLERS, Info, Sampler, SamplerState

# Import every module so that every registration in the package has run before the registries are read.
for _module in pkgutil.walk_packages(ebmlab.__path__, "ebmlab."):
    importlib.import_module(_module.name)

# ---------------------------------------------------------------------------------------------------------------
# The only per-component tables.  Add an entry ONLY for a component that cannot be built with its defaults
# (or whose defaults cannot run on the generic targets below), with a comment saying why.
# ---------------------------------------------------------------------------------------------------------------
#: sampler name -> () -> Sampler
SAMPLER_FACTORIES: Dict[str, Callable[[], Sampler]] = {}
#: sampler name -> (dtype, device) -> (energy, x0 [CHAINS, ...]): targets for samplers that need a special energy
SAMPLER_TARGETS: Dict[str, Callable[[torch.dtype, str], Tuple[Energy, torch.Tensor]]] = {}
#: objective name -> () -> Objective
OBJECTIVE_FACTORIES: Dict[str, Callable[[], Objective]] = {}
#: energy name -> (dim) -> Energy
ENERGY_FACTORIES: Dict[str, Callable[[int], Energy]] = {}

CONTINUOUS_DIM = 2  # small enough for a quadrature check of log Z
DISCRETE_DIM = 6  # 2^6 states: small enough for exact enumeration
CHAINS = 6
N_BATCH = 24
DTYPES = [torch.float32, torch.float64]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def _gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _tensors_equal(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def _safetensors_round_trip(state: Dict[str, torch.Tensor], path) -> Dict[str, torch.Tensor]:
    """Save ``state`` with safetensors and read it back (tensors are cloned first, as ebmlab's checkpoints do:
    safetensors refuses tensors sharing storage)."""
    for key, value in state.items():
        assert isinstance(value, torch.Tensor), f"state_dict entry {key!r} is a {type(value).__name__}, not a Tensor"
    save_file({k: v.detach().cpu().clone().contiguous() for k, v in state.items()}, str(path))
    return load_file(str(path))


def _factory_discrete(registry, name: str) -> bool:
    return bool(getattr(registry.get(name), "discrete", False))


# ---------------------------------------------------------------------------------------------------------------
# Energies
# ---------------------------------------------------------------------------------------------------------------
ENERGY_NAMES = ENERGIES.names()


def _energy_dim(name: str) -> int:
    return DISCRETE_DIM if _factory_discrete(ENERGIES, name) else CONTINUOUS_DIM


def build_energy(name: str, seed: int = 0) -> Energy:
    """The registered energy ``name`` for its dimension, with weights drawn from an explicit generator and
    every parameter moved by N(0, 0.1^2) noise, so that no parameter sits at a special value (zero
    couplings, identity precision) that would hide a bug."""
    dim = _energy_dim(name)
    if name in ENERGY_FACTORIES:
        energy = ENERGY_FACTORIES[name](dim)
    else:
        try:
            energy = ENERGIES.build(name, dim=dim)
        except Exception as err:  # noqa: BLE001 - reported as a failure of the contract
            pytest.fail(f"energy {name!r} is registered but does not build with build_energy({name!r}, dim={dim}) "
                        f"({type(err).__name__}: {err}); add a factory to ENERGY_FACTORIES in tests/test_contract.py")
    assert isinstance(energy, Energy), f"energy {name!r} built a {type(energy).__name__}, not an Energy"
    g = _gen(1000 + seed)
    init_parameters_(energy, g)
    with torch.no_grad():
        for p in energy.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return energy


def energy_data(discrete: bool, dim: int, n: int, dtype=torch.float64, device="cpu", seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    if discrete:
        x = (torch.rand(n, dim, generator=g, dtype=torch.float64) < 0.4).to(dtype)
    else:
        x = torch.randn(n, dim, generator=g, dtype=torch.float64).to(dtype)
    return x.to(device)


def _autograd_energy_and_grad(energy: Energy, x: torch.Tensor):
    """(U(x), ∇_x U(x)) by autograd of ``forward``; the gradient is ``None`` when U is not differentiable in x
    (graph statistics computed outside torch, say): its forward then returns no graph to x, or refuses an x that
    requires grad with an ebmlab error."""
    xr = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        try:
            u = energy(xr)
        except (ebmlab.ConfigError, ebmlab.DataError):
            return energy(x.detach()).detach(), None
        if not u.requires_grad:
            return u.detach(), None
        (g,) = torch.autograd.grad(u.sum(), xr, allow_unused=True)
    return u.detach(), g


def test_every_registry_is_populated():
    # a registry emptied by an import error would make every parametrised test below vanish silently
    assert SAMPLERS.names() and OBJECTIVES.names() and ENERGIES.names() and PERTURBATIONS.names()


@pytest.mark.parametrize("name", ENERGY_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_energy_shapes_dtype_device_purity(name, dtype, device):
    energy = build_energy(name).to(device=device, dtype=dtype)
    discrete = bool(getattr(energy, "discrete", False))
    # the CLI reads ``discrete`` from the registered factory before building: it must match the instance
    assert discrete == _factory_discrete(ENERGIES, name)
    x = energy_data(discrete, _energy_dim(name), 7, dtype, device)
    x_copy = x.clone()
    u = energy(x)
    assert u.shape == (7,) and u.dtype == dtype and u.device.type == device
    assert torch.isfinite(u).all()
    assert torch.equal(x, x_copy), "forward modified its input"
    assert torch.equal(energy(x), u), "forward is not deterministic"
    if _autograd_energy_and_grad(energy, x)[1] is not None:
        u2, g2 = energy.energy_and_grad(x)
        assert u2.shape == (7,) and g2.shape == x.shape and u2.dtype == dtype and g2.dtype == dtype
        assert u2.device.type == device and g2.device.type == device
        assert not u2.requires_grad and not g2.requires_grad, "energy_and_grad must return detached tensors"
        assert torch.equal(x, x_copy), "energy_and_grad modified its input"
    if getattr(energy, "noise_conditional", False):
        sig = torch.full((7,), 0.5, dtype=dtype, device=device)
        us = energy(x, sig)
        assert us.shape == (7,) and us.dtype == dtype and torch.isfinite(us).all()
    if callable(getattr(energy, "delta", None)):
        d = energy.delta(x)
        assert d.shape == x.reshape(7, -1).shape and d.dtype == dtype and d.device.type == device
        assert torch.equal(x, x_copy), "delta modified its input"


@pytest.mark.parametrize("name", ENERGY_NAMES)
def test_energy_gradients_agree_with_autograd(name):
    energy = build_energy(name).double()
    discrete = bool(getattr(energy, "discrete", False))
    dim = _energy_dim(name)
    x = energy_data(discrete, dim, 9)
    u_ref, g_ref = _autograd_energy_and_grad(energy, x)
    rng = torch.get_rng_state()
    if g_ref is None:
        # U is not differentiable in x: asking for its gradient must say so, not return something
        for method in (energy.energy_and_grad, energy.grad, energy.score):
            with pytest.raises(ebmlab.ConfigError):
                method(x)
    else:
        u, g = energy.energy_and_grad(x)
        torch.testing.assert_close(u, u_ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(energy.grad(x), g_ref, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(energy.score(x), -g_ref, rtol=1e-8, atol=1e-10)
    if callable(getattr(energy, "delta", None)):
        flat = x.reshape(9, -1)
        brute = torch.stack([energy(flat.clone().index_put_((torch.arange(9), torch.full((9,), i)),
                                                           1 - flat[:, i])) for i in range(flat.shape[1])], dim=1)
        torch.testing.assert_close(energy.delta(x), brute - energy(x)[:, None], rtol=1e-9, atol=1e-9)
    assert torch.equal(torch.get_rng_state(), rng), "evaluating the energy touched the global RNG"
    # every parameter moves U somewhere (a parameter with no effect is a bug)
    params = [(n, p) for n, p in energy.named_parameters() if p.requires_grad]
    if params:
        grads = torch.autograd.grad(energy(x).pow(2).sum(), [p for _, p in params], allow_unused=True)
        for (pname, _), gp in zip(params, grads):
            assert gp is not None and bool(gp.abs().max() > 0), f"parameter {pname} of {name!r} does not affect U"


@pytest.mark.parametrize("name", ENERGY_NAMES)
def test_energy_log_normalizer_is_exact(name):
    energy = build_energy(name).double()
    log_z = energy.log_normalizer()
    if log_z is None:
        return  # nothing claimed, nothing to check
    if getattr(energy, "discrete", False):
        states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=DISCRETE_DIM)), dtype=torch.float64)
        exact = torch.logsumexp(-energy(states), 0)
        torch.testing.assert_close(log_z.double(), exact, rtol=0, atol=1e-9)
    else:
        # midpoint rule on [-12, 12]^2 (the perturbed energies keep their mass well inside)
        k, half = 1200, 12.0
        h = 2 * half / k
        c = -half + h * (torch.arange(k, dtype=torch.float64) + 0.5)
        grid = torch.cartesian_prod(c, c)
        with torch.no_grad():
            quad = torch.logsumexp(-energy(grid), 0) + 2 * math.log(h)
        torch.testing.assert_close(log_z.double(), quad, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ENERGY_NAMES)
def test_energy_state_dict_round_trips_through_safetensors(name, tmp_path):
    energy = build_energy(name, seed=0).double()
    fresh = build_energy(name, seed=1).double()
    discrete = bool(getattr(energy, "discrete", False))
    x = energy_data(discrete, _energy_dim(name), 11)
    if any(True for _ in energy.parameters()):
        assert not torch.equal(fresh(x), energy(x)), "two differently initialised copies agree: the test is void"
    loaded = _safetensors_round_trip(energy.state_dict(), tmp_path / "energy.safetensors")
    fresh.load_state_dict(loaded, strict=True)
    assert torch.equal(fresh(x), energy(x))
    assert _tensors_equal(fresh.state_dict(), energy.state_dict())


@pytest.mark.parametrize("name", ENERGY_NAMES)
def test_energy_sample_is_reproducible_if_offered(name):
    energy = build_energy(name).double()
    if not callable(getattr(energy, "sample", None)):
        return  # most learned energies cannot sample exactly; samplers are tested below
    rng = torch.get_rng_state()
    a = energy.sample(5, generator=_gen(7))
    b = energy.sample(5, generator=_gen(7))
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert torch.equal(torch.get_rng_state(), rng)


# ---------------------------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------------------------
class HalfSquare(Energy):
    """U(x) = ½ |x|² summed over every event dimension (works for any event shape)."""

    def forward(self, x):
        return 0.5 * x.pow(2).reshape(x.shape[0], -1).sum(-1)


#: the discrete target: a small ferromagnetic periodic lattice with a field, which every sampler for {0,1} states
#: (single-site, blocked, gradient-informed and cluster moves) must handle; odd side, so block samplers need
#: three colours
LATTICE_SIDE = 3


def build_sampler(name: str) -> Sampler:
    if name in SAMPLER_FACTORIES:
        sampler = SAMPLER_FACTORIES[name]()
    else:
        try:
            sampler = SAMPLERS.build(name)
        except Exception as err:  # noqa: BLE001
            pytest.fail(f"sampler {name!r} is registered but does not build with its defaults "
                        f"({type(err).__name__}: {err}); add a factory to SAMPLER_FACTORIES in tests/test_contract.py")
    assert isinstance(sampler, Sampler), f"sampler {name!r} built a {type(sampler).__name__}, not a Sampler"
    return sampler


def sampler_target(name: str, sampler: Sampler, event_shape, dtype, device, seed: int = 0):
    """(energy, x0) for ``sampler``: the lattice for discrete samplers, ½|x|² otherwise."""
    if name in SAMPLER_TARGETS:
        return SAMPLER_TARGETS[name](dtype, device)
    g = _gen(seed)
    if getattr(sampler, "discrete", False):
        energy = IsingLattice(LATTICE_SIDE, coupling=0.3, field=0.1, periodic=True).to(device=device, dtype=dtype)
        x0 = (torch.rand(CHAINS, LATTICE_SIDE**2, generator=g, dtype=torch.float64) < 0.5).to(dtype).to(device)
    else:
        energy = HalfSquare()
        x0 = torch.randn((CHAINS, *event_shape), generator=g, dtype=torch.float64).to(dtype).to(device)
    return energy, x0


def _sampler_cases() -> List:
    cases = []
    for name in SAMPLERS.names():
        if _factory_discrete(SAMPLERS, name) or name in SAMPLER_TARGETS:
            cases.append(pytest.param(name, None, id=f"{name}-states"))
        else:
            cases += [pytest.param(name, (2,), id=f"{name}-vector"), pytest.param(name, (2, 3), id=f"{name}-matrix")]
    return cases


SAMPLER_CASES = _sampler_cases()


@pytest.mark.parametrize("name, event_shape", SAMPLER_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_sampler_shapes_dtype_device(name, event_shape, dtype, device):
    sampler = build_sampler(name)
    energy, x0 = sampler_target(name, sampler, event_shape, dtype, device)
    x, info = sample(energy, sampler, x0, steps=7, burn_in=3, thin=3, generator=_gen(1, device), warn=False)
    assert x.shape == (math.ceil(7 / 3), *x0.shape)
    assert x.dtype == dtype and x.device.type == device
    assert torch.isfinite(x).all()
    if getattr(sampler, "discrete", False):
        assert bool(((x == 0) | (x == 1)).all()), "a discrete sampler left {0,1}"
    assert info.acceptance_per_chain.shape == (CHAINS,)
    assert 0.0 <= info.acceptance_rate <= 1.0
    assert info.state.x.dtype == dtype and info.state.x.device.type == device


@pytest.mark.parametrize("name, event_shape", SAMPLER_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sampler_step_is_pure_and_caches_the_energy(name, event_shape, dtype):
    sampler = build_sampler(name)
    energy, x0 = sampler_target(name, sampler, event_shape, dtype, "cpu")
    x0_copy = x0.clone()
    state = sampler.init(energy, x0)
    assert isinstance(state, SamplerState)
    assert torch.equal(x0, x0_copy), "init modified x0"
    snapshot = {k: v.clone() for k, v in vars(state).items() if isinstance(v, torch.Tensor)}
    extra = {k: v.clone() for k, v in state.extra.items() if isinstance(v, torch.Tensor)}
    g = _gen(3)
    new = state
    for _ in range(5):
        new, info = sampler.step(energy, new, generator=g)
        assert isinstance(info, Info)
        assert info.acceptance_rate.shape == (CHAINS,) and info.accepted.dtype == torch.bool
        assert info.accepted.shape == (CHAINS,) and info.divergent.shape == (CHAINS,)
        assert bool(((info.acceptance_rate >= 0) & (info.acceptance_rate <= 1)).all())
        assert info.n_grad_evals >= 1
        assert new.x.dtype == dtype and new.x.shape == x0.shape
    assert torch.equal(x0, x0_copy)
    for k, v in snapshot.items():
        assert torch.equal(getattr(state, k), v), f"step modified state.{k} in place"
    for k, v in extra.items():
        assert torch.equal(state.extra[k], v), f"step modified state.extra[{k!r}] in place"
    assert not torch.equal(new.x, state.x), "five steps did not move any chain"
    # the cached energy (and gradient) agree with a fresh evaluation at the new point
    u, grad = energy.energy_and_grad(new.x)
    torch.testing.assert_close(new.energy, u)
    if new.grad is not None:
        torch.testing.assert_close(new.grad, grad)
    elif getattr(sampler, "uses_grad", True) and not getattr(sampler, "discrete", False):
        pytest.fail(f"{name} declares uses_grad but caches no gradient")


@pytest.mark.parametrize("name, event_shape", SAMPLER_CASES)
def test_sampler_is_reproducible_and_leaves_the_global_rng_alone(name, event_shape):
    sampler = build_sampler(name)
    energy, x0 = sampler_target(name, sampler, event_shape, torch.float64, "cpu")
    x0_copy = x0.clone()
    rng = torch.get_rng_state()
    a, _ = sample(energy, sampler, x0, steps=5, burn_in=5, generator=_gen(42), warn=False)
    b, _ = sample(energy, sampler, x0, steps=5, burn_in=5, generator=42, warn=False)  # an int seed works too
    c, _ = sample(energy, sampler, x0, steps=5, burn_in=5, generator=_gen(43), warn=False)
    state = sampler.init(energy, x0)
    for _ in range(3):
        state, _ = sampler.step(energy, state, generator=_gen(5))
    assert torch.equal(torch.get_rng_state(), rng), "sampling with a generator touched the global RNG"
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x0, x0_copy)  # the runner never modifies x0


# ---------------------------------------------------------------------------------------------------------------
# Objectives
# ---------------------------------------------------------------------------------------------------------------
def _objective_variants() -> List[Tuple[str, str, dict]]:
    """(case id, registered name, constructor options): every objective with its defaults, and every objective
    taking a ``perturbation`` with each registered perturbation other than its default."""
    variants = []
    for name in OBJECTIVES.names():
        variants.append((name, name, {}))
        try:
            params = inspect.signature(OBJECTIVES.get(name)).parameters
        except (TypeError, ValueError):
            continue
        if "perturbation" in params:
            default = params["perturbation"].default
            for pert in PERTURBATIONS.names():
                if pert != default:
                    variants.append((f"{name}+{pert}", name, {"perturbation": pert}))
    return variants


def build_objective(name: str, options: dict) -> Objective:
    if not options and name in OBJECTIVE_FACTORIES:
        obj = OBJECTIVE_FACTORIES[name]()
    else:
        try:
            obj = OBJECTIVES.build(name, **options)
        except Exception as err:  # noqa: BLE001
            pytest.fail(f"objective {name!r} is registered but does not build with {options or 'its defaults'} "
                        f"({type(err).__name__}: {err}); add a factory to OBJECTIVE_FACTORIES in "
                        f"tests/test_contract.py")
    assert callable(obj), f"objective {name!r} built a non-callable {type(obj).__name__}"
    return obj


def objective_is_continuous(obj) -> bool:
    """From the objective's attributes: ``continuous`` if it says, else the kind of its sampler."""
    flag = getattr(obj, "continuous", None)
    if flag is None:
        sampler = getattr(obj, "sampler", None)
        if sampler is None:
            pytest.fail(f"{type(obj).__name__} declares neither `continuous` nor a `sampler`: the contract test "
                        f"cannot tell which data it takes; give the class a `continuous` attribute")
        flag = not getattr(sampler, "discrete", False)
    return bool(flag)


def _objective_cases() -> List:
    """(case id, options, energy name) for every objective variant and every registered energy of its kind."""
    cases = []
    for case, name, options in _objective_variants():
        # a failure here becomes a case whose test reports it (with the message of build_objective or
        # objective_is_continuous), so a broken component fails instead of vanishing from the list
        try:
            obj = OBJECTIVES.build(name, **options) if options or name not in OBJECTIVE_FACTORIES else \
                OBJECTIVE_FACTORIES[name]()
        except BaseException:  # noqa: BLE001
            cases.append(pytest.param(case, name, options, None, id=f"{case}-unbuildable"))
            continue
        try:
            continuous = objective_is_continuous(obj)
        except BaseException:  # noqa: BLE001
            cases.append(pytest.param(case, name, options, None, id=f"{case}-kind-undeclared"))
            continue
        energies = [e for e in ENERGY_NAMES if _factory_discrete(ENERGIES, e) != continuous]
        if not energies:
            cases.append(pytest.param(case, name, options, None, id=f"{case}-no-energy"))
        cases += [pytest.param(case, name, options, e, id=f"{case}-{e}") for e in energies]
    return cases


OBJECTIVE_CASES = _objective_cases()


def _objective_setup(name, options, energy_name, dtype=torch.float64, device="cpu", seed=0):
    obj = build_objective(name, options)
    continuous = objective_is_continuous(obj)
    if energy_name is None:
        pytest.fail(f"no registered energy takes the data of objective {name!r} (continuous={continuous})")
    energy = build_energy(energy_name, seed=seed).to(device=device, dtype=dtype)
    assert bool(getattr(energy, "discrete", False)) != continuous
    dim = _energy_dim(energy_name)
    batch = energy_data(not continuous, dim, N_BATCH, dtype, device, seed=10 + seed)
    train = energy_data(not continuous, dim, 200, dtype, device, seed=20 + seed)
    return obj, energy, batch, train


def _shift_only(energy: Energy, x: torch.Tensor) -> Dict[str, bool]:
    """Which parameters only add a constant to U (equal ∂U(x)/∂p at every x): objectives that see U only up to a
    constant (score matching, CD, ED, ...) give them a zero gradient, which is correct."""
    params = [(n, p) for n, p in energy.named_parameters() if p.requires_grad]
    rows = []
    for i in range(3):
        gs = torch.autograd.grad(energy(x[i:i + 1]).sum(), [p for _, p in params], allow_unused=True)
        rows.append([torch.zeros_like(p) if g is None else g for (_, p), g in zip(params, gs)])
    tol = 1e-5 if x.dtype == torch.float32 else 1e-10
    return {n: all(torch.allclose(rows[0][k], rows[i][k], atol=tol, rtol=0) for i in (1, 2))
            for k, (n, _) in enumerate(params)}


@pytest.mark.parametrize("case, name, options, energy_name", OBJECTIVE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_objective_loss_dtype_device_and_gradients(case, name, options, energy_name, dtype, device):
    obj, energy, batch, _ = _objective_setup(name, options, energy_name, dtype, device)
    if callable(getattr(obj, "to", None)):
        obj.to(device)
    out = obj(energy, batch, generator=_gen(1, device))
    if getattr(obj, "needs_sampler", False):
        assert isinstance(getattr(obj, "sampler", None), Sampler), f"{case}: needs_sampler but has no Sampler object"
    assert isinstance(out, LossOutput)
    assert out.loss.shape == () and out.loss.dtype == dtype and out.loss.device.type == device
    assert torch.isfinite(out.loss), f"{case}: loss {out.loss}"
    for key, value in out.stats.items():
        assert isinstance(value, float), f"{case}: stat {key!r} is a {type(value).__name__}, not a float"
    out.loss.backward()
    shift_only = _shift_only(energy, batch)
    for pname, p in energy.named_parameters():
        if not p.requires_grad:
            continue
        if shift_only[pname] and p.grad is None:
            continue  # a constant offset of U, invisible to the objective
        assert p.grad is not None, f"{case}: no gradient reaches energy parameter {pname}"
        assert torch.isfinite(p.grad).all(), f"{case}: non-finite gradient of {pname}"
        if not shift_only[pname]:
            assert bool(p.grad.abs().max() > 0), f"{case}: zero gradient of energy parameter {pname}"
    for k, p in enumerate(obj.parameters() if callable(getattr(obj, "parameters", None)) else ()):
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{case}: objective parameter {k}"
            assert bool(p.grad.abs().max() > 0), f"{case}: zero gradient of objective parameter {k}"


@pytest.mark.parametrize("case, name, options, energy_name", OBJECTIVE_CASES)
def test_objective_is_pure_reproducible_and_leaves_the_global_rng_alone(case, name, options, energy_name):
    obj_a, energy_a, batch, train = _objective_setup(name, options, energy_name)
    obj_b = build_objective(name, options)
    energy_b = copy.deepcopy(energy_a)
    batch_copy, params = batch.clone(), {k: v.clone() for k, v in energy_a.state_dict().items()}
    rng = torch.get_rng_state()
    losses = []
    for obj, energy in ((obj_a, energy_a), (obj_b, energy_b)):
        if callable(getattr(obj, "prepare", None)):
            obj.prepare(train)
        g = _gen(7)
        # two calls: the first one also initialises any state (buffers, reference samples, fitted noise)
        losses.append([obj(energy, batch, generator=g).loss.detach() for _ in range(2)])
    assert torch.equal(torch.get_rng_state(), rng), f"{case} given a generator touched the global RNG"
    assert torch.equal(batch, batch_copy), f"{case} modified the batch"
    assert _tensors_equal(energy_a.state_dict(), params), f"{case} modified the energy"
    assert torch.equal(torch.stack(losses[0]), torch.stack(losses[1])), f"{case}: same seed, different losses"


@pytest.mark.parametrize("case, name, options, energy_name", OBJECTIVE_CASES)
def test_objective_state_dict_round_trips_through_safetensors(case, name, options, energy_name, tmp_path):
    obj, energy, batch, train = _objective_setup(name, options, energy_name)
    if not callable(getattr(obj, "state_dict", None)):
        return  # a plain callable without state
    assert callable(getattr(obj, "load_state_dict", None)), f"{case} has state_dict but no load_state_dict"
    if callable(getattr(obj, "prepare", None)):
        obj.prepare(train)
    obj(energy, batch, generator=_gen(1))  # creates the state (buffer, reference, noise)
    with torch.no_grad():  # as after optimizer steps: own parameters (NCE's log Z) away from their initial values
        for p in (obj.parameters() if callable(getattr(obj, "parameters", None)) else ()):
            p.add_(0.3)
    state = obj.state_dict()
    loaded = _safetensors_round_trip(state, tmp_path / "objective.safetensors")
    fresh = build_objective(name, options)
    if callable(getattr(fresh, "prepare", None)):  # what ebmlab.fit does on resume: prepare, then load
        fresh.prepare(train)
    fresh.load_state_dict(loaded)
    assert _tensors_equal(fresh.state_dict(), state), f"{case}: state_dict changed through save/load"
    other = energy_data(bool(getattr(energy, "discrete", False)), _energy_dim(energy_name), N_BATCH, seed=99)
    a = obj(energy, other, generator=_gen(2)).loss.detach()
    b = fresh(copy.deepcopy(energy), other, generator=_gen(2)).loss.detach()
    assert torch.equal(a, b), f"{case}: a restored objective computes a different loss ({float(a)} vs {float(b)})"
