// The voxmesh TypeScript client: one Converse stream per conversation, typed events
// (the generated oneof, narrowed by `case`) by async iteration, like the Python SDK.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { AudioEncoding, TurnMode, VadSensitivity } from "./gen/voxmesh/v1/common_pb.js";
import {
  Control_Action,
  Conversation,
  type ConverseRequest,
  ConverseRequestSchema,
  type ConverseResponse,
} from "./gen/voxmesh/v1/conversation_pb.js";

export { TurnMode, VadSensitivity } from "./gen/voxmesh/v1/common_pb.js";
export type * from "./gen/voxmesh/v1/conversation_pb.js";

/** One server event: `event.case` says which ("sessionStarted", "replyText", "audio", ...), `event.value` is typed by it. */
export type VoxmeshEvent = Exclude<ConverseResponse["event"], { case: undefined }>;

/** The gateway's per-message bound on audio (AudioChunk.pcm). */
export const MAX_CHUNK_BYTES = 256 * 1024;

export interface SessionOptions {
  /** Bearer token the gateway checks (its --auth-token). */
  token?: string;
  /** Use https (TLS) to reach the gateway. */
  tls?: boolean;
  /** Input audio rate in Hz (8000..48000); 16000 by default. */
  sampleRateHz?: number;
  /** Reply audio rate in Hz; 24000 by default. */
  outputSampleRateHz?: number;
  voice?: string;
  language?: string;
  systemPrompt?: string;
  turnMode?: TurnMode;
  vadSensitivity?: VadSensitivity;
  /** Functions the assistant may call; each call arrives as a `toolCall` event. */
  tools?: ToolDefinition[];
  /** "auto" (default), "none", "required" or a tool's name. */
  toolChoice?: string;
  /** Results wait for `requestReply()` instead of the reply going on by itself. */
  toolsWaitForReply?: boolean;
}

/** A tool, as OpenAI's function tools declare one: `parameters` is the arguments' JSON Schema. */
export interface ToolDefinition {
  name: string;
  description?: string;
  parameters?: Record<string, unknown>;
}

/** A call to the gateway failed; `code` is the gRPC status name. */
export class VoxmeshError extends Error {
  readonly retryable: boolean = false;
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}
/** The gateway refused what was sent (the message names the field). Permanent. */
export class InvalidRequest extends VoxmeshError {}
/** Missing or wrong bearer token. */
export class Unauthenticated extends VoxmeshError {}
/** Too many sessions, or this client read too slowly. Retry later. */
export class Overloaded extends VoxmeshError {
  override readonly retryable = true;
}
/** The gateway is down, restarting or draining. Retry with backoff. */
export class Unavailable extends VoxmeshError {
  override readonly retryable = true;
}

const BY_CODE: Partial<Record<Code, new (code: string, message: string) => VoxmeshError>> = {
  [Code.InvalidArgument]: InvalidRequest,
  [Code.Unauthenticated]: Unauthenticated,
  [Code.ResourceExhausted]: Overloaded,
  [Code.Unavailable]: Unavailable,
};

function typedError(error: unknown): unknown {
  if (!(error instanceof ConnectError)) return error;
  const name = Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  const Kind = BY_CODE[error.code] ?? VoxmeshError;
  return new Kind(name, error.rawMessage);
}

/** Requests waiting for the gRPC stream; `null` ends it. */
class RequestQueue {
  private items: (ConverseRequest | null)[] = [];
  private wake: (() => void) | null = null;

  push(item: ConverseRequest | null): void {
    this.items.push(item);
    this.wake?.();
    this.wake = null;
  }

  async *drain(): AsyncGenerator<ConverseRequest> {
    for (;;) {
      while (this.items.length === 0) await new Promise<void>((resolve) => (this.wake = resolve));
      const item = this.items.shift()!;
      if (item === null) return;
      yield item;
    }
  }
}

export class Session implements AsyncIterable<VoxmeshEvent> {
  /** The gateway's SessionStarted: session id, engines, voice. */
  readonly started: Extract<VoxmeshEvent, { case: "sessionStarted" }>["value"];
  private inputClosed = false;

  private constructor(
    private readonly queue: RequestQueue,
    private readonly responses: AsyncIterator<ConverseResponse>,
    private readonly abort: AbortController,
    first: Extract<VoxmeshEvent, { case: "sessionStarted" }>,
  ) {
    this.started = first.value;
    this.replay = [first];
  }

  private replay: VoxmeshEvent[];

