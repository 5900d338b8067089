// Run against a real CPU mesh by tests/integration/test_typescript_sdk.py, which sets
// VOXMESH_GATEWAY (host:port) and VOXMESH_SPEECH_PCM (espeak speech, PCM16 16 kHz).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { InvalidRequest, Session, type VoxmeshEvent } from "../src/index.js";

const gateway = process.env.VOXMESH_GATEWAY;
if (!gateway) throw new Error("VOXMESH_GATEWAY is not set: run these tests through tests/integration/test_typescript_sdk.py");

async function untilTurnComplete(session: Session): Promise<VoxmeshEvent[]> {
  const events: VoxmeshEvent[] = [];
  for await (const event of session) {
    events.push(event);
    if (event.case === "turnComplete") return events;
  }
  throw new Error(`the stream ended before TurnComplete: ${events.map((e) => e.case)}`);
}

test("a typed turn is answered with text, audio and latency", async () => {
  const session = await Session.connect(gateway);
  try {
    assert.equal(session.started.voxtral?.engine, "echo");
    session.sendText("hello there");
    const events = await untilTurnComplete(session);
    const reply = events.flatMap((e) => (e.case === "replyText" ? [e.value.delta] : [])).join("");
    assert.match(reply, /hello there/i);
    const audioBytes = events.reduce((n, e) => n + (e.case === "audio" ? e.value.pcm.length : 0), 0);
    assert.ok(audioBytes > 24000, `only ${audioBytes} bytes of reply audio`);
    const done = events.at(-1);
    assert.ok(done?.case === "turnComplete");
    assert.ok((done.value.latency?.responseLatencyMs ?? 0) > 0);
  } finally {
    session.close();
  }
});

test("a spoken turn gets a final transcript and reply audio", async () => {
  const speech = readFileSync(process.env.VOXMESH_SPEECH_PCM ?? "");
  const session = await Session.connect(gateway, { sampleRateHz: 16000 });
  try {
    session.sendAudio(new Uint8Array(speech.buffer, speech.byteOffset, speech.byteLength));
    session.endInput();
    const events = await untilTurnComplete(session);
    const final = events.find((e) => e.case === "transcript" && e.value.isFinal);
    assert.ok(final?.case === "transcript" && final.value.text.trim().length > 0, "no final transcript");
    assert.ok(events.some((e) => e.case === "speechEnded"));
    assert.ok(events.some((e) => e.case === "audio"));
  } finally {
    session.close();
  }
});

test("a tool call is answered and the reply speaks its result", async () => {
  const weather = {
    name: "weather",
    description: "Forecast for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  };
  const session = await Session.connect(gateway, { tools: [weather] });
  try {
    assert.match(session.started.voxtral?.toolCalls ?? "", /^stand-in:/);
    session.sendText("the weather in lisbon");
    const events: VoxmeshEvent[] = [];
    for await (const event of session) {
      events.push(event);
      if (event.case === "toolCall") {
        assert.equal(event.value.name, "weather");
        assert.deepEqual(JSON.parse(event.value.argumentsJson), { city: "the weather in lisbon" });
        session.sendToolResult(event.value.callId, { sky: "sunny" });
      }
      if (event.case === "turnComplete") break;
    }
    const done = events.at(-1);
    assert.ok(done?.case === "turnComplete");
    assert.equal(done.value.replyText, 'The weather tool says: {"sky":"sunny"}.');
  } finally {
    session.close();
  }
});

test("a key press gets a keyPressed event and a turn the model reads", async () => {
  const session = await Session.connect(gateway);
  try {
    session.pressKey("5");
    const events = await untilTurnComplete(session);
    const pressed = events.find((e) => e.case === "keyPressed");
    assert.ok(pressed?.case === "keyPressed", `no keyPressed event: ${events.map((e) => e.case)}`);
    assert.equal(pressed.value.digits, "5");
    const done = events.at(-1);
    assert.ok(done?.case === "turnComplete");
    assert.equal(pressed.value.turnId, done.value.turnId);
    assert.match(done.value.replyText, /The caller pressed 5\./);
  } finally {
    session.close();
  }
});

test("a bad config is refused with InvalidRequest naming the field", async () => {
  await assert.rejects(Session.connect(gateway, { sampleRateHz: 1 }), (error: unknown) => {
    assert.ok(error instanceof InvalidRequest);
    assert.match(error.message, /input_sample_rate_hz/);
    return true;
  });
});
