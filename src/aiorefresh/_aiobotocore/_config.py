"""botocore ``Config`` objects: compared by value, merged, and copied for botocore to edit."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .._util import freeze

__all__ = ["config_key", "detached_config", "merge_configs"]


def config_key(config: object) -> object:
    """A hashable form of ``config`` equal for equal options (``AioConfig`` extras included).

    Whether ``max_pool_connections`` was set is part of it: a pooled client gets more
    connections only when it was not (`pooled_config`), so ``Config()`` and
    ``Config(max_pool_connections=10)`` make different clients.
    """
    if config is None:
        return None
    defaults = getattr(type(config), "OPTION_DEFAULTS", None)
    if not isinstance(defaults, Mapping):
        return freeze(config)
    names = set(defaults)
    names.update(n for n in getattr(config, "__dict__", {}) if not n.startswith("_"))
    options = tuple((name, freeze(getattr(config, name, None))) for name in sorted(names))
    provided = getattr(config, "_user_provided_options", None)
    chosen = isinstance(provided, Mapping) and "max_pool_connections" in provided
    return (f"{type(config).__module__}.{type(config).__qualname__}", options, chosen)


def merge_configs(default: Any, call: Any) -> Any:
    """``call``'s options over ``default``'s, keeping the richer class (``AioConfig``)."""
    try:
        if isinstance(default, type(call)):
            return default.merge(call)
        # call.merge(default) keeps call's class (and AioConfig extras); merging call again
        # puts its own options back on top.
        return call.merge(default).merge(call)
    except (AttributeError, TypeError):
        return call


def detached_config(config: Any) -> Any:
    """A copy of ``config`` whose dict options botocore may rewrite (it edits ``retries``),
    so the caller's object, and so its key, stays as it was."""
    try:
        clone = copy.copy(config)
        for name, value in list(vars(clone).items()):
            if isinstance(value, dict):
                setattr(clone, name, dict(value))
    except Exception:
        return config
    return clone
