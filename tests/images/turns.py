"""A spoken turn with the project's own client (``voxmesh talk``) and a typed one with the ``openai`` SDK."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from openai import AsyncOpenAI

from voxmesh.synthetic_speech import silence, speak


def talk(gateway: str, tmp_path: Path, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """``voxmesh talk question.wav -o reply.wav --gateway GATEWAY`` with espeak-ng speech."""
    wav = tmp_path / "question.wav"
    words = "hello there how are you"
    sf.write(wav, np.concatenate([silence(0.3), speak(words), silence(1.5)]), 16_000, subtype="PCM_16")
    env = {k: v for k, v in os.environ.items() if k != "VOXMESH_AUTH_TOKEN"}
    if token is not None:
        env["VOXMESH_AUTH_TOKEN"] = token
    voxmesh = Path(sys.executable).parent / "voxmesh"
    return subprocess.run(
        [str(voxmesh), "talk", str(wav), "-o", str(tmp_path / "reply.wav"), "--gateway", gateway],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_spoken_reply(done: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    # SessionStarted names the engines the CPU profile chose (`voxmesh up` marks them fallbacks).
    assert re.search(r"voxtral=echo\b.*orpheus=espeak\b", done.stdout), done.stdout
    reply, rate = sf.read(tmp_path / "reply.wav", dtype="int16")
    assert len(reply) > rate // 2, "under 0.5 s of reply audio"
    assert np.abs(reply).max() > 1000, "silent reply"


async def typed_turn(ws_base: str, token: str = "sk-unused") -> None:
    """One typed turn through an edge (``ws://HOST:PORT/v1``): a completed response with audio."""
    client = AsyncOpenAI(api_key=token, websocket_base_url=ws_base)
    async with client.realtime.connect(model="voxmesh") as conn:
        created = await conn.recv()
        assert created.type == "session.created", created
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there"}]}
        )
        await conn.response.create()
        audio = b""
        last = None
        async for event in conn:
            last = event
            if event.type == "response.output_audio.delta":
                audio += base64.b64decode(event.delta)
            if event.type in ("response.done", "error"):
                break
    assert last is not None and last.type == "response.done", last
    assert last.response.status == "completed"
    assert len(audio) > 24_000, "under 0.5 s of reply audio"
    assert np.abs(np.frombuffer(audio, "<i2")).max() > 1000, "silent reply"