  /** Open a session; a refused one (bad token, bad config, too many sessions) throws here. */
  static async connect(address = "127.0.0.1:50051", options: SessionOptions = {}): Promise<Session> {
    const transport = createGrpcTransport({ baseUrl: `${options.tls ? "https" : "http"}://${address}` });
    const client = createClient(Conversation, transport);
    const queue = new RequestQueue();
    queue.push(
      create(ConverseRequestSchema, {
        request: {
          case: "config",
          value: {
            inputSampleRateHz: options.sampleRateHz ?? 16000,
            inputEncoding: AudioEncoding.PCM16,
            outputSampleRateHz: options.outputSampleRateHz ?? 24000,
            voice: options.voice ?? "",
            language: options.language ?? "",
            systemPrompt: options.systemPrompt ?? "",
            turnMode: options.turnMode ?? TurnMode.UNSPECIFIED,
            vadSensitivity: options.vadSensitivity ?? VadSensitivity.UNSPECIFIED,
            tools: (options.tools ?? []).map((tool) => ({
              name: tool.name,
              description: tool.description ?? "",
              parametersJson: JSON.stringify(tool.parameters ?? { type: "object", properties: {} }),
            })),
            toolChoice: options.toolChoice ?? "",
            toolsWaitForReply: options.toolsWaitForReply ?? false,
          },
        },
      }),
    );
    const abort = new AbortController();
    const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
    const responses = client.converse(queue.drain(), { headers, signal: abort.signal })[Symbol.asyncIterator]();
    try {
      const first = await responses.next();
      if (first.done || first.value.event.case !== "sessionStarted") {
        throw new VoxmeshError("INTERNAL", "the gateway did not start the session");
      }
      return new Session(queue, responses, abort, first.value.event);
    } catch (error) {
      queue.push(null);
      abort.abort();
      throw typedError(error);
    }
  }

  /** Microphone audio at the configured rate: PCM16 bytes, Int16 samples or float samples in [-1, 1]. */
  sendAudio(audio: Uint8Array | Int16Array | Float32Array): void {
    let pcm: Uint8Array;
    if (audio instanceof Float32Array) {
      const samples = new Int16Array(audio.length);
      for (let i = 0; i < audio.length; i++) samples[i] = Math.max(-32768, Math.min(32767, Math.round(audio[i] * 32768)));
      pcm = new Uint8Array(samples.buffer);
    } else if (audio instanceof Int16Array) {
      pcm = new Uint8Array(audio.buffer, audio.byteOffset, audio.byteLength);
    } else {
      pcm = audio;
    }
    for (let start = 0; start < pcm.length; start += MAX_CHUNK_BYTES) {
      const chunk = pcm.subarray(start, start + MAX_CHUNK_BYTES);
      this.queue.push(create(ConverseRequestSchema, { request: { case: "audio", value: { pcm: chunk } } }));
    }
  }

  /** A typed turn, answered like a spoken one. */
  sendText(text: string): void {
    this.queue.push(create(ConverseRequestSchema, { request: { case: "text", value: { text } } }));
  }

  /**
   * Keys pressed on a phone keypad (DTMF: 0-9 * # A-D, up to 32): answered with a `keyPressed`
   * event naming the turn they opened, the user's text "The caller pressed 5." (a reply in
   * progress is interrupted, as by `sendText`). Anything else ends the session with
   * `InvalidRequest` naming key_press.digits.
   */
  pressKey(digits: string): void {
    this.queue.push(create(ConverseRequestSchema, { request: { case: "keyPress", value: { digits } } }));
  }

  /**
   * Answer a `toolCall` event: `output` (a string, or anything JSON can hold) or `error` when the
   * tool failed. A result for a cancelled or unknown call comes back as an `error` event
   * (INVALID_ARGUMENT naming tool_result.call_id) and changes nothing.
   */
  sendToolResult(callId: string, output: unknown = "", error = ""): void {
    const text = typeof output === "string" ? output : JSON.stringify(output);
    this.queue.push(
      create(ConverseRequestSchema, { request: { case: "toolResult", value: { callId, output: text, error } } }),
    );
  }

  /** Ask for a reply with no new input (after tool results, with `toolsWaitForReply`). */
  requestReply(instructions = ""): void {
    this.queue.push(create(ConverseRequestSchema, { request: { case: "reply", value: { instructions } } }));
  }

  /** Stop the reply in progress. */
  interrupt(): void {
    this.control(Control_Action.INTERRUPT);
  }

  /** No more input: the gateway answers the turn in progress, then ends the stream. */
  endInput(): void {
    if (this.inputClosed) return;
    this.control(Control_Action.END_OF_INPUT);
    this.inputClosed = true;
    this.queue.push(null);
  }

  private control(action: Control_Action): void {
    this.queue.push(create(ConverseRequestSchema, { request: { case: "control", value: { action } } }));
  }

  /** Server events (sessionStarted first) until the stream ends; throws a typed VoxmeshError on failure. */
  async *events(): AsyncGenerator<VoxmeshEvent> {
    yield* this.replay.splice(0);
    try {
      for (;;) {
        const next = await this.responses.next();
        if (next.done) return;
        if (next.value.event.case !== undefined) yield next.value.event;
      }
    } catch (error) {
      throw typedError(error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<VoxmeshEvent> {
    return this.events();
  }

  /** End the session now (pending replies are dropped). */
  close(): void {
    if (!this.inputClosed) {
      this.inputClosed = true;
      this.queue.push(null);
    }
    this.abort.abort();
  }
}
