"""The phone edge's ``/asterisk`` route driven by an Asterisk-shaped ``chan_websocket`` side (asterisk_phone.py).

One mesh per module (vad webrtcvad, voxtral echo, orpheus espeak, gateway, the
phone edge with a token that Asterisk passes in the URI, as ``v(token=...)`` does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.integration.asterisk_phone import FRAME, AsteriskCall
from tests.integration.phone_edge import PhoneMesh, phone_mesh
from tests.integration.twilio_phone import RATE_HZ, quiet, speech_8k
from voxmesh.g711 import ulaw_decode

TOKEN = "pbx-s3cret"
LONG_QUESTION = "one two three four five six seven eight nine ten eleven twelve"


@pytest.fixture(scope="module")
def mesh() -> Iterator[PhoneMesh]:
    with phone_mesh(edge_args=("--auth-token", TOKEN, "--mark-interval-ms", "300")) as m:
        yield m


def url(mesh: PhoneMesh, token: str = TOKEN) -> str:
    return mesh.url(f"token={token}", path="/asterisk")


async def test_spoken_call_gets_whole_frames_and_processed_marks(mesh: PhoneMesh) -> None:
    call = await AsteriskCall(url(mesh), channel_id="pbx1-spoken.1").dial()
    await call.talk(np.concatenate([quiet(0.3), speech_8k("hello there"), quiet(1.2)]))
    await call.wait_for("media")
    await call.talk(quiet(0.5))
    await call.wait_played_out()
    await call.hang_up()
    assert call.media_bytes() > RATE_HZ // 2
    assert call.odd_sized == 0  # every message a whole number of 160-byte frames: nothing dropped
    assert np.abs(ulaw_decode(np.frombuffer(bytes(call.played), np.uint8))).max() > 2000
    marks = [e.name for e in call.log if e.kind == "MARK_MEDIA"]
    assert marks and {name for name, _, _ in call.processed} == set(marks)
    assert call.first("FLUSH_MEDIA") is None


async def test_barge_in_flushes_and_history_keeps_what_was_heard(mesh: PhoneMesh) -> None:
    call = await AsteriskCall(url(mesh), channel_id="pbx1-barge.1").dial()
    await call.talk(np.concatenate([quiet(0.3), speech_8k(LONG_QUESTION), quiet(1.2)]))
    await call.wait_for("media")
    await call.talk(quiet(1.5))
    barge_at = time.perf_counter()
    speech_ended = await call.talk(speech_8k("no stop that is not what I asked"))
    flush = await call.wait_for("FLUSH_MEDIA", after=barge_at)
    await call.talk(quiet(1.5))
    await call.wait_played_out()
    await call.hang_up()
    assert flush.t < speech_ended
    assert call.media_bytes(after=flush.t, before=speech_ended) == 0
    (cut,) = mesh.edge_lines("barge-in: cleared", session_id=mesh.session_of(call_sid=call.channel_id))
    processed = [1000.0 * played / RATE_HZ for _, played, t in call.processed if t < flush.t]
    assert any(abs(float(cut["played_ms"]) - ms) < 0.01 for ms in processed), (cut, processed)
    assert str(cut["spoken_text"]).startswith("You said")


async def test_xoff_holds_the_reply_until_xon_and_nothing_is_dropped(mesh: PhoneMesh) -> None:
    # The channel stalls for 3 s mid-reply. Asterisk's levels (XOFF ~900, XON ~800, drops past
    # ~1000 frames) scaled down to 60/40/100: an edge that kept sending (it keeps ~50 frames, 1 s,
    # queued) would overflow 1 s into the stall; one that waits for XON has 60 frames of room then.
    call = await AsteriskCall(
        url(mesh), channel_id="pbx1-xoff.1", xoff_frames=60, xon_frames=40, max_frames=100
    ).dial()
    await call.talk(np.concatenate([quiet(0.3), speech_8k(LONG_QUESTION), quiet(1.2)]))
    await call.wait_for("media")
    call.stall(3.0)
    xoff = await call.wait_for("xoff")
    xon = await call.wait_for("xon", after=xoff.t)
    await call.talk(quiet(1.0))
    await call.wait_played_out(quiet_s=1.5)
    await call.hang_up()
    assert call.first("dropped") is None, "media past the queue's limit after MEDIA_XOFF (Asterisk drops it)"
    assert len(call.played) == call.media_bytes() > RATE_HZ
    assert call.media_bytes(after=xon.t) > 0  # the held reply went out after XON


async def test_dtmf_end_reaches_the_conversation_and_plain_text_control_works(mesh: PhoneMesh) -> None:
    call = await AsteriskCall(url(mesh), json_control=False, channel_id="pbx1-dtmf.1").dial()
    await call.talk(np.concatenate([quiet(0.3), speech_8k(LONG_QUESTION), quiet(1.2)]))
    await call.wait_for("media")
    await call.talk(quiet(0.8))
    pressed = time.perf_counter()
    await call.event("DTMF_END", digit="7")
    flush = await call.wait_for("FLUSH_MEDIA", after=pressed)
    await call.wait_for("media", after=flush.t)
    await call.talk(quiet(1.0))
    await call.wait_played_out()
    await call.hang_up()
    assert call.processed  # plain-text MARK_MEDIA <id> / MEDIA_MARK_PROCESSED <id> round trip
    # DTMF_END went to the gateway as a KeyPress; its KeyPressed names the turn the key opened.
    keyed, turns = mesh.turn_of_key_press(mesh.session_of(call_sid=call.channel_id), "7")
    assert keyed["transcript"] == "The caller pressed 7.", turns


async def test_bad_input_closes_only_that_call_and_hang_up_leaves_nothing(mesh: PhoneMesh) -> None:
    good = await AsteriskCall(url(mesh), channel_id="pbx1-good.1").dial()
    talking = asyncio.create_task(
        good.talk(np.concatenate([quiet(0.3), speech_8k("good morning"), quiet(1.2)]))
    )

    async def bad(*messages: str | bytes, start: bool = True, **kw: object) -> tuple[int | None, str]:
        call = await AsteriskCall(kw.pop("u", url(mesh)), **kw).dial(start=start)  # type: ignore[arg-type]
        for message in messages:
            await call.send_raw(message)
        result = await call.closed()
        await call.hang_up()
        return result

    media_first = await bad(bytes(FRAME), start=False)
    alaw = await bad(media_format="alaw")
    huge = await bad(bytes(16_000))
    garbage = await bad("{not json")
    no_token = await bad(u=url(mesh, token="")[: -len("?token=")])
    assert media_first[0] == 1008 and "before MEDIA_START" in media_first[1]
    assert alaw[0] == 1008 and "ulaw" in alaw[1]
    assert huge[0] == 1009
    assert garbage[0] == 1008 and "JSON" in garbage[1]
    assert no_token[0] == 1008 and "token" in no_token[1]

    await talking
    await good.wait_for("media")
    await good.hang_up()  # mid-reply: Asterisk closes the socket
    assert good.first("FLUSH_MEDIA") is None
    for _ in range(300):
        if (
            mesh.gauge("voxmesh_active_sessions", labels='service="gateway"') == 0
            and mesh.gauge("voxmesh_telephony_calls", "edge") == 0
        ):
            break
        await asyncio.sleep(0.1)
    assert mesh.gauge("voxmesh_active_sessions", labels='service="gateway"') == 0
    assert mesh.gauge("voxmesh_telephony_calls", "edge") == 0
    reasons = [str(line["reason"]) for line in mesh.edge_lines("call closed")]
    for needle in ("before MEDIA_START", "ulaw", "media frame of 16000", "JSON", "token"):
        assert any(needle in reason for reason in reasons), (needle, reasons)
