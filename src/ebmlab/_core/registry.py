"""Name -> factory registries, so the CLI and the facade can build components from strings."""
from __future__ import annotations

from typing import Any, Callable, Dict, List

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
        try:
            return factory(**kwargs)
        except TypeError as err:  # unexpected keyword -> a readable message
            raise ConfigError(f"bad options for {self.kind} {name!r}: {err}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self.names())
