"""The token files of a compose deployment, made once and kept: run before the mesh starts.

    python -m voxmesh.auth_files DIR

``DIR/client-tokens`` holds the bearer tokens clients may send to the gateway
and the Realtime edge (one per line, one per client app: ``--auth-tokens-file``);
``DIR/stage-token`` the token the gateway presents to vad, voxtral and orpheus
(their ``--auth-tokens-file``, the gateway's ``--stage-auth-token-file``);
``DIR/grafana-admin-password`` Grafana's admin password (compose's Grafana reads
it through ``GF_SECURITY_ADMIN_PASSWORD__FILE``, so no variable has to be set
before ``docker compose up``). A missing file is made with a random value;
``$VOXMESH_AUTH_TOKEN``, if set, is added to the client tokens. The client
tokens and where the Grafana password is are printed, so the first ``docker
compose up`` (or ``docker compose logs auth-init``) tells the user what to
send. Files are written atomically (a reader never sees half a file), the
tokens owner-read-only, the Grafana password also group-readable: Grafana runs
as its own uid and reads it through the group of the files' owner.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

from voxmesh.bearer_tokens import parse_tokens

CLIENT_TOKENS = "client-tokens"
STAGE_TOKEN = "stage-token"
GRAFANA_ADMIN_PASSWORD = "grafana-admin-password"
#: The variable a user may set to choose the client token (as `voxmesh talk` reads it).
TOKEN_ENV = "VOXMESH_AUTH_TOKEN"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def ensure(directory: Path, chosen: str | None = None) -> list[str]:
    """Make the missing token files in ``directory``; the client tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    stage = directory / STAGE_TOKEN
    if not stage.exists():
        _write(stage, new_token() + "\n")
    clients = directory / CLIENT_TOKENS
    if not clients.exists():
        _write(clients, "# bearer tokens clients may send, one per line (one per client app)\n")
    tokens = parse_tokens(clients.read_text())
    wanted = chosen.strip() if chosen else ""
    if wanted and wanted not in tokens:
        tokens.append(wanted)
        _write(clients, clients.read_text() + wanted + "\n")
    if not tokens:
        tokens.append(new_token())
        _write(clients, clients.read_text() + tokens[-1] + "\n")
    if not parse_tokens(stage.read_text()):
        raise SystemExit(f"{stage} holds no token: delete it and run again to make one")
    grafana = directory / GRAFANA_ADMIN_PASSWORD
    if not grafana.exists():
        _write(grafana, new_token() + "\n", mode=0o640)
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        tokens = ensure(args.directory, os.environ.get(TOKEN_ENV))
    except OSError as exc:
        print(f"voxmesh: cannot write the token files in {args.directory}: {exc.strerror}", file=sys.stderr)
        return 2
    print(
        f"voxmesh: clients send 'authorization: Bearer <token>'; accepted ({args.directory / CLIENT_TOKENS}):"
    )
    for token in tokens:
        print(f"  {token}")
    print(f"  e.g. export {TOKEN_ENV}={tokens[0]}   # voxmesh talk and bench read it")
    print(
        f"voxmesh: Grafana's admin password (user admin) is in {args.directory / GRAFANA_ADMIN_PASSWORD}:"
        f" docker compose exec grafana cat {args.directory / GRAFANA_ADMIN_PASSWORD}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
