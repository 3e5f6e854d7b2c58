"""Parameter access for the scikit-learn-style facades (``EnergyModel``, ``GEBM``, ``JEM``, ``LatentEBM``, ...).

One implementation of scikit-learn's estimator conventions (Pedregosa et al. 2011, "Scikit-learn: machine learning
in Python"; Buitinck et al. 2013, "API design for machine learning software"): the keyword-only constructor
parameters are the one list of a model's options; ``get_params`` returns them (with ``deep``, also
``name__key`` for every parameter value that has ``get_params`` itself), ``set_params`` sets them (``name__key``
sets ``key`` of an estimator-valued parameter) and refuses unknown names with a one-line ``ConfigError`` that lists
the valid ones; ``repr`` shows them.  The constructor only stores its arguments (validation happens in ``fit``).
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List

from .errors import ConfigError


class ParamsMixin:
    """``parameter_names`` / ``get_params`` / ``set_params`` / ``__repr__`` from the keyword-only constructor."""

    @classmethod
    def parameter_names(cls) -> List[str]:
        """The constructor's keyword-only parameters, in order: the one list of this model's options."""
        return [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        """The constructor parameters; with ``deep``, also ``name__key`` for every parameter value that itself has
        ``get_params`` (scikit-learn's definition)."""
        out: Dict[str, Any] = {}
        for k in self.parameter_names():
            v = getattr(self, k)
            if deep and hasattr(v, "get_params") and not isinstance(v, type):
                out.update((f"{k}__{sk}", sv) for sk, sv in v.get_params().items())
            out[k] = v
        return out

    def set_params(self, **params: Any):
        """Set constructor parameters (``name__key`` sets ``key`` of an estimator-valued parameter); returns self."""
        names = self.parameter_names()
        nested: Dict[str, Dict[str, Any]] = {}
        for k in params:
            head, sep, _ = k.partition("__")
            if head not in names:
                raise ConfigError(f"unknown parameter {head!r} of {type(self).__name__}; valid parameters are: "
                                  f"{', '.join(names)}")
            if sep and not hasattr(getattr(self, head), "set_params"):
                raise ConfigError(f"parameter {head!r} has no nested parameters (cannot set {k!r})")
        for k, v in params.items():
            head, sep, sub = k.partition("__")
            if sep:
                nested.setdefault(head, {})[sub] = v
            else:
                setattr(self, k, v)
        for head, sub in nested.items():
            getattr(self, head).set_params(**sub)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.parameter_names())})"
