"""Put Smart Turn v3.2's ONNX file in a folder, taken from the PyPI wheel that ships it.

    python -m voxmesh.services.vad.smart_turn_install DEST_DIR

The pipecat-ai 1.14.0 wheel carries the unchanged upstream file (BSD-2-Clause);
only that file is kept (``pip download --no-deps``, no pipecat install). The
images bake it at build time this way (docker/Dockerfile), so the shipped
turn-taking needs no hub at start-up; the hub repo stays vad's fallback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from voxmesh.services.vad.smart_turn import MODEL_FILE

WHEEL = "pipecat-ai==1.14.0"
MEMBER = "pipecat/audio/turn/smart_turn/data/" + MODEL_FILE


def install(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", wheels], check=True
        )
        (wheel,) = Path(wheels).glob("pipecat_ai-*.whl")
        with zipfile.ZipFile(wheel) as whl:
            data = whl.read(MEMBER)
    target = dest / MODEL_FILE
    partial = target.with_suffix(".tmp")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest_dir", type=Path, help="folder to put " + MODEL_FILE + " in (created if missing)")
    args = parser.parse_args(argv)
    print(install(args.dest_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
