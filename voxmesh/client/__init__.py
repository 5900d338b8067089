"""The voxmesh client SDK.

Blocking::

    from voxmesh.client import Session, ReplyText, AudioOut, TurnComplete

    with Session.connect("localhost:50051", sample_rate_hz=16000) as session:
        session.send_audio(pcm16_bytes)      # microphone audio, any chunk size
        session.end_input()
        for event in session.events():
            if isinstance(event, ReplyText):
                print(event.delta, end="", flush=True)
            elif isinstance(event, AudioOut):
                speaker.write(event.samples)  # float32 at event.sample_rate_hz

``AsyncSession`` is the same with ``await`` / ``async for``.
"""

from voxmesh.client.aio import AsyncSession
from voxmesh.client.errors import InvalidRequest, Overloaded, Unauthenticated, Unavailable, VoxmeshClientError
from voxmesh.client.events import (
    AudioOut,
    Engine,
    Event,
    Interrupted,
    KeyPressed,
    ReplyText,
    SessionStarted,
    SpeechEnded,
    SpeechStarted,
    StageError,
    ToolCall,
    ToolCallCancelled,
    Transcript,
    TurnComplete,
    TurnLatency,
)
from voxmesh.client.messages import Tool
from voxmesh.client.sync import Session

__all__ = [
    "AsyncSession",
    "AudioOut",
    "Engine",
    "Event",
    "Interrupted",
    "InvalidRequest",
    "KeyPressed",
    "Overloaded",
    "ReplyText",
    "Session",
    "SessionStarted",
    "SpeechEnded",
    "SpeechStarted",
    "StageError",
    "Tool",
    "ToolCall",
    "ToolCallCancelled",
    "Transcript",
    "TurnComplete",
    "TurnLatency",
    "Unauthenticated",
    "Unavailable",
    "VoxmeshClientError",
]
