// The voxmesh browser page: a plain OpenAI-Realtime client of the edge it is served by.
// Microphone → AudioWorklet → PCM16 24 kHz → input_audio_buffer.append; reply audio
// deltas are scheduled back to back on the same AudioContext; barge-in stops playback
// and reports how much was heard (conversation.item.truncate).

const RATE = 24000;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token");

// What the page saw, for people and for the browser test.
const stats = (window.voxmeshStats = {
  connected: false, engines: null, finalTranscripts: [], replies: [], audioBytes: 0,
  responsesDone: 0, latency: null, errors: [], firstAudioMs: null,
});

const protocols = ["realtime"];
if (token) protocols.push(`openai-insecure-api-key.${token}`);
const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/realtime`, protocols);

let ctx = null;
let playHead = 0;            // AudioContext time the next reply chunk starts at
let playing = [];            // scheduled AudioBufferSourceNodes
let reply = null;            // {itemId, startedAt (ctx time), el}
let userEl = null;
let speechStoppedAt = null;

function send(event) { ws.send(JSON.stringify(event)); }

function line(cls, text) {
  const el = document.createElement("div");
  el.className = `turn ${cls}`;
  el.textContent = text;
  $("log").appendChild(el);
  return el;
}

function engineText(engines) {
  return Object.entries(engines).map(([stage, e]) => {
    const model = e.model ? ` (${e.model})` : "";
    const loop = e.engine === "echo" ? " — a loop-back, not a model" : "";
    return `<span>${stage}: <b class="${e.is_fallback ? "fallback" : ""}">${e.engine}</b>${model}${loop}</span>`;
  }).join(" · ");
}

function pcm16Base64(float32) {
  const pcm = new Int16Array(float32.length);
  for (let i = 0; i < float32.length; i++) {
    const s = Math.max(-1, Math.min(1, float32[i]));
    pcm[i] = s < 0 ? s * 32768 : s * 32767;
  }
  let binary = "";
  const bytes = new Uint8Array(pcm.buffer);
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function playDelta(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  stats.audioBytes += bytes.length;
  const samples = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
  const buffer = ctx.createBuffer(1, samples.length, RATE);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  const at = Math.max(ctx.currentTime + 0.02, playHead);
  if (reply && reply.startedAt === null) reply.startedAt = at;
  source.start(at);
  playHead = at + buffer.duration;
  playing.push(source);
  source.onended = () => { playing = playing.filter((s) => s !== source); };
}

function stopPlayback(userCut = false) {
  // How much of the reply the user heard, for the edge to keep in history.
  const heardMs = reply && reply.startedAt !== null ? Math.max(0, Math.round((ctx.currentTime - reply.startedAt) * 1000)) : 0;
  const stillPlaying = playing.length > 0;
  playing.forEach((s) => { try { s.stop(); } catch (_) { /* already ended */ } });
  playing = [];
  playHead = ctx ? ctx.currentTime : 0;
  // Say where playback stopped while the reply is being generated, or (the interrupt
  // button) still plays: the edge interrupts the turn and the gateway keeps in history
  // the reply up to the word playing at audio_end_ms. On speech_started a reply already
  // generated is left to the gateway, which cuts it by its playout clock only once the
  // speech is confirmed (a cough does not end it).
  if (reply && reply.itemId && (reply.active || (userCut && stillPlaying))) {
    send({ type: "conversation.item.truncate", item_id: reply.itemId, content_index: 0, audio_end_ms: heardMs });
  }
}

function showLatency(latency, audioMs) {
  const rows = Object.entries(latency).map(([k, v]) => `<tr><td>${k.replace(/_ms$/, "").replaceAll("_", " ")}</td><td>${v.toFixed(1)}</td></tr>`);
  if (audioMs !== undefined) rows.push(`<tr><td>reply audio</td><td>${audioMs.toFixed(0)}</td></tr>`);
  $("latency").querySelector("tbody").innerHTML = rows.join("");
  $("latency").hidden = false;
}

ws.onopen = () => { stats.connected = true; $("status").textContent = "connected"; $("start").disabled = false; };
ws.onclose = (e) => { stats.connected = false; $("status").textContent = `disconnected (${e.code}${e.reason ? ": " + e.reason : ""})`; $("start").disabled = true; };

ws.onmessage = (message) => {
  const event = JSON.parse(message.data);
  switch (event.type) {
    case "session.created":
      stats.engines = event.session.voxmesh ? event.session.voxmesh.engines : null;
      $("engines").innerHTML = stats.engines ? engineText(stats.engines) : "engines unknown";
      break;
    case "input_audio_buffer.speech_started":
      stopPlayback();
      userEl = line("you partial", "…");
      $("status").textContent = "listening";
      break;
    case "input_audio_buffer.speech_stopped":
      speechStoppedAt = performance.now();
      $("status").textContent = "thinking";
      break;
    case "conversation.item.input_audio_transcription.delta":
      if (!userEl) userEl = line("you partial", "");
      userEl.textContent = (userEl.textContent === "…" ? "" : userEl.textContent) + event.delta;
      break;
    case "conversation.item.input_audio_transcription.completed":
      if (!userEl) userEl = line("you", "");
      userEl.className = "turn you";
      userEl.textContent = `you: ${event.transcript}`;
      stats.finalTranscripts.push(event.transcript);
      userEl = null;
      break;
    case "response.created":
      reply = { itemId: null, startedAt: null, active: true, el: line("reply", "") };
      $("interrupt").disabled = false;
      break;
    case "response.output_item.added":
      if (reply) reply.itemId = event.item.id;
      break;
    case "response.output_audio_transcript.delta":
      if (reply) reply.el.textContent += event.delta;
      break;
    case "response.output_audio.delta":
      if (stats.firstAudioMs === null && speechStoppedAt !== null) stats.firstAudioMs = performance.now() - speechStoppedAt;
      playDelta(event.delta);
      $("status").textContent = "speaking";
      break;
    case "response.done": {
      const r = event.response;
      stats.responsesDone += 1;
      if (reply) {
        reply.active = false;
        stats.replies.push(reply.el.textContent);
        if (r.status !== "completed") line("cut", `(${r.status}${r.status_details && r.status_details.reason ? ": " + r.status_details.reason : ""})`);
      }
      if (r.voxmesh && r.voxmesh.latency_ms) {
        stats.latency = r.voxmesh.latency_ms;
        showLatency(r.voxmesh.latency_ms, r.voxmesh.reply_audio_ms);
      }
      $("status").textContent = "listening";
      break;
    }
    case "error":
      stats.errors.push(event.error);
      $("errors").textContent = `${event.error.code || event.error.type}: ${event.error.message}`;
      break;
    default:
      break;
  }
};

$("start").onclick = async () => {
  $("start").disabled = true;
  ctx = new AudioContext({ sampleRate: RATE });
  await ctx.audioWorklet.addModule("/page/mic-worklet.js");
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  const mic = new AudioWorkletNode(ctx, "mic-capture");
  mic.port.onmessage = (e) => {
    if (ws.readyState === WebSocket.OPEN) send({ type: "input_audio_buffer.append", audio: pcm16Base64(e.data) });
  };
  ctx.createMediaStreamSource(stream).connect(mic);
  // Chrome renders only nodes that reach the destination: a silent path keeps the worklet running.
  const mute = ctx.createGain();
  mute.gain.value = 0;
  mic.connect(mute).connect(ctx.destination);
  $("status").textContent = "listening";
};

$("interrupt").onclick = () => {
  const active = reply && reply.active;
  stopPlayback(true);  // sends the truncate (with the playback position) while the reply is generated or plays
  if (!active) $("interrupt").disabled = true;
};
