// The poselink viewer: joins one room of a hub as a viewer over WebSocket and draws
// every member's skeleton on a canvas, with a legend (fps, delay, audio level) and a
// status line. It speaks the binary protocol through ./poselink.js; docs/VIEWER.md
// describes the page and its URL parameters.
//
// URL: /view/ROOM (served by the hub). Overrides: ?room=NAME (when the page is served
// from elsewhere), ?hub=ws://HOST:PORT/ (another hub), #token=JWT (a viewer token).
//
// For tests and scripts the page keeps `window.poselinkViewer` up to date
// ({framesDecoded, members, lastError, connected, room, skeletons, hubRttMs}) and
// mirrors framesDecoded into `document.body.dataset.framesDecoded` and the title.

import {
  decodeMessage, encodeMessage, PoseStreams, PoselinkError, POSE_CONNECTIONS, LANDMARK_COUNT,
  audioLevel, clockSample, ERROR_CODES, Kind,
} from './poselink.js';

const CLIENT = 'poselink-viewer/1.0';
/** Refusals that a token can cure: unauthenticated, token_invalid, token_expired. */
const AUTH_CODES = new Set([3, 4, 5]);
const AUTH_CLOSE_CODES = new Set([4003, 4004, 4005]);
const NO_SUCH_ROOM = 9;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];
const REJOIN_MS = 5000;
const PING_MS = 2000;
/** A skeleton not updated for this long is drawn faded, and after HIDE_MS not at all. */
const STALE_MS = 1500;
const HIDE_MS = 10000;
/** Points and segments less visible than this are not drawn. */
const MIN_VISIBILITY = 0.2;
/** The delay baseline is the quickest frame of this many seconds. */
const DELAY_WINDOW_S = 10;
const PALETTE = ['#4cc9f0', '#f72585', '#b5e48c', '#ffb703', '#9b5de5', '#00f5d4', '#fb8500', '#e9ecef'];
/** The synthetic source's and most webcams' frame shape. */
const ASPECT = 4 / 3;

const params = new URLSearchParams(location.search);
const room = params.get('room') || roomFromPath(location.pathname);
const hubUrl = params.get('hub') || `${location.protocol === 'https:' ? 'wss://' : 'ws://'}${location.host}/`;
let token = new URLSearchParams(location.hash.slice(1)).get('token') || '';

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'), roomName: $('room-name'), canvas: $('stage'), members: $('members'),
  noMembers: $('no-members'), form: $('token-form'), why: $('token-why'), tokenInput: $('token-input'),
};
const ctx = ui.canvas.getContext('2d');

const state = {
  ws: null,
  connected: false,
  member: 0, // our member id
  resume: 0n,
  handle: 0, // the room's handle, 0 until the snapshot
  seq: 0, // control messages sent on this connection
  attempt: 0,
  stopped: false, // no reconnect: refused for auth, kicked, or no room in the URL
  members: new Map(), // member id → Member
  colours: 0,
  streams: new PoseStreams(),
  skeletons: new Map(), // 'member/person' → {member, frame, at}
  asked: new Set(), // streams for which a needs_keyframe was sent in this outage
  framesDecoded: 0,
  audioDecoded: 0, // audio blocks whose level was taken (PCM16 chunks, decoded Opus packets)
  audioCodec: null, // the codec of the last audio chunk: 'pcm16' or 'opus'

  lastError: null,
  hubRttMs: null,
  timers: [],
};

/** What the page shows about one member. */
class Member {
  constructor(info, colour) {
    this.id = info.member;
    this.user = info.user;
    this.role = info.role;
    this.colour = colour;
    this.arrivals = []; // arrival times (ms) of the last second's frames
    this.minima = []; // [second, min(arrival − capture) µs] for the last DELAY_WINDOW_S s
    this.delayMs = null;
    this.rms = 0;
    this.audioAt = -Infinity;
    this.audioNote = null; // said instead of a level (Opus without WebCodecs)
    this.opus = null; // WebCodecs AudioDecoder, made on the member's first Opus packet
    this.opusChannels = 0;
    this.item = null;
  }

