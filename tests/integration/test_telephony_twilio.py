"""The phone edge in front of the CPU mesh, driven by a Twilio-shaped phone side (tests/integration/twilio_phone.py).

One mesh per module (vad webrtcvad, voxtral echo, orpheus espeak, gateway,
``voxmesh serve telephony`` with a token): spoken calls at 8 kHz µ-law paced in
real time, barge-in, DTMF, hang-ups, and bad input that closes only its own call.
"""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import websockets

from tests.integration.phone_edge import PhoneMesh, phone_mesh
from tests.integration.twilio_phone import RATE_HZ, TwilioPhone, quiet, speech_8k
from voxmesh.g711 import ulaw_decode

TOKEN = "phone-s3cret"
AUTH = {"token": TOKEN}
#: A question whose echoed reply ("You said: ...") lasts several seconds at 8 kHz.
LONG_QUESTION = "one two three four five six seven eight nine ten eleven twelve"


@pytest.fixture(scope="module")
def mesh() -> Iterator[PhoneMesh]:
    with phone_mesh(edge_args=("--auth-token", TOKEN, "--mark-interval-ms", "300")) as m:
        yield m


async def spoken_call(mesh: PhoneMesh, text: str = "hello there") -> TwilioPhone:
    """A call that says ``text``, then listens until the reply has played out."""
    phone = await TwilioPhone(mesh.url(), AUTH).dial()
    await phone.talk(np.concatenate([quiet(0.3), speech_8k(text), quiet(1.2)]))
    await phone.wait_for("media")
    await phone.talk(quiet(0.5))
    await phone.wait_quiet(1.0)
    return phone


async def test_spoken_call_gets_a_spoken_reply_as_ulaw_media_with_marks(mesh: PhoneMesh) -> None:
    phone = await spoken_call(mesh)
    await phone.hang_up()
    media = [r for r in phone.log if r.event == "media"]
    marks = [r for r in phone.log if r.event == "mark"]
    assert sum(r.nbytes for r in media) > RATE_HZ // 2  # > 0.5 s of 8 kHz µ-law
    reply = ulaw_decode(np.frombuffer(bytes(phone.played), np.uint8))
    assert np.abs(reply).max() > 2000  # speech, not silence
    # A mark after the media it follows; the last thing sent is a mark; every one was echoed.
    assert phone.log.index(media[0]) < phone.log.index(marks[0])
    assert [r.event for r in phone.log if r.event in ("media", "mark")][-1] == "mark"
    assert {name for name, _, _ in phone.echoed} == {m.name for m in marks}
    assert "clear" not in [r.event for r in phone.log]
    turns = mesh.edge_lines("turn complete")
    assert turns and turns[-1]["reply"].startswith("You said")


async def settled(mesh: PhoneMesh, timeout_s: float = 30.0) -> None:
    """Until the gateway holds no session and the edge no call (teardown is asynchronous)."""
    for _ in range(int(timeout_s * 10)):
        gateway = mesh.gauge("voxmesh_active_sessions", labels='service="gateway"')
        if gateway == 0 and mesh.gauge("voxmesh_telephony_calls", "edge") == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"after {timeout_s} s: gateway sessions {gateway}, calls {mesh.gauge('voxmesh_telephony_calls', 'edge')}"
    )


async def test_barge_in_clears_at_once_and_history_keeps_what_was_heard(mesh: PhoneMesh) -> None:
    phone = await TwilioPhone(mesh.url(), AUTH).dial()
    await phone.talk(np.concatenate([quiet(0.3), speech_8k(LONG_QUESTION), quiet(1.2)]))
    await phone.wait_for("media")
    await phone.talk(quiet(1.5))  # the caller listens to the start of the reply ...
    barge_at = time.perf_counter()
    heard_before_barge_in = [played for _, played, _ in phone.echoed]
    speech_ended = await phone.talk(speech_8k("no stop that is not what I asked"))  # ... and talks over it
    clear = await phone.wait_for("clear", after=barge_at)
    await phone.talk(quiet(1.5))
    await phone.wait_quiet(1.0)
    await phone.hang_up()

    reply_sent = phone.media_bytes(before=clear.t)
    assert clear.t < speech_ended, "clear came only after the caller stopped talking"
    # The caller heard part of it: the rest of the buffer was dropped by the clear.
    assert 0 < clear.nbytes < reply_sent
    # Nothing of the old reply after the clear: a new reply can only start once the caller stops.
    assert phone.media_bytes(after=clear.t, before=speech_ended) == 0
    # The history keeps what was heard up to the last mark the phone echoed before the clear.
    (cut,) = mesh.edge_lines("barge-in: cleared", session_id=mesh.session_of(stream_sid=phone.stream_sid))
    echoed = [1000.0 * played / RATE_HZ for _, played, t in phone.echoed if t < clear.t]
    assert any(abs(float(cut["played_ms"]) - ms) < 0.01 for ms in echoed), (cut, echoed)
    assert float(cut["played_ms"]) >= 1000.0 * max(heard_before_barge_in) / RATE_HZ
    assert str(cut["spoken_text"]).startswith("You said")


