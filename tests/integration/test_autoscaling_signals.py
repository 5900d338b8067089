"""The signals the autoscaler reads, from real stage processes: voxtral's reply
queue depth (replies asked for that have no first token yet) rises while its
engine is stuck and falls back when it answers.

Orpheus's real-time factor is the ``voxmesh_synthesis_real_time_factor``
histogram (tests/integration/test_tracing_and_metrics.py); the KEDA query
divides its rates (docs/deploy.md, Scaling).
"""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.request
from collections.abc import Callable

import grpc
import psutil

from voxmesh.audio import float_to_pcm16
from voxmesh.processes import ServiceProcess, free_port
from voxmesh.synthetic_speech import speak
from voxmesh.v1 import common_pb2, voxtral_pb2, voxtral_pb2_grpc

Request = voxtral_pb2.RespondRequest


def gauge(metrics_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(rf'^{name}\{{service="voxtral"\}} (\S+)$', text, re.MULTILINE)
    assert found, f"{name} not exported"
    return float(found[1])


async def test_voxtral_reply_queue_depth_counts_replies_waiting_for_their_first_token(
    start_service: Callable[..., ServiceProcess],
) -> None:
    metrics_port = free_port()
    voxtral = start_service("voxtral", "--engine", "echo", "--metrics-port", str(metrics_port))
    assert gauge(metrics_port, "voxmesh_reply_queue_depth") == 0
    pcm = float_to_pcm16(speak("what is the weather like"))
    assert voxtral.process is not None
    workers = psutil.Process(voxtral.process.pid).children(recursive=True)
    assert workers
    stopped = False
    try:
        async with grpc.aio.insecure_channel(voxtral.address) as channel:
            call = voxtral_pb2_grpc.VoxtralStub(channel).Respond(timeout=120)
            await call.write(
                Request(config=voxtral_pb2.RespondConfig(session_id="q", mode=common_pb2.TURN_MODE_AUDIO))
            )
            await call.write(Request(audio=voxtral_pb2.UtteranceAudio(turn_id=1, pcm=pcm)))
            # The utterance was heard (a partial transcript): then the echo
            # engine's reply waits on its pocketsphinx worker processes, which,
            # stopped, are an engine that cannot keep up.
            while (await call.read()).WhichOneof("event") != "transcript":
                pass
            for worker in workers:
                worker.send_signal(signal.SIGSTOP)
            stopped = True
            await call.write(Request(end_of_turn=voxtral_pb2.EndOfTurn(turn_id=1)))
            await call.done_writing()
            for _ in range(600):
                if gauge(metrics_port, "voxmesh_reply_queue_depth") == 1:
                    break
                await asyncio.sleep(0.05)
            assert gauge(metrics_port, "voxmesh_reply_queue_depth") == 1
            for worker in workers:
                worker.send_signal(signal.SIGCONT)
            stopped = False
            events = []
            while (event := await call.read()) is not grpc.aio.EOF:
                events.append(event)
        assert [e for e in events if e.WhichOneof("event") == "done"], events
        assert gauge(metrics_port, "voxmesh_reply_queue_depth") == 0
    finally:
        if stopped:
            for worker in workers:
                worker.send_signal(signal.SIGCONT)
