"""The README's examples, run as written against a real CPU mesh so they cannot rot.

A fenced block is an example when the line before it is
``<!-- readme-example: NAME ... -->``. Each runs in a fresh folder whose
``.venv`` is this interpreter's environment (the README's commands say
``.venv/bin/...``); the only change made to a block is the gateway address,
``127.0.0.1:50051`` in the README, which becomes the test mesh's free port.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Mesh

README = Path(__file__).resolve().parents[2] / "README.md"
README_GATEWAY = "127.0.0.1:50051"
_EXAMPLE = re.compile(r"<!-- readme-example: (\S+)[^\n]*-->\n```(\w+)\n(.*?)\n```", re.DOTALL)


def readme_examples() -> dict[str, tuple[str, str]]:
    """Every marked block: name → (language, code)."""
    return {name: (lang, code) for name, lang, code in _EXAMPLE.findall(README.read_text())}


def run_example(name: str, mesh: Mesh, folder: Path) -> subprocess.CompletedProcess[str]:
    lang, code = readme_examples()[name]
    assert README_GATEWAY in code, f"README example {name!r} no longer names {README_GATEWAY}"
    code = code.replace(README_GATEWAY, mesh.address)
    venv = folder / ".venv"
    if not venv.exists():
        venv.symlink_to(sys.prefix)
    command = {"bash": ["bash", "-e", "-c", code], "python": [str(venv / "bin" / "python"), "-c", code]}
    run = subprocess.run(command[lang], cwd=folder, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, f"README example {name!r} failed:\n{run.stdout}\n{run.stderr}"
    return run


def test_the_readme_marks_its_examples() -> None:
    assert set(readme_examples()) == {"talk", "sdk", "tools"}


def test_tools_example_answers_the_call_and_speaks_its_result(mesh: Mesh, tmp_path: Path) -> None:
    out = run_example("tools", mesh, tmp_path).stdout
    # The echo's stand-in called the tool with the typed words; the reply says what it returned.
    assert out.strip() == (
        'The weather tool says: {"city": "What is the weather in Paris?", "sky": "sunny"}.'
    ), out


def test_talk_example_prints_transcript_reply_and_latency(mesh: Mesh, tmp_path: Path) -> None:
    out = run_example("talk", mesh, tmp_path).stdout
    assert re.search(r"^you said: +\S", out, re.MULTILINE), out
    assert re.search(r"^reply: +You said: \S", out, re.MULTILINE), out
    assert "voice-to-voice" in out
    assert (tmp_path / "reply.wav").stat().st_size > 10_000


def test_sdk_example_answers_a_recording_with_no_trailing_silence(mesh: Mesh, tmp_path: Path) -> None:
    """The input ends during speech: that is the turn's endpoint, and it is answered.

    The talk example's question.wav is ~2 s of espeak with ~14 ms after the
    last word. (The gateway used to drop that turn: the example printed nothing.)
    """
    import numpy as np
    import soundfile as sf

    from voxmesh.synthetic_speech import speak

    question = speak("what is the weather like today", rate_hz=44100)
    sf.write(tmp_path / "question.wav", question, 44100)
    voiced = np.nonzero(np.abs(question) > 0.01)[0]
    assert (len(question) - voiced[-1]) / 44100 < 0.05  # no silence for the VAD's hangover

    out = run_example("sdk", mesh, tmp_path).stdout
    assert re.search(r"^you: \S", out, re.MULTILINE), out
    assert "You said: " in out  # the echo engine's reply deltas
    assert "response_latency_ms" in out  # TurnComplete's latency