  /** Notes a frame captured at `tsUs` (sender's clock) that arrived at `nowMs` (ours). */
  frame(tsUs, nowMs) {
    this.arrivals.push(nowMs);
    while (this.arrivals.length && this.arrivals[0] <= nowMs - 1000) this.arrivals.shift();
    if (this.arrivals.length > 1000) this.arrivals.shift();
    // arrival − capture = clock offset + delay. Its minimum over the window is the
    // offset plus the quickest frame's delay; what is above it is extra delay.
    const d = nowMs * 1000 - Number(tsUs);
    const second = Math.floor(nowMs / 1000);
    const last = this.minima[this.minima.length - 1];
    if (last && last[0] === second) last[1] = Math.min(last[1], d);
    else this.minima.push([second, d]);
    while (this.minima.length && this.minima[0][0] <= second - DELAY_WINDOW_S) this.minima.shift();
    const base = Math.min(...this.minima.map((m) => m[1]));
    const extra = (d - base) / 1000;
    this.delayMs = this.delayMs === null ? extra : this.delayMs * 0.9 + extra * 0.1;
  }

  fps(nowMs) {
    return this.arrivals.filter((t) => t > nowMs - 1000).length;
  }
}

// ---- connection -------------------------------------------------------------------------

function roomFromPath(path) {
  const m = /\/view\/(.+)$/.exec(path);
  if (!m) return '';
  try {
    return decodeURIComponent(m[1]);
  } catch (e) {
    return '';
  }
}

const nowUs = () => BigInt(Math.round(performance.now() * 1000));

function send(type, body, roomHandle = 0) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const bytes = encodeMessage(type, body, { room: roomHandle, sender: state.member, seq: state.seq++, tsUs: nowUs() });
  state.ws.send(bytes);
}

function connect() {
  clearTimers();
  if (!room) {
    state.stopped = true;
    return status('No room in the URL: open /view/ROOM (or add ?room=ROOM).', true);
  }
  status(`connecting to ${hubUrl}…`);
  let ws;
  try {
    ws = new WebSocket(hubUrl);
  } catch (e) {
    state.stopped = true;
    return status(`cannot open a WebSocket to ${hubUrl}: ${e.message}`, true);
  }
  ws.binaryType = 'arraybuffer';
  state.ws = ws;
  state.seq = 0;
  state.member = 0;
  ws.onopen = () => send('hello', { token, client: CLIENT, resume: state.resume });
  ws.onmessage = (ev) => {
    if (ws !== state.ws) return;
    if (typeof ev.data === 'string') return noteError('the hub sent a text message; this viewer speaks the binary protocol only');
    onMessage(new Uint8Array(ev.data));
  };
  ws.onclose = (ev) => {
    if (ws !== state.ws) return;
    state.ws = null;
    leaveRoomState();
    setConnected(false);
    if (AUTH_CLOSE_CODES.has(ev.code)) return askForToken(state.lastError || `the hub refused the connection (close code ${ev.code})`);
    if (state.stopped) return;
    const delay = BACKOFF_MS[Math.min(state.attempt, BACKOFF_MS.length - 1)] * (0.8 + 0.4 * Math.random());
    state.attempt++;
    const why = ev.code === 1006 ? 'the connection failed' : `the hub closed the connection (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`;
    status(`${why}; reconnecting in ${(delay / 1000).toFixed(1)} s`, true);
    later(connect, delay);
  };
}

function onMessage(bytes) {
  let msg;
  try {
    msg = decodeMessage(bytes);
  } catch (e) {
    return refuse(bytes, e);
  }
  const { header, body } = msg;
  switch (msg.type) {
    case 'welcome':
      state.member = body.member;
      state.resume = body.resume;
      state.attempt = 0;
      setConnected(true);
      status(`connected as ${body.user}; joining ${room}…`);
      join();
      every(() => send('ping', { t0Us: nowUs() }), PING_MS);
      break;
    case 'room_snapshot':
      state.handle = header.room;
      state.members.clear();
      for (const m of body.members) if (m.member !== state.member) addMember(m);
      status(`watching ${room}`);
      break;
    case 'member_joined':
      if (header.room === state.handle && body.member !== state.member) addMember(body);
      break;
    case 'member_left':
      if (header.room === state.handle) removeMember(body.member);
      break;
    case 'role_changed': {
      const m = state.members.get(body.member);
      if (header.room === state.handle && m) m.role = body.role;
      break;
    }
    case 'kick':
      if (header.room === state.handle && body.member === state.member) {
        state.stopped = true;
        leaveRoomState();
        status(`removed from ${room} by an owner${body.reason ? ': ' + body.reason : ''}`, true);
        if (state.ws) state.ws.close(1000, 'removed from the room');
      }
      break;
    case 'close_room':
      if (header.room === state.handle) {
        leaveRoomState();
        status(`${room} was closed${body.reason ? ': ' + body.reason : ''}; joining again in ${REJOIN_MS / 1000} s`, true);
        later(join, REJOIN_MS);
      }
      break;
    case 'error':
      onHubError(body);
      break;
    case 'ping': {
      const t1Us = nowUs();
      send('pong', { t0Us: body.t0Us, t1Us, t2Us: nowUs() });
      break;
    }
    case 'pong':
      state.hubRttMs = Math.max(0, clockSample(body.t0Us, body.t1Us, body.t2Us, nowUs()).rttUs / 1000);
      break;
    case 'pose':
      if (header.room === state.handle) onPose(msg);
      break;
    case 'audio': {
      const m = state.members.get(header.sender);
      if (header.room === state.handle && m) {
        state.audioCodec = body.codec;
        if (body.codec === 'opus') {
          decodeOpus(m, header, body);
        } else {
          m.rms = audioLevel(body.samples).rms;
          m.audioAt = performance.now();
          state.audioDecoded++;
        }
      }
      break;
    }
    default: // ack, needs_keyframe: nothing for a viewer to do
  }
  publish();
}

