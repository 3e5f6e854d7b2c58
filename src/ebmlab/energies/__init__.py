"""Energies U(x): the base contract, neural nets, analytic targets, discrete models."""
from .base import Energy, FunctionEnergy
from .mlp import MLPEnergy, activation_names
from .conv import ClassConditionalEnergy, ClassifierEnergy, ConvClassifier, ConvEnergy, ScaledEnergy
from .registry import ENERGIES, build_energy
from .binary_mlp import BinaryMLPEnergy
from .flip_delta import flip_all, flip_delta
from .product_bernoulli import BernoulliNoise, ProductBernoulli, bernoulli_base_probs
from .analytic import Banana, DoubleWell, Gaussian, GaussianMixture
from .quadratic import Quadratic
from .noise_conditional import NoiseConditionalMLPEnergy
from .binary import from_spins, to_spins
from .ising import Ising, IsingLattice
from .ergm import ERGMEnergy
from .targets import Funnel, ManyWell, ShiftedMixture, gmm40_target, grid_target
