"""One user turn and its reply: state, the spoken phrases, and the latency marks."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from voxmesh.gateway.endpointing import Listening
from voxmesh.gateway.playback_position import ReplyPlayback
from voxmesh.gateway.speculation import Speculation, TentativeReply
from voxmesh.gateway.unfinished_words import EndpointHold
from voxmesh.v1 import conversation_pb2


class TurnState(enum.Enum):
    #: The user is speaking; audio goes to voxtral.
    LISTENING = "listening"
    #: Endpoint reached (or text typed); the reply is being written and spoken.
    REPLYING = "replying"
    #: All reply audio was sent; the client may still be playing it.
    DONE = "done"
    #: Cut short by barge-in, Control.INTERRUPT or a failed stage.
    ENDED = "ended"


@dataclass
class SpokenPhrase:
    text: str
    #: Estimated time its playback ends on the client (perf_counter seconds).
    playout_end: float


@dataclass
class Turn:
    turn_id: int
    #: The id voxtral and orpheus know the turn by: the client's, unless a
    #: speculative attempt was discarded (each attempt takes a new one).
    stage_turn_id: int = 0
    #: Until the endpoint: the tentative reply and the held endpoint, and their
    #: transitions (gateway.endpointing).
    listening: Listening = field(default_factory=lambda: Listening(0, Speculation(0), EndpointHold(0)))
    #: The reply was made speculatively and released at the endpoint.
    speculative: bool = False
    #: The utterance's audio as sent to voxtral (16 kHz PCM16), to send again if
    #: a speculative attempt is discarded; kept only while speculation is on.
    utterance_pcm: bytearray = field(default_factory=bytearray)
    #: Wall time (perf_counter) of the user's last voiced sample; None for typed turns.
    t_end: float | None = None
    #: Wall time of the endpoint: VAD speech_ended arrival, or the TextInput's.
    endpoint: float | None = None
    #: When voxtral was asked for the reply: the endpoint, or a pause before it (speculative).
    reply_requested: float | None = None
    first_token: float | None = None
    first_phrase: float | None = None
    orpheus_first_audio: float | None = None
    first_audio_sent: float | None = None
    state: TurnState = TurnState.LISTENING
    transcript: str = ""
    #: The transcriber's confidence in the transcript's last word (final transcripts; None: not known).
    transcript_confidence: float | None = None
    reply_text: str = ""
    reply_done: bool = False
    #: Tokens in the prompt voxtral answered from (its ReplyDone).
    prompt_tokens: int = 0
    #: Samples of reply audio received from orpheus / sent to the client, at the output rate.
    audio_samples_received: int = 0
    audio_samples_sent: int = 0
    phrases: list[SpokenPhrase] = field(default_factory=list)
    #: Where the client's playback of this turn's audio will end (perf_counter s).
    playout_end: float = 0.0
    #: Phrase spans in the reply audio and the client's playback reports (a barge-in's cut).
    playback: ReplyPlayback = field(default_factory=ReplyPlayback)

    @property
    def tentative(self) -> TentativeReply | None:
        """A reply being written in the user's pause, held until the endpoint (gateway.speculation)."""
        return self.listening.tentative

    @property
    def active(self) -> bool:
        """Still being produced or played: speech now is a barge-in."""
        if self.state is TurnState.REPLYING:
            return True
        return self.state is TurnState.DONE and time.perf_counter() < self.playout_end

    def note_audio_sent(self, samples: int, sample_rate_hz: int, now: float) -> None:
        if self.first_audio_sent is None:
            self.first_audio_sent = now
            self.playout_end = now
        # Playback runs at real time from the first chunk; a gap in sending
        # (a slow phrase) means the client waited, so playback restarts at now.
        self.playout_end = max(self.playout_end, now) + samples / sample_rate_hz
        self.audio_samples_sent += samples

    def spoken_text(self, at: float) -> str:
        """The reply as heard by ``at``: phrases whose playback had ended."""
        return " ".join(p.text for p in self.phrases if p.playout_end <= at).strip()

    def latency(self) -> conversation_pb2.TurnLatency:
        """Stage marks in ms; the stage marks count from the endpoint (see the proto)."""
        assert self.endpoint is not None

        def since_endpoint(mark: float | None) -> float:
            return 1000.0 * (mark - self.endpoint) if mark is not None and self.endpoint is not None else 0.0

        vad_ms = 1000.0 * (self.endpoint - self.t_end) if self.t_end is not None else 0.0
        response_ms = since_endpoint(self.first_audio_sent)
        return conversation_pb2.TurnLatency(
            vad_decision_ms=max(vad_ms, 0.0),
            voxtral_first_token_ms=since_endpoint(self.first_token),
            first_phrase_ms=since_endpoint(self.first_phrase),
            orpheus_first_audio_ms=since_endpoint(self.orpheus_first_audio),
            response_latency_ms=response_ms,
            voice_to_voice_ms=response_ms + max(vad_ms, 0.0),
            # From the first audio (or the endpoint, for audio made ahead of it and held) to sending it.
            gateway_overhead_ms=(
                1000.0 * (self.first_audio_sent - max(self.orpheus_first_audio, self.endpoint))
                if self.first_audio_sent is not None and self.orpheus_first_audio is not None
                else 0.0
            ),
        )
