"""The wheels bench/gpu_suite.sh installs on a GPU host with no network (`make gpu-wheels`).

The lent GPU host (Python 3.12, a CUDA torch, transformers 5.17, onnxruntime,
no vLLM / snac / mistral-common, no network) takes a folder of wheels of at
most 64 MiB. What goes in is read from pyproject.toml, so the suite runs the
pins the project tests:

    python bench/gpu_wheels.py requirements          # what the suite installs over the host's torch
    python bench/gpu_wheels.py pins REPORT.json      # name==version to download (pip's dry-run report)
    python bench/gpu_wheels.py check DIR             # total size under the limit, one version each
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MIB = 64

#: From each extra, what the suite needs over the host's own torch: the model libraries
#: (`models` less torch: the host's CUDA build stays), espeak-ng for the speech the voxtral
#: benches send, NVML for the GPU memory test, pytest for the `gpu`-marked tests.
PICK = {
    "models": None,
    "cpu": ("espeakng-loader",),
    "gpu": ("nvidia-ml-py",),
    "dev": ("pytest", "pytest-asyncio", "pytest-timeout"),
}
#: numpy 2.3.5 (16 MiB; the host has 2.5.2, above mistral-common's and our cap) and
#: transformers 5.23.0 (13 MiB) do not both fit in 64 MiB beside the rest. The host's
#: transformers 5.17 runs the engines (the voxtral, realtime and orpheus transformers-engine
#: tests pass on 5.17.0), so the suite keeps it.
RELAX = {"transformers": "transformers>=5.17"}
#: Already on the lent H200 at versions that satisfy the requirements (its package list, read
#: there in 2026-11): torch's and transformers' own dependencies, pillow, tiktoken, pytest's
#: plugins. A package the host lacks after all makes the suite's install fail with pip's one
#: line naming it; drop it from here and rerun `make gpu-wheels`.
HOST_HAS = (
    "torch", "triton", "nvidia-*", "cuda-*", "sympy", "mpmath", "networkx", "jinja2", "markupsafe",
    "fsspec", "filelock", "setuptools", "transformers", "huggingface-hub", "hf-xet", "httpx*",
    "httpcore*", "anyio", "h11", "tokenizers", "safetensors", "tiktoken", "regex", "pyyaml",
    "requests", "urllib3", "certifi", "idna", "charset-normalizer", "packaging", "tqdm", "typer*",
    "click", "rich", "shellingham", "pygments", "markdown-it-py", "mdurl", "annotated-doc",
    "typing-extensions", "pillow", "prometheus-client", "psutil", "einops", "nvidia-ml-py",
    "attrs", "pluggy", "iniconfig", "pytest-timeout",
)  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return canonical(match[0])


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    with open(pyproject, "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    picked: list[str] = []
    for extra, names in PICK.items():
        for req in extras[extra]:
            name = requirement_name(req)
            if name == "torch" or (names is not None and name not in names):
                continue
            picked.append(RELAX.get(name, req))
    return picked


def pins(report: dict) -> list[str]:
    """name==version of every wheel the dry-run resolved that the host does not already have."""
    out = []
    for item in report["install"]:
        name = canonical(item["metadata"]["name"])
        if name == "voxmesh" or any(fnmatch.fnmatch(name, pattern) for pattern in HOST_HAS):
            continue
        out.append(f"{name}=={item['metadata']['version']}")
    return sorted(out)


def check(folder: Path, limit_mib: int = LIMIT_MIB) -> str:
    wheels = sorted(folder.glob("*.whl"))
    names = [canonical(w.name.split("-")[0]) for w in wheels]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SystemExit(f"{folder}: more than one version of {', '.join(twice)} (pip would refuse)")
    total = sum(w.stat().st_size for w in wheels)
    if total > limit_mib * 2**20:
        biggest = ", ".join(f"{w.name} {w.stat().st_size / 2**20:.1f}" for w in sorted(
            wheels, key=lambda w: -w.stat().st_size)[:5])  # fmt: skip
        raise SystemExit(f"{folder}: {total / 2**20:.1f} MiB > {limit_mib} MiB; biggest: {biggest}")
    return f"{folder}: {len(wheels)} wheels, {total / 2**20:.1f} MiB (limit {limit_mib} MiB)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("requirements")
    sub.add_parser("pins").add_argument("report", type=Path)
    sub.add_parser("check").add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.command == "requirements":
        print("\n".join(requirements()))
    elif args.command == "pins":
        print("\n".join(pins(json.loads(args.report.read_text()))))
    else:
        print(check(args.folder))


if __name__ == "__main__":
    sys.exit(main())
