"""``voxmesh talk IN.wav -o OUT.wav``: one spoken turn through the gateway."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import numpy as np
import soundfile as sf

from voxmesh.client import (
    AudioOut,
    ReplyText,
    SessionStarted,
    StageError,
    ToolCall,
    ToolCallCancelled,
    Transcript,
    VoxmeshClientError,
)
from voxmesh.client_cli import add_token_flag
from voxmesh.talk import talk
from voxmesh.tool_file import load_tool_file


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "talk", help="stream a WAV file to the gateway at real-time pace and save the spoken reply"
    )
    p.add_argument("input", help="WAV (or any soundfile format) with the user's speech")
    p.add_argument(
        "-o", "--output", default="reply.wav", help="where to write the reply audio (default reply.wav)"
    )
    p.add_argument("--gateway", default="127.0.0.1:50051", help="gateway host:port")
    p.add_argument(
        "--voice", default="", help="reply voice (orpheus: tara, leah, jess, leo, dan, mia, zac, zoe)"
    )
    p.add_argument(
        "--mode", default="", choices=["", "audio", "stream", "transcribe"], help="voxtral turn mode"
    )
    p.add_argument("--system-prompt", default="", help="instructions for the assistant")
    p.add_argument("--output-rate", type=int, default=24_000, help="reply sample rate in Hz")
    add_token_flag(p)
    p.add_argument("--fast", action="store_true", help="send audio as fast as possible instead of real time")
    p.add_argument(
        "--tools",
        metavar="FILE",
        help='JSON: OpenAI function tools to declare, or {"tools": [...], "results": {name: output}}; '
        "calls are answered from results, else asked on the terminal",
    )
    p.set_defaults(func=_run)


def _print_event(event: object) -> None:
    if isinstance(event, SessionStarted):
        engines = ", ".join(
            f"{stage}={info.engine}{' (fallback)' if info.is_fallback else ''}"
            for stage, info in (("vad", event.vad), ("voxtral", event.voxtral), ("orpheus", event.orpheus))
        )
        print(f"session {event.session_id}: {engines}")
    elif isinstance(event, Transcript) and event.is_final:
        print(f"you said:   {event.text}")
    elif isinstance(event, ReplyText):
        pass
    elif isinstance(event, ToolCall):
        print(f"tool call:  {event.name}({event.arguments_json})")
    elif isinstance(event, ToolCallCancelled):
        print(f"cancelled:  tool call {event.call_id} ({event.reason})")
    elif isinstance(event, StageError):
        print(f"error:      {event.stage} {event.code}: {event.message}", file=sys.stderr)
    elif isinstance(event, AudioOut):
        pass


def _run(args: argparse.Namespace) -> int:
    audio, rate = sf.read(args.input, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1).astype(np.float32)
    tools: dict[str, Any] = {}
    if args.tools:
        try:
            tool_file = load_tool_file(args.tools)
        except (OSError, ValueError) as exc:
            print(f"voxmesh talk: --tools: {exc}", file=sys.stderr)
            return 2
        tools = {"tools": tool_file.tools, "answer_tool": tool_file.answer}
    print(f"sending {len(mono) / rate:.2f} s of audio at {rate} Hz to {args.gateway}")
    try:
        result = asyncio.run(
            talk(
                mono,
                rate,
                args.gateway,
                realtime=not args.fast,
                token=args.token,
                on_event=_print_event,
                voice=args.voice,
                turn_mode=args.mode,
                system_prompt=args.system_prompt,
                output_sample_rate_hz=args.output_rate,
                **tools,
            )
        )
    except VoxmeshClientError as exc:
        print(f"voxmesh talk: {exc}", file=sys.stderr)
        return 1
    print(f"reply:      {result.reply_text.strip()}")
    reply, out_rate = result.reply_audio()
    sf.write(args.output, reply, out_rate, subtype="PCM_16")
    print(f"wrote {len(reply) / out_rate:.2f} s of reply audio to {args.output}")
    for turn in result.turns:
        lat = turn.latency
        print(f"turn {turn.turn_id} latency (ms):")
        for name, value in (
            ("vad decision (endpoint - t_end)", lat.vad_decision_ms),
            ("voxtral first token", lat.voxtral_first_token_ms),
            ("first speakable phrase", lat.first_phrase_ms),
            ("orpheus first audio", lat.orpheus_first_audio_ms),
            ("gateway overhead", lat.gateway_overhead_ms),
            ("response latency", lat.response_latency_ms),
            ("voice-to-voice", lat.voice_to_voice_ms),
        ):
            print(f"  {name:34s} {value:8.1f}")
        if turn.turn_id in result.client_response_ms:
            print(f"  {'response latency at this client':34s} {result.client_response_ms[turn.turn_id]:8.1f}")
    if not result.turns:
        print("no turn completed (no speech detected, or a stage failed)", file=sys.stderr)
        return 1
    return 0
