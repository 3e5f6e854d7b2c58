"""Internal helpers shared by every layer: errors, registries, validation, RNG."""
from .errors import ConfigError, DataError, EbmlabError, TrainingDivergedError
from .registry import Registry

__all__ = ["ConfigError", "DataError", "EbmlabError", "Registry", "TrainingDivergedError"]