/** Answers a message that failed its checks as PROTOCOL.md §11 says, and reports it. */
function refuse(bytes, e) {
  const kind = e instanceof PoselinkError ? e.kind : 'internal';
  const code = kind === 'unknown_version' ? 2 : kind === 'oversize' ? 13 : 1;
  const about = bytes.length > 1 && bytes[1] >= 1 && bytes[1] <= 0x11 ? bytes[1] : 0;
  try {
    send('error', { code, about, reason: String(e.message).slice(0, 200) });
  } catch (ignored) {
    // A reason the encoder refuses: the report below still says what happened.
  }
  noteError(`refused a message from the hub: ${e.message}`);
  if (code === 2 && state.ws) {
    state.stopped = true;
    state.ws.close(4002, 'unsupported version');
  }
}

function join() {
  send('join', { room, role: 'viewer' });
}

function onHubError(e) {
  const text = `${e.codeName}: ${e.reason}`;
  if (AUTH_CODES.has(e.code)) {
    state.lastError = text;
    return; // the hub closes the connection next; onclose asks for a token
  }
  if (e.code === NO_SUCH_ROOM && e.about === Kind.join) {
    status(`${room} does not exist yet; trying again in ${REJOIN_MS / 1000} s`, true);
    later(join, REJOIN_MS);
    return;
  }
  if (e.about === Kind.join) {
    status(`cannot join ${room}: ${text}`, true);
    return;
  }
  noteError(`the hub reports ${text}`);
}

function onPose(msg) {
  const { sender, room: handle } = msg.header;
  const key = `${sender}/${msg.body.person}`;
  let frame;
  try {
    frame = state.streams.decode(msg);
  } catch (e) {
    if (e instanceof PoselinkError && e.kind === 'needs_keyframe') {
      // One request per outage: the hub answers from its cache or asks the publisher.
      if (!state.asked.has(key)) {
        state.asked.add(key);
        send('needs_keyframe', { publisher: sender, person: msg.body.person }, handle);
      }
      return;
    }
    return noteError(`refused a pose frame from member ${sender}: ${e.message}`);
  }
  state.asked.delete(key);
  state.framesDecoded++;
  const now = performance.now();
  state.skeletons.set(key, { member: sender, frame, at: now });
  const m = state.members.get(sender);
  if (m) m.frame(frame.tsUs, now);
}

function addMember(info) {
  const m = new Member(info, PALETTE[state.colours++ % PALETTE.length]);
  state.members.set(info.member, m);
}

/**
 * Decodes a member's Opus packet with WebCodecs for its level: one AudioDecoder per
 * member, made on its first packet (and again after an error or a change of channel
 * count), fed the packets in the order they come, as PROTOCOL.md §8 asks. It decodes
 * at 48 kHz whatever rate the packet is named at (an Opus packet decodes at any of
 * them), and the level is that of the first channel. Without WebCodecs (a page
 * that is not a secure context — plain http from another host than localhost — or
 * a browser without it) the legend says "Opus, no decoder" instead of a level.
 */