async def test_a_key_pressed_during_a_reply_reaches_the_conversation_as_text(mesh: PhoneMesh) -> None:
    phone = await TwilioPhone(mesh.url(), AUTH).dial()
    await phone.talk(np.concatenate([quiet(0.3), speech_8k(LONG_QUESTION), quiet(1.2)]))
    await phone.wait_for("media")
    await phone.talk(quiet(0.8))
    pressed_at = time.perf_counter()
    await phone.press("5")
    clear = await phone.wait_for("clear", after=pressed_at)  # a key press interrupts the reply, as in an IVR
    await phone.wait_for("media", after=clear.t)  # the answer to the key press
    await phone.talk(quiet(1.0))
    await phone.wait_quiet(1.0)
    await phone.hang_up()
    # The edge sent a KeyPress: the gateway's KeyPressed names the turn whose user side is the key.
    keyed, turns = mesh.turn_of_key_press(mesh.session_of(stream_sid=phone.stream_sid), "5")
    assert keyed["transcript"] == "The caller pressed 5.", turns
    assert "pressed 5" in str(keyed["reply"]), turns
    assert phone.media_bytes(after=clear.t) > 0


async def test_a_call_that_hangs_up_mid_turn_leaves_nothing_running(mesh: PhoneMesh) -> None:
    # Twilio's way (stop, then the socket closes) while the reply is playing ...
    phone = await TwilioPhone(mesh.url(), AUTH).dial()
    await phone.talk(np.concatenate([quiet(0.3), speech_8k(LONG_QUESTION), quiet(1.2)]))
    await phone.wait_for("media")
    await phone.hang_up()
    # ... and a dropped connection (no stop) while the caller is still talking.
    dropped = await TwilioPhone(mesh.url(), AUTH).dial()
    await dropped.talk(np.concatenate([quiet(0.3), speech_8k("hello are you")]))
    await dropped.close()
    await settled(mesh)
    assert mesh.gauge("voxmesh_telephony_calls_ended_total", "edge", 'outcome="stop"') >= 1
    assert mesh.gauge("voxmesh_telephony_calls_ended_total", "edge", 'outcome="hangup"') >= 1


def _media(phone: TwilioPhone, payload: str) -> dict[str, object]:
    message = phone.media_message(b"")
    message["media"]["payload"] = payload  # type: ignore[index]
    return message


async def test_bad_input_closes_only_that_call_with_a_logged_reason(mesh: PhoneMesh) -> None:
    good = asyncio.create_task(spoken_call(mesh, "good morning"))

    async def bad_call(
        *messages: object, announce: bool = True, params: dict[str, str] = AUTH
    ) -> tuple[int | None, str]:
        phone = await TwilioPhone(mesh.url(), params).dial(announce=announce)
        for message in messages:
            await phone.send(message(phone) if callable(message) else message)  # type: ignore[arg-type]
        code, reason = await phone.closed()
        await phone.close()
        return code, reason

    two_seconds = base64.b64encode(bytes(2 * RATE_HZ)).decode()
    results = {
        "bad base64": await bad_call(lambda p: _media(p, "%%% not base64 %%%")),
        "media before start": await bad_call(
            {"event": "connected", "protocol": "Call", "version": "1.0.0"},
            lambda p: _media(p, base64.b64encode(bytes(160)).decode()),
            announce=False,
        ),
        "oversized payload": await bad_call(lambda p: _media(p, two_seconds)),
        "oversized message": await bad_call("x" * (128 * 1024)),
        "not json": await bad_call("{not json"),
        "binary": await bad_call(b"\x00\x01"),
        "second start": await bad_call(lambda p: p.start_message()),
        "no token": await bad_call(params={}),
    }
    assert results["bad base64"][0] == 1008 and "base64" in results["bad base64"][1]
    assert results["media before start"][0] == 1008 and "before start" in results["media before start"][1]
    assert results["oversized payload"][0] == 1009 and "8000 bytes" in results["oversized payload"][1]
    assert results["oversized message"][0] == 1009
    assert results["not json"][0] == 1008 and "JSON" in results["not json"][1]
    assert results["binary"][0] == 1008
    assert results["second start"][0] == 1008 and "second start" in results["second start"][1]
    assert results["no token"][0] == 1008 and "token" in results["no token"][1]
    with pytest.raises(websockets.InvalidStatus) as refused:
        await TwilioPhone(mesh.url("token=wrong"), {}).dial()
    assert refused.value.response.status_code == 401

    # The call beside them went on: it heard its whole reply, nothing was cleared.
    phone = await good
    await phone.hang_up()
    assert phone.media_bytes() > RATE_HZ // 2 and phone.first("clear") is None
    reasons = [str(line["reason"]) for line in mesh.edge_lines("call closed")]
    for needle in (
        "base64",
        "before start",
        "8000 bytes",
        "a message over",
        "JSON",
        "binary",
        "second start",
        "token",
    ):
        assert any(needle in reason for reason in reasons), (needle, reasons)
    await settled(mesh)


async def test_token_in_the_stream_url_is_accepted(mesh: PhoneMesh) -> None:
    phone = await TwilioPhone(mesh.url(f"token={TOKEN}"), {}).dial()
    await phone.talk(np.concatenate([quiet(0.3), speech_8k("hello there"), quiet(1.2)]))
    await phone.wait_for("media")
    await phone.hang_up()


def test_the_readmes_phone_example_runs_as_written(mesh: PhoneMesh) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (code,) = re.findall(r"<!-- phone-example [^\n]*-->\n```python\n(.*?)\n```", readme, re.DOTALL)
    assert "ws://127.0.0.1:8081/twilio" in code
    code = code.replace("ws://127.0.0.1:8081/twilio", mesh.url(f"token={TOKEN}"))
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    seconds = float(re.fullmatch(r"([\d.]+) s of µ-law reply\n", run.stdout).group(1))  # type: ignore[union-attr]
    assert seconds > 0.5, run.stdout
