"""``voxmesh health HOST:PORT``: exit 0 if the server reports SERVING (container healthchecks).

``voxmesh health --container`` asks whatever the container's main process
serves, where it serves it (voxmesh.container_health): the images' HEALTHCHECK.

Over mutual TLS (``--tls-ca``/``--tls-cert``/``--tls-key``) too: Kubernetes'
native gRPC probes speak plaintext only, so a stage that requires client
certificates is probed with this command and the pod's own certificate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxmesh.container_health import command_line, target_of
from voxmesh.processes import check_health
from voxmesh.realtime.readiness import edge_ready


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("health", help="check a service's gRPC health (exit 0 when SERVING)")
    p.add_argument(
        "address", nargs="?", default="127.0.0.1:50051", help="host:port (default 127.0.0.1:50051)"
    )
    p.add_argument(
        "--container",
        action="store_true",
        help="check what this container's main process serves (PID 1's voxmesh command line): gRPC health "
        "on its port, /healthz for the WebSocket edges; VOXMESH_HEALTH_PORT overrides the port",
    )
    # Another process than PID 1 (the tests: a service outside a container).
    p.add_argument("--pid", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--service", default="", help="service name to check (default: the whole server)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an answer")
    p.add_argument("--tls-ca", help="PEM CA to trust: check over TLS")
    p.add_argument("--tls-cert", help="PEM client certificate (servers that require one)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument(
        "--tls-server-name", help="name the server's certificate carries, if not the address's host"
    )
    p.set_defaults(func=_run)


def _check_tls(args: argparse.Namespace) -> str:
    credentials = grpc.ssl_channel_credentials(
        Path(args.tls_ca).read_bytes(),
        Path(args.tls_key).read_bytes() if args.tls_key else None,
        Path(args.tls_cert).read_bytes() if args.tls_cert else None,
    )
    options = [("grpc.ssl_target_name_override", args.tls_server_name)] if args.tls_server_name else []
    try:
        with grpc.secure_channel(args.address, credentials, options=options) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.RpcError:
        return "UNREACHABLE"


def _container(args: argparse.Namespace) -> tuple[str, str]:
    """(what was asked, its status) for whatever process ``args.pid`` serves."""
    target = target_of(command_line(args.pid))
    if target.protocol == "http":
        status = "SERVING" if edge_ready(target.address, timeout_s=args.timeout) else "UNREACHABLE"
    else:
        status = check_health(target.address, timeout_s=args.timeout, service=args.service)
    return f"{target.service} at {target.address}", status


def _run(args: argparse.Namespace) -> int:
    if args.container:
        try:
            asked, status = _container(args)
        except (OSError, ValueError, SystemExit) as exc:  # SystemExit: argparse refused the command line
            print(
                f"voxmesh health --container: cannot tell what process {args.pid} serves: {exc}",
                file=sys.stderr,
            )
            return 1
    elif args.tls_ca:
        asked, status = args.address, _check_tls(args)
    else:
        asked, status = args.address, check_health(args.address, timeout_s=args.timeout, service=args.service)
    print(f"{asked}: {status}", file=sys.stderr if status != "SERVING" else sys.stdout)
    return 0 if status == "SERVING" else 1
