// The browser call page: a plain RTCPeerConnection to the agent (no external
// scripts, works offline) that speaks RTVI over a data channel.
//
// URL flags: #caller=ID (in the fragment, which the browser never sends, so no
// server or proxy logs it) is passed to the server in the offer's body; ?caller=ID
// still works for old links. #call_token=T (or ?call_token=T) is the single-use call
// token a server off loopback needs (minted by the site's backend at
// POST /api/call-tokens; an operator logged in to the dashboard needs none). ?raw=1
// turns off echo cancellation, noise suppression and gain control (tests that feed a
// file as the microphone). #ring=T&from=NAME is an outbound call ringing this page
// (POST /api/calls/outbound with channel "browser"): Answer starts the call with the
// single-use ring token, Decline tells the server (the attempt ends as no-answer).
// window.callagent exposes the call's state for tests.
"use strict";

(() => {
  const RTVI_LABEL = "rtvi-ai";
  const RTVI_VERSION = "2.2.0";
  const SILENCE_RMS = 0.01; // about -40 dBFS: quieter than this is silence
  const AUDIBLE_TICKS = 3; // consecutive 50 ms ticks above it count as audio
  const ICE_GATHERING_WAIT_MS = 1000;
  const MAX_EVENTS = 500;

  const query = new URLSearchParams(window.location.search);
  const RAW_AUDIO = query.get("raw") === "1";
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const CALLER = fragment.get("caller") || query.get("caller");
  const CALL_TOKEN = fragment.get("call_token") || query.get("call_token");
  let ring = fragment.get("ring"); // used up by Answer or Decline
  const RING_FROM = fragment.get("from") || "the agent";
  const RING_SECS = 30;

  const $ = (id) => document.getElementById(id);
  const ui = {
    button: $("call-button"),
    state: $("state"),
    notice: $("notice"),
    transcript: $("transcript"),
    empty: $("transcript-empty"),
    turns: $("stat-turns"),
    last: $("stat-last"),
    p50: $("stat-p50"),
    meterUser: $("meter-user"),
    meterBot: $("meter-bot"),
    audio: $("bot-audio"),
  };

  const STATE_LABELS = {
    idle: "Ready to call",
    connecting: "Connecting…",
    listening: "Listening",
    thinking: "Thinking…",
    speaking: "Speaking",
    transferring: "Transferring you…",
    ended: "Call ended",
    error: "Could not connect",
  };

  // Test hook: read-only view of the call for automated browser tests.
  const hook = {
    callState: "idle", // idle | connecting | connected | ended
    state: "idle", // the agent: listening | thinking | speaking (see STATE_LABELS)
    transcript: [], // {role: "user" | "bot", text, interim}
    latencies: [], // {kind, total_ms, stages_ms}
    audioReceived: false, // non-silent audio from the agent was heard
    botReady: false,
    transferring: false,
    endReason: null,
    events: [], // RTVI message types received, in order
  };
  window.callagent = hook;

  let call = null;
  const seenUserText = new Set();
  let sawBotOutput = false;

  // ---------------------------------------------------------------- UI state

  function setState(state) {
    if (hook.transferring && !["ended", "error"].includes(state)) state = "transferring";
    hook.state = state;
    ui.state.dataset.state = state;
    ui.state.textContent = STATE_LABELS[state] || state;
  }

  function setCallState(callState) {
    hook.callState = callState;
    const active = callState === "connecting" || callState === "connected";
    ui.button.textContent = active ? "Hang up" : "Call";
    ui.button.classList.toggle("button--hangup", active);
    ui.button.disabled = false;
  }

  function showNotice(text, kind = "info") {
    ui.notice.textContent = text;
    ui.notice.dataset.kind = kind;
    ui.notice.hidden = false;
  }

  function hideNotice() {
    ui.notice.hidden = true;
    ui.notice.textContent = "";
  }

  // -------------------------------------------------------------- transcript

  function lastEntry(role) {
    const last = hook.transcript[hook.transcript.length - 1];
    return last && last.role === role ? last : null;
  }

  function newEntry(role) {
    const entry = { role, text: "", interim: "", latency: null };
    const li = document.createElement("li");
    li.className = `turn turn--${role}`;
    const who = document.createElement("span");
    who.className = "turn__who";
    who.textContent = role === "user" ? "You" : "Agent";
    const text = document.createElement("span");
    text.className = "turn__text";
    const interim = document.createElement("span");
    interim.className = "turn__interim";
    li.append(who, text, interim);
    ui.transcript.append(li);
    ui.empty.hidden = true;
    // Not enumerable, so the test hook stays plain JSON.
    Object.defineProperty(entry, "dom", { value: { li, text, interim }, enumerable: false });
    Object.defineProperty(entry, "segments", { value: new Map(), enumerable: false });
    hook.transcript.push(entry);
    return entry;
  }

  function render(entry) {
    entry.dom.text.textContent = entry.text;
    entry.dom.interim.textContent = entry.interim ? (entry.text ? " " : "") + entry.interim : "";
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }

  function addUserText(text, final) {
    const entry = lastEntry("user") || newEntry("user");
    if (final) {
      entry.text = [entry.text, text.trim()].filter(Boolean).join(" ");
      entry.interim = "";
    } else {
      entry.interim = text.trim();
    }
    render(entry);
  }

  function setBotSegment(id, text) {
    const entry = lastEntry("bot") || newEntry("bot");
    entry.segments.set(id, text.trim());
    entry.text = [...entry.segments.values()].filter(Boolean).join(" ");
    render(entry);
  }

  // ----------------------------------------------------------------- latency

  function formatMs(ms) {
    return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
  }

  function median(values) {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  function addLatency(data) {
    const total = Number(data.total_ms);
    if (!Number.isFinite(total)) return;
    const record = { kind: data.kind || "turn", total_ms: total, stages_ms: data.stages_ms || {} };
    hook.latencies.push(record);

    const entry = lastEntry("bot") || newEntry("bot");
    entry.latency = record;
    let node = entry.dom.li.querySelector(".turn__latency");
    if (!node) {
      node = document.createElement("span");
      node.className = "turn__latency";
      entry.dom.li.append(node);
    }
    const stages = Object.entries(record.stages_ms)
      .filter(([, ms]) => Number.isFinite(Number(ms)))
      .map(([name, ms]) => `${name.replace(/_/g, " ")} ${formatMs(Number(ms))}`);
    const label = record.kind === "greeting" ? "Answered in" : "Replied in";
    node.replaceChildren(`${label} `);
    const strong = document.createElement("strong");
    strong.textContent = formatMs(total);
    node.append(strong);
    if (stages.length) node.append(` · ${stages.join(" · ")}`);

    const turns = hook.latencies.filter((l) => l.kind !== "greeting").map((l) => l.total_ms);
    ui.turns.textContent = String(turns.length);
    ui.last.textContent = turns.length ? formatMs(turns[turns.length - 1]) : "–";
    ui.p50.textContent = turns.length ? formatMs(median(turns)) : "–";
  }

  // -------------------------------------------------------------------- RTVI

  function newId() {
    return window.crypto && crypto.randomUUID
      ? crypto.randomUUID()
      : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  function sendRtvi(type, data) {
    if (!call || !call.dc || call.dc.readyState !== "open") return false;
    call.dc.send(JSON.stringify({ label: RTVI_LABEL, type, id: newId(), data }));
    return true;
  }

  function onUserText(data) {
    if (!data || typeof data.text !== "string") return;
    const key = `${data.final}|${data.timestamp}|${data.text}`;
    if (seenUserText.has(key)) return; // sent as both user-input and user-transcription
    seenUserText.add(key);
    addUserText(data.text, data.final !== false);
  }

  function onServerMessage(data) {
    if (!data || typeof data !== "object") return;
    if (data.type === "latency") {
      addLatency(data);
    } else if (data.type === "handoff") {
      hook.transferring = true;
      showNotice("Transferring you to a person…");
      setState("transferring");
    } else if (data.type === "call-ended") {
      hook.endReason = String(data.reason || "ended");
      showNotice(`The call has ended (${hook.endReason}).`);
      // The server hangs up once its goodbye has played; this is a fallback.
      if (call) call.endTimer = setTimeout(() => endCall(false), 15000);
    }
  }

  function onRtviMessage(msg) {
    if (hook.events.length < MAX_EVENTS) hook.events.push(msg.type);
    const data = msg.data;
    switch (msg.type) {
      case "bot-ready":
        hook.botReady = true;
        if (hook.state === "connecting") setState("listening");
        break;
      case "user-started-speaking":
        setState("listening");
        break;
      case "user-stopped-speaking":
        setState("thinking");
        break;
      case "bot-started-speaking":
        setState("speaking");
        break;
      case "bot-stopped-speaking":
      case "bot-interrupted":
        setState("listening");
        break;
      case "user-transcription":
        onUserText(data);
        break;
      case "user-input":
        if (data && (data.input_type === "transcription" || data.input_type === "chat")) {
          onUserText(data);
        }
        break;
      case "bot-output":
        if (data && typeof data.text === "string") {
          sawBotOutput = true;
          setBotSegment(data.segment_id ?? newId(), data.text);
        }
        break;
      case "bot-tts-text":
        // Older servers send only this; newer ones send bot-output first.
        if (!sawBotOutput && data && typeof data.text === "string") {
          const entry = lastEntry("bot");
          setBotSegment(entry ? entry.segments.size : 0, data.text);
        }
        break;
      case "server-message":
        onServerMessage(data);
        break;
      case "error":
        if (data && data.fatal) showNotice(`The agent hit an error: ${data.error}`, "error");
        break;
      default:
        break; // metrics, bot-llm-*, bot-tts-started/stopped, ...
    }
  }

  function onDataChannelMessage(event) {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    if (msg.label === RTVI_LABEL) {
      onRtviMessage(msg);
    } else if (msg.type === "signalling" && msg.message && msg.message.type === "peerLeft") {
      endCall(false, hook.endReason ? null : "The agent hung up.");
    }
  }

  // ------------------------------------------------------------------- audio

  function analyser(ctx, stream) {
    const node = ctx.createAnalyser();
    node.fftSize = 1024;
    ctx.createMediaStreamSource(stream).connect(node);
    return { node, buffer: new Float32Array(node.fftSize) };
  }

  function rms(meter) {
    meter.node.getFloatTimeDomainData(meter.buffer);
    let sum = 0;
    for (const v of meter.buffer) sum += v * v;
    return Math.sqrt(sum / meter.buffer.length);
  }

  function showLevel(bar, level) {
    bar.style.width = `${Math.min(100, Math.round(level * 400))}%`;
  }

  function watchLevels() {
    let loudTicks = 0;
    call.levelTimer = setInterval(() => {
      if (!call) return;
      if (call.userMeter) showLevel(ui.meterUser, rms(call.userMeter));
      if (call.botMeter) {
        const level = rms(call.botMeter);
        showLevel(ui.meterBot, level);
        loudTicks = level > SILENCE_RMS ? loudTicks + 1 : 0;
        if (loudTicks >= AUDIBLE_TICKS) hook.audioReceived = true;
      }
    }, 50);
  }

  function onRemoteTrack(event) {
    if (event.track.kind !== "audio" || call.botMeter) return;
    const stream = event.streams[0] || new MediaStream([event.track]);
    // Chrome only feeds a remote WebRTC stream to WebAudio while an element plays it.
    ui.audio.srcObject = stream;
    ui.audio.play().catch(() => {});
    call.botMeter = analyser(call.audioCtx, stream);
  }

  // --------------------------------------------------------------- signalling

  async function requestJson(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof payload.detail === "string" ? payload.detail : response.statusText;
      throw new Error(`${method} ${url}: ${response.status} ${detail}`);
    }
    return payload;
  }

  function waitForIceGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        pc.removeEventListener("icegatheringstatechange", check);
        clearTimeout(timer);
        resolve();
      };
      const check = () => pc.iceGatheringState === "complete" && done();
      const timer = setTimeout(done, timeoutMs);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  function onIceCandidate(event) {
    // Candidates found before the offer was sent are in its SDP; later ones trickle.
    if (!call || !call.offerSent || !event.candidate || !event.candidate.candidate) return;
    call.lateCandidates.push(event.candidate.toJSON());
    sendLateCandidates();
  }

  function sendLateCandidates() {
    if (!call || !call.pcId || !call.lateCandidates.length) return;
    const candidates = call.lateCandidates.splice(0).map((c) => ({
      candidate: c.candidate,
      sdp_mid: c.sdpMid ?? "0",
      sdp_mline_index: c.sdpMLineIndex ?? 0,
    }));
    requestJson("PATCH", "/api/offer", { pc_id: call.pcId, candidates }).catch((e) =>
      console.warn("ICE candidates not sent:", e.message),
    );
  }

  // ---------------------------------------------------------------- the call

  function resetCallView() {
    hook.transcript.length = 0;
    hook.latencies.length = 0;
    hook.events.length = 0;
    hook.audioReceived = false;
    hook.botReady = false;
    hook.transferring = false;
    hook.endReason = null;
    seenUserText.clear();
    sawBotOutput = false;
    ui.transcript.replaceChildren();
    ui.empty.hidden = false;
    ui.turns.textContent = "0";
    ui.last.textContent = "–";
    ui.p50.textContent = "–";
    hideNotice();
  }

  async function startCall(ringToken = null) {
    resetCallView();
    setCallState("connecting");
    setState("connecting");
    ui.button.disabled = true;
    const audioCtx = new AudioContext(); // created on the click, so it may play
    call = { audioCtx, pc: null, dc: null, stream: null, pcId: null, offerSent: false, lateCandidates: [], ring: ringToken };
    const current = call;
    try {
      const audio = RAW_AUDIO
        ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false }
        : { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
      try {
        call.stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
      } catch (e) {
        throw new Error(`The microphone is not available (${e.name}). Allow microphone access and try again.`);
      }
      if (call !== current) return;
      const config = await requestJson("GET", "/api/webrtc-config").catch(() => ({ iceServers: [] }));
      const pc = new RTCPeerConnection({ iceServers: config.iceServers || [] });
      call.pc = pc;
      call.userMeter = analyser(audioCtx, call.stream);
      for (const track of call.stream.getAudioTracks()) pc.addTrack(track, call.stream);
      call.dc = pc.createDataChannel("rtvi", { ordered: true });
      call.dc.onopen = () =>
        sendRtvi("client-ready", {
          version: RTVI_VERSION,
          about: { library: "callagent-page", library_version: "1.0.0", platform: "browser" },
        });
      call.dc.onmessage = onDataChannelMessage;
      pc.ontrack = onRemoteTrack;
      pc.onicecandidate = onIceCandidate;
      pc.onconnectionstatechange = () => {
        if (call !== current) return;
        if (pc.connectionState === "connected") {
          setCallState("connected");
          if (hook.state === "connecting") setState("listening");
        } else if (pc.connectionState === "failed") {
          endCall(false, "The connection to the agent failed.", "error");
        } else if (pc.connectionState === "closed") {
          endCall(false);
        }
      };
      await audioCtx.resume().catch(() => {});
      watchLevels();

      await pc.setLocalDescription(await pc.createOffer());
      await waitForIceGathering(pc, ICE_GATHERING_WAIT_MS);
      if (call !== current) return;
      call.offerSent = true;
      const answer = await requestJson("POST", "/api/offer", {
        sdp: pc.localDescription.sdp,
        type: pc.localDescription.type,
        request_data: { ...(CALLER ? { caller: CALLER } : {}), ...(call.ring ? { ring: call.ring } : {}) },
        ...(CALL_TOKEN ? { call_token: CALL_TOKEN } : {}),
      });
      if (call !== current) return;
      call.pcId = answer.pc_id;
      await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
      sendLateCandidates();
      ui.button.disabled = false;
    } catch (e) {
      if (call === current) endCall(false, e.message || String(e), "error");
    }
  }

  async function endCall(byCaller, message, kind = "info") {
    const ending = call;
    if (!ending) return;
    call = null;
    if (byCaller && ending.dc && ending.dc.readyState === "open") {
      ending.dc.send(JSON.stringify({ label: RTVI_LABEL, type: "disconnect-bot", id: newId() }));
      await new Promise((resolve) => setTimeout(resolve, 150)); // let it leave
    }
    clearInterval(ending.levelTimer);
    clearTimeout(ending.endTimer);
    if (ending.stream) ending.stream.getTracks().forEach((t) => t.stop());
    if (ending.pc) ending.pc.close();
    ending.audioCtx.close().catch(() => {});
    ui.audio.srcObject = null;
    showLevel(ui.meterUser, 0);
    showLevel(ui.meterBot, 0);
    setCallState("ended");
    hook.transferring = false;
    setState(kind === "error" ? "error" : "ended");
    if (message) showNotice(message, kind);
  }

  ui.button.addEventListener("click", () => {
    if (call) endCall(true);
    else startCall();
  });

  // An outbound call ringing this page (see the header).
  function showRing() {
    const panel = $("ring");
    $("ring-title").textContent = `Incoming call from ${RING_FROM}`;
    panel.hidden = false;
    ui.button.hidden = true;
    hook.ringing = true;
    const stop = (message) => {
      ring = null;
      panel.hidden = true;
      ui.button.hidden = false;
      hook.ringing = false;
      clearTimeout(timer);
      if (message) showNotice(message, "info");
    };
    const timer = setTimeout(() => stop("Missed call."), RING_SECS * 1000);
    $("ring-answer").addEventListener("click", () => {
      const token = ring;
      stop();
      if (!token) return;
      startCall(token);
    });
    $("ring-decline").addEventListener("click", () => {
      const token = ring;
      stop("Call declined.");
      if (token) requestJson("POST", "/api/calls/ring/decline", { ring: token }).catch(() => {});
    });
  }
  if (ring) showRing();
})();
