"""Offline checks of the deployment files: compose, Helm chart, Grafana dashboard.

Helpers shared by the test modules live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate mapping keys (Kubernetes' strict decoding does too)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> Any:
    """One YAML document, duplicate keys rejected."""
    return yaml.load(text, Loader=UniqueKeyLoader)


def load_yaml_all(text: str) -> list[Any]:
    """Every non-empty document of a YAML stream, duplicate keys rejected."""
    return [doc for doc in yaml.load_all(text, Loader=UniqueKeyLoader) if doc]