function decodeOpus(m, header, body) {
  if (typeof AudioDecoder !== 'function') {
    m.audioNote = 'Opus, no decoder';
    m.audioAt = performance.now();
    return;
  }
  if (!m.opus || m.opus.state === 'closed' || m.opusChannels !== body.channels) {
    if (m.opus && m.opus.state !== 'closed') m.opus.close();
    m.opus = new AudioDecoder({
      output: (data) => {
        const n = data.numberOfFrames;
        const pcm = new Float32Array(n);
        data.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
        data.close();
        let sum = 0;
        for (let i = 0; i < n; i++) sum += pcm[i] * pcm[i];
        m.rms = n ? Math.sqrt(sum / n) : 0;
        m.audioNote = null;
        m.audioAt = performance.now();
        state.audioDecoded++;
      },
      // The decoder closes itself; the next packet makes a new one.
      error: (e) => { state.lastError = `Opus audio of member ${m.id}: ${e.message}`; },
    });
    m.opus.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: body.channels });
    m.opusChannels = body.channels;
  }
  m.opus.decode(new EncodedAudioChunk({ type: 'key', timestamp: Number(header.tsUs), data: body.packet }));
}

function closeOpus(m) {
  if (m && m.opus && m.opus.state !== 'closed') m.opus.close();
}

function removeMember(id) {
  closeOpus(state.members.get(id));
  state.members.delete(id);
  state.streams.forget(state.handle, id);
  for (const [key, s] of state.skeletons) if (s.member === id) state.skeletons.delete(key);
}

function leaveRoomState() {
  state.handle = 0;
  for (const m of state.members.values()) closeOpus(m);
  state.members.clear();
  state.skeletons.clear();
  state.asked.clear();
  state.streams = new PoseStreams();
  publish();
}

function askForToken(why) {
  state.stopped = true;
  clearTimers();
  status(`the hub needs a valid viewer token (${why})`, true);
  ui.why.textContent = token
    ? `The hub refused the token: ${why}. Enter another one.`
    : `The hub needs a viewer token: ${why}.`;
  ui.form.hidden = false;
  ui.tokenInput.focus();
}

ui.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = ui.tokenInput.value.trim();
  ui.form.hidden = true;
  state.stopped = false;
  state.attempt = 0;
  state.lastError = null;
  connect();
});

// ---- timers -----------------------------------------------------------------------------

function later(fn, ms) { state.timers.push(setTimeout(fn, ms)); }
function every(fn, ms) { state.timers.push(setInterval(fn, ms)); }
function clearTimers() {
  for (const t of state.timers) { clearTimeout(t); clearInterval(t); }
  state.timers = [];
}

// ---- what the page shows ------------------------------------------------------------------

function status(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', isError);
  if (isError) state.lastError = text;
  publish();
}

function noteError(text) {
  state.lastError = text;
  const where = state.handle ? `watching ${room}` : 'connected';
  ui.status.textContent = `${where} · last error: ${text}`;
  ui.status.classList.add('error');
  publish();
}

function setConnected(yes) {
  state.connected = yes;
  document.body.dataset.connected = String(yes);
  publish();
}

/** The test hooks: window.poselinkViewer, body data attributes and the title. */
function publish() {
  const v = window.poselinkViewer || (window.poselinkViewer = {});
  v.framesDecoded = state.framesDecoded;
  v.audioDecoded = state.audioDecoded;
  v.audioCodec = state.audioCodec;
  v.members = state.members.size;
  v.skeletons = state.skeletons.size;
  v.lastError = state.lastError;
  v.connected = state.connected;
  v.room = room;
  v.hub = hubUrl;
  v.hubRttMs = state.hubRttMs;
  document.body.dataset.framesDecoded = String(state.framesDecoded);
  document.body.dataset.members = String(state.members.size);
  document.title = `poselink viewer — ${room || 'no room'} — ${state.framesDecoded} frames`;
}

