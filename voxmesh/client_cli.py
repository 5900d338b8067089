"""The flags every client command shares (``voxmesh talk``, ``voxmesh bench``).

The bearer token defaults to ``VOXMESH_AUTH_TOKEN``, the variable the deploy
docs and the chart's NOTES export, so their commands work as written and the
token stays out of the shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import os

#: Environment variable a client command reads its bearer token from.
TOKEN_ENV = "VOXMESH_AUTH_TOKEN"


def add_token_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"bearer token, if the gateway requires one (default: env {TOKEN_ENV})",
    )
