"""The training loop (:func:`fit`), checkpoints, history, data parallelism."""
from .checkpoint import load_checkpoint, save_checkpoint
from .fit import fit, resolve_device
from .history import History