function updateLegend() {
  const now = performance.now();
  ui.noMembers.hidden = state.members.size > 0;
  const seen = new Set();
  for (const m of state.members.values()) {
    if (!m.item) {
      m.item = document.createElement('li');
      m.item.innerHTML = '<span class="swatch"></span><span class="who"></span><span class="stats"></span><meter min="0" max="1" low="0.6" high="0.9" optimum="0.5"></meter>';
      m.item.querySelector('.swatch').style.background = m.colour;
      ui.members.append(m.item);
    }
    seen.add(m.item);
    m.item.querySelector('.who').textContent = `${m.user}${m.role === 'member' ? '' : ` (${m.role})`}`;
    const delay = m.delayMs === null ? '–' : `+${m.delayMs.toFixed(1)} ms`;
    const audible = now - m.audioAt < 500;
    const db = audible && m.rms > 0 ? 20 * Math.log10(m.rms) : -Infinity;
    const level = m.audioNote || (db === -Infinity ? 'silence' : `${db.toFixed(0)} dBFS`);
    m.item.querySelector('.stats').textContent = `${m.fps(now)} fps · delay ${delay} · ${audible ? level : 'no audio'}`;
    m.item.querySelector('meter').value = audible && !m.audioNote ? Math.max(0, (db + 60) / 60) : 0;
  }
  for (const li of [...ui.members.children]) if (!seen.has(li)) li.remove();
  if (state.hubRttMs !== null && state.handle) {
    const base = ui.status.classList.contains('error') ? null : `watching ${room} · hub round trip ${state.hubRttMs.toFixed(1)} ms`;
    if (base) ui.status.textContent = base;
  }
}

function draw() {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(ui.canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(ui.canvas.clientHeight * dpr));
  if (ui.canvas.width !== w || ui.canvas.height !== h) {
    ui.canvas.width = w;
    ui.canvas.height = h;
  }
  ctx.clearRect(0, 0, w, h);
  // The camera image as a 4:3 box, as large as fits.
  const margin = 12 * dpr;
  let bw = w - 2 * margin;
  let bh = bw / ASPECT;
  if (bh > h - 2 * margin) {
    bh = h - 2 * margin;
    bw = bh * ASPECT;
  }
  const bx = (w - bw) / 2;
  const by = (h - bh) / 2;
  ctx.strokeStyle = 'rgba(255,255,255,0.15)';
  ctx.lineWidth = dpr;
  ctx.strokeRect(bx, by, bw, bh);
  const now = performance.now();
  for (const [key, s] of state.skeletons) {
    const age = now - s.at;
    if (age > HIDE_MS) {
      state.skeletons.delete(key);
      continue;
    }
    const m = state.members.get(s.member);
    drawSkeleton(s.frame.values, m ? m.colour : '#888', age > STALE_MS ? 0.3 : 1,
      m ? m.user : `member ${s.member}`, bx, by, bw, bh, dpr);
  }
  updateLegendThrottled(now);
  requestAnimationFrame(draw);
}

let legendAt = 0;
function updateLegendThrottled(now) {
  if (now - legendAt >= 250) {
    legendAt = now;
    updateLegend();
  }
}

/** One skeleton: segments and points with alpha ∝ visibility, hidden below MIN_VISIBILITY. */
function drawSkeleton(v, colour, fade, label, bx, by, bw, bh, dpr) {
  const px = (i) => bx + v[5 * i] * bw;
  const py = (i) => by + v[5 * i + 1] * bh;
  const vis = (i) => v[5 * i + 3];
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.lineWidth = 3 * dpr;
  ctx.lineCap = 'round';
  for (const [a, b] of POSE_CONNECTIONS) {
    const alpha = Math.min(vis(a), vis(b));
    if (alpha < MIN_VISIBILITY) continue;
    ctx.globalAlpha = alpha * fade;
    ctx.beginPath();
    ctx.moveTo(px(a), py(a));
    ctx.lineTo(px(b), py(b));
    ctx.stroke();
  }
  for (let i = 0; i < LANDMARK_COUNT; i++) {
    if (vis(i) < MIN_VISIBILITY) continue;
    ctx.globalAlpha = vis(i) * fade;
    ctx.beginPath();
    ctx.arc(px(i), py(i), 3.5 * dpr, 0, 2 * Math.PI);
    ctx.fill();
  }
  // The name above the head (the highest visible point).
  let top = -1;
  for (let i = 0; i < LANDMARK_COUNT; i++) {
    if (vis(i) >= MIN_VISIBILITY && (top < 0 || v[5 * i + 1] < v[5 * top + 1])) top = i;
  }
  if (top >= 0) {
    ctx.globalAlpha = fade;
    ctx.font = `${12 * dpr}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    ctx.fillText(label, px(top), py(top) - 14 * dpr);
  }
  ctx.globalAlpha = 1;
}

// ---- start ----------------------------------------------------------------------------------

ui.roomName.textContent = room || '(no room)';
publish();
connect();
requestAnimationFrame(draw);
