"""Learned diffusion samplers for unnormalised densities (Richter & Berner 2024, "Improved sampling via learned
diffusions"): the VP reference SDE, the controlled chain and its exact path weights, the log-variance and
reverse-KL losses, and :class:`DiffusionSampler`."""
from .sde import Paths, VPSchedule, kl_loss, log_variance_loss, log_standard_normal, simulate
from .control import FourierControl
from .sampler import DiffusionSampler, effective_sample_size_from_log_weights, log_z_from_log_weights

__all__ = ["Paths", "VPSchedule", "kl_loss", "log_variance_loss", "log_standard_normal", "simulate", "FourierControl",
           "DiffusionSampler", "effective_sample_size_from_log_weights", "log_z_from_log_weights"]
