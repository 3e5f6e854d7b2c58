"""The one YAML reader of ebmlab (standard library + PyYAML only): ``yaml.safe_load`` that refuses duplicate keys
and reads ``1e-3`` / ``1.0e4`` as numbers (YAML 1.2 and Python do; PyYAML's YAML 1.1 reads them as strings)."""
from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice (YAML itself would keep the last one)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: the constructor below reports it
            continue
        if duplicate:
            raise ConfigError(f"key {key!r} appears twice (line {key_node.start_mark.line + 1}); give each key once")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)
# YAML 1.1 (PyYAML) reads 1e-3 and 1.0e4 as strings; as in YAML 1.2 and Python, they are numbers here.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (raises ConfigError) -- the one YAML reader of the command."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
