"""Asterisk chan_websocket events ⇄ the phone edge's frames, and the line's framing of reply audio."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from voxmesh.telephony.asterisk import AsteriskLine, AsteriskStream
from voxmesh.telephony.call_frames import (
    CallerAudio,
    CallRefused,
    CallStart,
    Ignored,
    KeyPressed,
    MarkPlayed,
    MediaFlow,
)

PLAIN_START = "MEDIA_START connection_id:c1 channel:WebSocket/voxmesh/0x1 channel_id:pbx1-1.2 format:ulaw optimal_frame_size:160 ptime:20"


def test_plain_text_events_and_answers_in_kind() -> None:
    stream = AsteriskStream(max_media_bytes=8000)
    assert stream.parse(PLAIN_START) == CallStart("c1", "pbx1-1.2", {})
    assert not stream.json_control
    assert stream.parse(bytes(160)) == CallerAudio(bytes(160))
    assert stream.parse("DTMF_END digit:5") == KeyPressed("5")
    assert stream.parse("MEDIA_MARK_PROCESSED voxmesh-1-2") == MarkPlayed("voxmesh-1-2")
    assert stream.parse("MEDIA_XOFF") == MediaFlow(paused=True)
    assert stream.parse("MEDIA_XON") == MediaFlow(paused=False)
    assert stream.parse("QUEUE_DRAINED") == Ignored("QUEUE_DRAINED")
    assert stream.command("MARK_MEDIA", correlation_id="m1") == "MARK_MEDIA m1"
    assert stream.command("FLUSH_MEDIA") == "FLUSH_MEDIA"


def test_json_events_carry_channel_variables_and_answers_are_json() -> None:
    stream = AsteriskStream(max_media_bytes=8000)
    start = {"event": "MEDIA_START", "connection_id": "c2", "channel_id": "pbx1-9", "format": "ulaw",
             "optimal_frame_size": 160, "channel_variables": {"token": "t"}}  # fmt: skip
    assert stream.parse(json.dumps(start)) == CallStart("c2", "pbx1-9", {"token": "t"})
    assert stream.parse('{"event": "MEDIA_MARK_PROCESSED", "correlation_id": "m"}') == MarkPlayed("m")
    assert json.loads(stream.command("MARK_MEDIA", correlation_id="m")) == {
        "command": "MARK_MEDIA",
        "correlation_id": "m",
    }


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([bytes(160)], "before MEDIA_START"),
        (["DTMF_END digit:1"], "before MEDIA_START"),
        ([PLAIN_START.replace("ulaw", "slin16")], "c(ulaw)"),
        ([PLAIN_START, PLAIN_START], "second MEDIA_START"),
        ([PLAIN_START, bytes(8001)], "8001 bytes"),
        ([PLAIN_START, "DTMF_END digit:x"], "DTMF_END digit"),
        ([PLAIN_START, "{oops"], "not JSON"),
        ([PLAIN_START, "!!"], "not an Asterisk event"),
    ],
)
def test_bad_input_refuses_the_call(messages: list[str | bytes], reason: str) -> None:
    stream = AsteriskStream(max_media_bytes=8000)
    with pytest.raises(CallRefused) as refused:
        for message in messages:
            stream.parse(message)
    assert reason in refused.value.reason


async def test_the_line_sends_whole_frames_and_pads_the_last_one() -> None:
    stream = AsteriskStream(max_media_bytes=8000)
    stream.parse(PLAIN_START)
    sent: list[str | bytes] = []

    async def send(message: str | bytes) -> None:
        sent.append(message)

    line = AsteriskLine(stream, send)
    await line.play(bytes(250))  # 1 frame + 90 bytes held back
    assert line.held_back == 90
    await line.mark("m1")
    await line.reply_done()
    sender = asyncio.create_task(line.run())
    for _ in range(100):  # run() sends at once: 40 ms of audio is within its lead
        if len(sent) == 3:
            break
        await asyncio.sleep(0)
    assert [len(m) if isinstance(m, bytes) else m for m in sent] == [160, "MARK_MEDIA m1", 160]
    assert sent[2][90:] == b"\xff" * 70  # µ-law silence pads the last frame
    await line.play(bytes(100))
    await line.clear()
    assert sent[-1] == "FLUSH_MEDIA" and line.held_back == 0
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
