"""Twilio Media Streams messages ⇄ the phone edge's frames: what is taken, what closes the call and why."""

from __future__ import annotations

import base64
import json

import pytest

from voxmesh.telephony.call_frames import (
    CallerAudio,
    CallRefused,
    CallStart,
    CallStopped,
    Ignored,
    KeyPressed,
    MarkPlayed,
)
from voxmesh.telephony.twilio import TwilioStream


def started(stream: TwilioStream | None = None) -> TwilioStream:
    stream = stream or TwilioStream(max_media_bytes=8000)
    stream.parse(
        json.dumps(
            {
                "event": "start",
                "sequenceNumber": "1",
                "start": {
                    "streamSid": "MZ1",
                    "callSid": "CA1",
                    "customParameters": {"token": "t", "n": 5},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": "MZ1",
            }
        )
    )
    return stream


def media(payload: str, track: str = "inbound") -> str:
    return json.dumps({"event": "media", "streamSid": "MZ1", "media": {"track": track, "payload": payload}})


def test_a_call_start_to_stop() -> None:
    stream = TwilioStream(max_media_bytes=8000)
    assert stream.parse('{"event": "connected", "protocol": "Call", "version": "1.0.0"}') == Ignored(
        "connected"
    )
    start = stream.parse(json.dumps({"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1"}}))
    assert start == CallStart("MZ1", "CA1", {})
    assert stream.parse(media(base64.b64encode(b"\xff" * 160).decode())) == CallerAudio(b"\xff" * 160)
    assert stream.parse(media("AAAA", track="outbound")) == Ignored("outbound media")
    assert stream.parse('{"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "#"}}') == KeyPressed(
        "#"
    )
    assert stream.parse('{"event": "mark", "mark": {"name": "m1"}}') == MarkPlayed("m1")
    assert stream.parse('{"event": "someday-new"}') == Ignored("someday-new")
    assert stream.parse('{"event": "stop", "stop": {}}') == CallStopped()
    assert json.loads(stream.clear()) == {"event": "clear", "streamSid": "MZ1"}
    assert json.loads(stream.mark("m2")) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "m2"}}
    assert json.loads(stream.media(b"\x7f")) == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": "fw=="},
    }


def test_custom_parameters_are_strings_and_telnyx_names_are_taken() -> None:
    stream = TwilioStream(max_media_bytes=8000)
    start = stream.parse(
        json.dumps(
            {
                "event": "start",
                "stream_id": "tx-1",
                "start": {
                    "call_control_id": "v3:abc",
                    "media_format": {"encoding": "PCMU", "sample_rate": 8000},
                },
            }
        )
    )
    assert start == CallStart("tx-1", "v3:abc", {})
    assert json.loads(stream.clear())["streamSid"] == "tx-1"
    assert started().stream_sid == "MZ1"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (media("%%%"), "not base64"),
        (media(base64.b64encode(bytes(8001)).decode()), "more than 8000 bytes"),
        (json.dumps({"event": "media", "media": "x"}), "media.media must be an object"),
        ('{"event": "dtmf", "dtmf": {"digit": "x"}}', "dtmf.digit"),
        ('{"event": "mark", "mark": {"name": 3}}', "mark.name"),
        ('{"event": "start", "start": {"streamSid": "MZ2"}}', "a second start"),
        ("[1]", "JSON object"),
        ("{", "not JSON"),
        ('{"event": 7}', "event must be a string"),
    ],
)
def test_bad_messages_refuse_the_call_naming_what_is_wrong(message: str, reason: str) -> None:
    with pytest.raises(CallRefused) as refused:
        started().parse(message)
    assert reason in refused.value.reason


def test_order_and_format_are_enforced() -> None:
    with pytest.raises(CallRefused, match="before start"):
        TwilioStream(8000).parse(media("AAAA"))
    with pytest.raises(CallRefused, match="8000 Hz"):
        TwilioStream(8000).parse(
            json.dumps(
                {
                    "event": "start",
                    "start": {
                        "streamSid": "M",
                        "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000},
                    },
                }
            )
        )
    stream = started()
    stream.parse('{"event": "stop"}')
    with pytest.raises(CallRefused, match="after stop"):
        stream.parse(media("AAAA"))
