"""``voxmesh up --telephony`` runs the phone edge as one more supervised process, and a call goes through it."""

from __future__ import annotations

import signal

import numpy as np

from tests.integration.test_up_supervision import UpProcess, _free_port_block
from tests.integration.twilio_phone import TwilioPhone, quiet, speech_8k
from voxmesh.exit_status import ExitStatus


async def test_up_telephony_answers_a_twilio_call_and_stops_before_the_gateway() -> None:
    base = _free_port_block(6)
    up = UpProcess("--profile", "cpu", "--base-port", str(base), "--no-metrics", "--telephony")
    try:
        up.wait_for("voxmesh is up")
        edge = up.wait_for(r"^\s+telephony\s+ws://(\S+)/twilio ")
        assert edge.group(1) == f"127.0.0.1:{base + 5}"
        phone = await TwilioPhone(f"ws://{edge.group(1)}/twilio").dial()
        await phone.talk(np.concatenate([quiet(0.3), speech_8k("hello there"), quiet(1.2)]))
        await phone.wait_for("media")
        await phone.hang_up()
        assert phone.media_bytes() > 0
    finally:
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGINT)
    assert up.process.wait(60) == ExitStatus.OK, "\n".join(up.lines)
    output = "\n".join(up.lines)
    assert output.index("stopping telephony") < output.index("stopping gateway"), output
