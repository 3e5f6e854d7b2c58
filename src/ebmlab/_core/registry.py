"""Name -> factory registries, so the CLI and the facade can build components from strings."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from .errors import ConfigError


class Registry:
    """A mapping from names to factories (classes or functions).

    Parameters
    ----------
    kind : str
        What the registry holds ("objective", "sampler", ...), used in error messages.

    Examples
    --------
    >>> objectives = Registry("objective")
    >>> @objectives.register("cd")
    ... class ContrastiveDivergence: ...
    >>> objectives.names()
    ['cd']
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._items and self._items[name] is not factory:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = factory
            return factory

        return deco

    def names(self) -> List[str]:
        return sorted(self._items)

    def get(self, name: str) -> Callable[..., Any]:
        if not isinstance(name, str) or name not in self._items:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid names are: {', '.join(self.names())}"
            )
        return self._items[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        factory = self.get(name)
        allowed = self.options(name)
        if allowed is not None:
            unknown = sorted(str(k) for k in kwargs if k not in allowed)
            if unknown:
                raise ConfigError(f"{self.kind} {name!r} has no option {', '.join(map(repr, unknown))}; allowed "
                                  f"options: {', '.join(allowed) or '(none)'}")
        try:
            return factory(**kwargs)
        except TypeError as err:  # a missing or ill-typed argument -> a readable message
            hint = f"; allowed options: {', '.join(allowed)}" if allowed else ""
            raise ConfigError(f"bad options for {self.kind} {name!r}: {str(err).splitlines()[0] if str(err) else err}"
                              f"{hint}") from None

    def options(self, name: str) -> Optional[List[str]]:
        """The keyword options that the factory of ``name`` accepts (None when it takes ``**kwargs``)."""
        import inspect

        factory = self.get(name)
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):
            return None
        params = list(sig.parameters.values())
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self.names())
