"""The TypeScript SDK (sdk/typescript) against a real CPU mesh, through Node's own test runner.

``npm test`` builds (protobuf-es generation from protos/, then tsc) and runs
sdk/typescript/test/*.test.ts; this test gives it a gateway and espeak speech
and checks that every Node test ran and passed. mk/realtime.mk installs the
node_modules (``npm ci``) for ``make test``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import Mesh
from voxmesh.audio import float_to_pcm16
from voxmesh.synthetic_speech import silence, speak

SDK = Path(__file__).resolve().parents[2] / "sdk" / "typescript"

pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None or not (SDK / "node_modules").is_dir(),
    reason="needs Node 20 and sdk/typescript/node_modules (make test runs npm ci: mk/realtime.mk)",
)


def test_node_tests_pass_against_the_mesh(mesh: Mesh, tmp_path: Path) -> None:
    speech = tmp_path / "speech.pcm"
    speech.write_bytes(float_to_pcm16(np.concatenate([silence(0.3), speak("hello world"), silence(0.8)])))
    run = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=SDK,
        env={**os.environ, "VOXMESH_GATEWAY": mesh.address, "VOXMESH_SPEECH_PCM": str(speech)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert re.search(r"^# pass 5$", out, re.MULTILINE), out
    assert re.search(r"^# fail 0$", out, re.MULTILINE), out
