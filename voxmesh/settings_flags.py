"""Command-line flags from a settings class, shared by every ``voxmesh serve NAME`` (services and edges).

One ``--flag`` per field; an unset flag falls back to the field's ``VOXMESH_*``
environment variable, then its default (pydantic-settings decides, not argparse).
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import SecretStr

from voxmesh.settings import ServiceSettings


def add_settings_flags(parser: argparse.ArgumentParser, cls: type[ServiceSettings]) -> None:
    """One ``--flag`` per settings field; unset flags fall back to env, then defaults."""
    for name, field in cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = field.default
        help_text = f"{field.description or ''} (env {cls.model_config.get('env_prefix', '')}{name.upper()}"
        help_text += (
            f", default {default!r})" if not isinstance(default, SecretStr) and default is not None else ")"
        )
        if field.annotation is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_text)


def flag_overrides(args: argparse.Namespace, cls: type[ServiceSettings]) -> dict[str, Any]:
    """The fields given on the command line (``cls(**flag_overrides(...))`` reads the rest from env)."""
    return {k: v for k, v in vars(args).items() if k in cls.model_fields and v is not None}
