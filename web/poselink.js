/**
 * poselink.js — the poselink wire protocol, version 1.0, for browsers and Node.js
 * (ES2020, no dependencies). It is the JavaScript twin of the Rust crate's
 * `poselink::proto`: docs/PROTOCOL.md is the specification both follow, and the test
 * `tests/protocol/web_decoder` checks this module against the Rust encoder and decoder.
 *
 * What it does:
 * - decodes every message kind (envelope, CRC-32, LZ4 block payloads, control
 *   payloads, pose payloads, audio payloads): `decodeMessage(bytes)`;
 * - decodes pose streams (quantised keyframes, deltas with the adaptive model of
 *   PROTOCOL.md §7.7, raw frames), one decoder per (room, sender, person):
 *   `PoseDecoder`, or `PoseStreams` which keeps one per stream;
 * - encodes control messages (hello, join, leave, ping, pong, needs_keyframe, …):
 *   `encodeMessage(type, body, header)`. It does not encode pose or audio: a
 *   publisher uses the Rust engine or its C API.
 *
 * Values: integers up to 32 bits are Numbers; 64-bit integers (`tsUs`, `resume`,
 * `serverTimeUs`, `t0Us`, `t1Us`, `t2Us`) are BigInts, since they may exceed 2^53.
 * Roles and leave reasons are lower-case strings ('owner', 'member', 'viewer';
 * 'left', 'disconnected', 'kicked', 'timed_out', 'room_closed').
 *
 * Errors: every failure throws a `PoselinkError` whose `kind` says which check
 * failed ('truncated', 'bad_checksum', 'unknown_version', 'unknown_kind', 'oversize',
 * 'malformed', 'bad_name', 'bad_audio', 'not_finite', 'out_of_range',
 * 'needs_keyframe', 'limit', 'bad_argument') and whose message is a sentence. The
 * kinds are the Rust `proto::Error` variants, so both sides refuse a message for the
 * same reason. Nothing here can loop without bound on hostile input: every loop is
 * limited by the input's length or a constant.
 *
 * Example (Node or a page):
 *
 *   import { decodeMessage, encodeMessage, PoseStreams } from './poselink.js';
 *   const streams = new PoseStreams();
 *   ws.send(encodeMessage('hello', { token: '', client: 'my-tool/1.0' }));
 *   ws.onmessage = (ev) => {
 *     const msg = decodeMessage(new Uint8Array(ev.data));
 *     if (msg.type === 'welcome') ws.send(encodeMessage('join',
 *         { room: 'demo-0', role: 'viewer' }, { sender: msg.body.member, seq: 1 }));
 *     if (msg.type === 'pose') {
 *       const frame = streams.decode(msg);   // throws 'needs_keyframe' after a loss
 *       console.log(frame.values[0], frame.values[1]);   // the nose's x and y
 *     }
 *   };
 */

/** The protocol major version this module speaks. */
export const PROTOCOL_MAJOR = 1;
/** The protocol minor version this module speaks (and announces in hello). */
export const PROTOCOL_MINOR = 0;
/** The version byte this module writes: 0x10 = 1.0. */
export const VERSION_BYTE = (PROTOCOL_MAJOR << 4) | PROTOCOL_MINOR;
/** The largest message of the protocol, bytes. */
export const MAX_MESSAGE_LEN = 65536;
/** The smallest well-formed message, bytes. */
export const MIN_MESSAGE_LEN = 13;
/** The largest uncompressed size of an LZ4 payload this decoder accepts, bytes. */
export const MAX_PLAIN_PAYLOAD = 8192;
/** Landmarks per pose frame (MediaPipe BlazePose). */
export const LANDMARK_COUNT = 33;
/** Values per pose frame: x, y, z, visibility, presence for each landmark. */
export const VALUE_COUNT = LANDMARK_COUNT * 5;
/** Samples per audio chunk, at most. */
export const AUDIO_CHUNK_CAPACITY = 960;

/** Message kind names, by kind byte − 1 (PROTOCOL.md §5). */
export const KIND_NAMES = Object.freeze([
  'hello', 'welcome', 'join', 'leave', 'room_snapshot', 'member_joined', 'member_left',
  'role_changed', 'kick', 'close_room', 'error', 'ping', 'pong', 'ack', 'needs_keyframe',
  'pose', 'audio',
]);
/** Kind bytes by name, e.g. `Kind.pose === 0x10`. */
export const Kind = Object.freeze(Object.fromEntries(KIND_NAMES.map((n, i) => [n, i + 1])));
/** Header flag bits (PROTOCOL.md §4.3). */
export const Flags = Object.freeze({ LZ4: 0x01, KEYFRAME: 0x02, RAW: 0x04 });
/** Role names by index (PROTOCOL.md §6.2). */
export const ROLES = Object.freeze(['owner', 'member', 'viewer']);
/** Leave reason names by index (PROTOCOL.md §6.2). */
export const LEAVE_REASONS = Object.freeze(['left', 'disconnected', 'kicked', 'timed_out', 'room_closed']);
/** Error code names by code (PROTOCOL.md §6.3); unknown codes are 'unknown'. */
export const ERROR_CODES = Object.freeze({
  1: 'bad_message', 2: 'unsupported_version', 3: 'unauthenticated', 4: 'token_invalid',
  5: 'token_expired', 6: 'forbidden', 7: 'room_full', 8: 'hub_full', 9: 'no_such_room',
  10: 'not_member', 11: 'no_such_member', 12: 'rate_limited', 13: 'oversize',
  14: 'slow_consumer', 15: 'going_away', 16: 'internal',
});

/** The 33 BlazePose landmark names in wire order (PROTOCOL.md §14). */
export const LANDMARK_NAMES = Object.freeze([
  'nose', 'left_eye_inner', 'left_eye', 'left_eye_outer', 'right_eye_inner', 'right_eye',
  'right_eye_outer', 'left_ear', 'right_ear', 'mouth_left', 'mouth_right', 'left_shoulder',
  'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_pinky',
  'right_pinky', 'left_index', 'right_index', 'left_thumb', 'right_thumb', 'left_hip',
  'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'left_heel',
  'right_heel', 'left_foot_index', 'right_foot_index',
]);

/** The skeleton's segments as pairs of landmark indices (MediaPipe's POSE_CONNECTIONS). */
export const POSE_CONNECTIONS = Object.freeze([
  [0, 1], [1, 2], [2, 3], [3, 7], [0, 4], [4, 5], [5, 6], [6, 8], [9, 10],
  [11, 12], [11, 13], [13, 15], [15, 17], [15, 19], [15, 21], [17, 19],
  [12, 14], [14, 16], [16, 18], [16, 20], [16, 22], [18, 20],
  [11, 23], [12, 24], [23, 24], [23, 25], [24, 26], [25, 27], [26, 28],
  [27, 29], [28, 30], [29, 31], [30, 32], [27, 31], [28, 32],
].map((p) => Object.freeze(p)));

/**
 * The one error type of this module: `kind` names the failed check (see the header
 * comment), `message` is a sentence a user can act on.
 */
export class PoselinkError extends Error {
  /** @param {string} kind  @param {string} message */
  constructor(kind, message) {
    super(message);
    this.name = 'PoselinkError';
    this.kind = kind;
  }
}

const fail = (kind, message) => { throw new PoselinkError(kind, message); };
const malformed = (what) =>
  fail('malformed', `malformed message: ${what} does not follow the layout in docs/PROTOCOL.md`);
const truncated = (needed, available) =>
  fail('truncated', `message truncated: needs at least ${needed} bytes, got ${available}; the sender or the transport cut it short`);

// ---- basic encodings (§3) ------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 of zlib, PNG and Ethernet (PROTOCOL.md §3.3) of `bytes[start..end)`.
 * @param {Uint8Array} bytes @param {number} [start] @param {number} [end]
 * @returns {number} an unsigned 32-bit integer
 */
export function crc32(bytes, start = 0, end = bytes.length) {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Accepts a Uint8Array, an ArrayBuffer or any ArrayBuffer view; returns a Uint8Array. */
function asBytes(input) {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  return fail('bad_argument', 'expected the message as a Uint8Array or an ArrayBuffer');
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const UTF8_OUT = new TextEncoder();

/**
 * A bounds-checked cursor. `strict` selects the rules of the envelope, pose and audio
 * fields (the end of input is 'truncated') or of postcard-coded control payloads
 * (every failure is 'malformed'), as the Rust decoder reports them.
 */
class Reader {
  constructor(bytes, start, end, strict) {
    this.bytes = bytes;
    this.pos = start;
    this.start = start;
    this.end = end;
    this.strict = strict;
  }

  remaining() { return this.end - this.pos; }

  u8() {
    if (this.pos >= this.end) {
      return this.strict ? truncated(this.pos - this.start + 1, this.end - this.start)
        : malformed('a control message body that ended early');
    }
    return this.bytes[this.pos++];
  }

  take(n) {
    if (this.end - this.pos < n) {
      return this.strict ? truncated(this.pos - this.start + n, this.end - this.start)
        : malformed('a control message body that ended early');
    }
    const s = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A LEB128 varint of `bits` (16, 32 or 64) bits: a Number, or a BigInt for 64. */
  varint(bits) {
    if (this.strict) {
      // The envelope's reader: up to 10 bytes (the 10th at most 1), then the value
      // must fit the type.
      let v = 0n;
      for (let i = 0; i < 10; i++) {
        const b = this.u8();
        if (i === 9 && b > 1) return malformed('a varint (longer than 64 bits)');
        v |= BigInt(b & 0x7f) << BigInt(7 * i);
        if ((b & 0x80) === 0) {
          if (bits === 64) return v;
          if (v > 0xffffffffn) return malformed('a varint (longer than 32 bits)');
          return Number(v);
        }
      }
      return malformed('a varint (longer than 64 bits)');
    }
    // postcard: at most ceil(bits / 7) bytes, the last one holding only what fits.
    const max = Math.ceil(bits / 7);
    const lastMax = (1 << (bits % 7)) - 1;
    let v = bits === 64 ? 0n : 0;
    for (let i = 0; i < max; i++) {
      const b = this.u8();
      if (bits === 64) v |= BigInt(b & 0x7f) << BigInt(7 * i);
      else v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        if (i === max - 1 && b > lastMax) return malformed('a varint');
        return v;
      }
    }
    return malformed('a varint');
  }

  /** A postcard string: varint length, then UTF-8. */
  string() {
    const n = this.varint(64);
    if (n > BigInt(this.remaining())) return malformed('a control message body that ended early');
    try {
      return UTF8.decode(this.take(Number(n)));
    } catch (e) {
      return malformed('a string that is not UTF-8');
    }
  }
}

// ---- control payloads (§6) -------------------------------------------------------

const NAME_RE = /^[A-Za-z0-9\-_.:@/]{1,64}$/;

function checkName(s, what) {
  if (!NAME_RE.test(s)) fail('bad_name', `invalid ${what}: use 1 to 64 bytes of letters, digits and \`-_.:@/\``);
}

function checkLen(s, max, what) {
  if (UTF8_OUT.encode(s).length > max) malformed(what);
}

// Each control kind's fields in wire order: [name, type, check]. A check is applied
// after every field was read, in field order, as the Rust decoder does.
const CONTROL_FIELDS = {
  hello: [['minor', 'u8'], ['token', 'str', ['len', 2048, "the hello's token (too long)"]],
    ['resume', 'u64'], ['client', 'str', ['len', 64, "the hello's client name (too long)"]]],
  welcome: [['minor', 'u8'], ['member', 'u16'], ['user', 'str', ['name', 'user id']],
    ['resume', 'u64'], ['serverTimeUs', 'u64'], ['heartbeatMs', 'u32'], ['maxMessage', 'u32']],
  join: [['room', 'str', ['name', 'room name']], ['role', 'role']],
  leave: [['room', 'str', ['name', 'room name']]],
  member_joined: [['member', 'u16'], ['role', 'role'], ['user', 'str', ['name', 'user id']]],
  member_left: [['member', 'u16'], ['reason', 'leave']],
  role_changed: [['member', 'u16'], ['role', 'role']],
  kick: [['member', 'u16'], ['reason', 'str', ['len', 256, 'the kick reason (too long)']]],
  close_room: [['reason', 'str', ['len', 256, 'the close reason (too long)']]],
  error: [['code', 'u16'], ['about', 'u8'], ['reason', 'str', ['len', 256, 'the error reason (too long)']]],
  ping: [['t0Us', 'u64']],
  pong: [['t0Us', 'u64'], ['t1Us', 'u64'], ['t2Us', 'u64']],
  ack: [['kind', 'u8'], ['seq', 'u32']],
  needs_keyframe: [['publisher', 'u16'], ['person', 'u32']],
};
const MEMBER_FIELDS = CONTROL_FIELDS.member_joined;
const SNAPSHOT_HEAD = [['name', 'str', ['name', 'room name']], ['yourRole', 'role'], ['count', 'u16']];

function readField(r, type) {
  switch (type) {
    case 'u8': return r.u8();
    case 'u16': return r.varint(16);
    case 'u32': return r.varint(32);
    case 'u64': return r.varint(64);
    case 'str': return r.string();
    case 'role': return ROLES[r.varint(32)] ?? malformed('an enumeration value');
    case 'leave': return LEAVE_REASONS[r.varint(32)] ?? malformed('an enumeration value');
    default: throw new Error(`poselink.js: unknown field type ${type}`);
  }
}

function readFields(r, fields) {
  const out = {};
  for (const [name, type] of fields) out[name] = readField(r, type);
  for (const [name, , check] of fields) {
    if (check && check[0] === 'name') checkName(out[name], check[1]);
    if (check && check[0] === 'len') checkLen(out[name], check[1], check[2]);
  }
  return out;
}

function parseControl(type, bytes, start, end) {
  const r = new Reader(bytes, start, end, false);
  if (type === 'room_snapshot') {
    const head = readFields(r, SNAPSHOT_HEAD);
    const members = [];
    // Every member takes at least 3 bytes, so the payload's length bounds the loop.
    for (let i = 0; i < head.count; i++) members.push(readFields(r, MEMBER_FIELDS));
    return { name: head.name, yourRole: head.yourRole, members };
  }
  const body = readFields(r, CONTROL_FIELDS[type]);
  if (type === 'error') body.codeName = ERROR_CODES[body.code] ?? 'unknown';
  return body; // trailing bytes are ignored (§4.2 rule 3)
}

// ---- pose and audio payloads (§7.2, §8) -------------------------------------------

const RAW_BODY_LEN = VALUE_COUNT * 4;
const KEYFRAME_BODY_LEN = LANDMARK_COUNT * 8;

function parsePose(flags, bytes, start, end) {
  const r = new Reader(bytes, start, end, true);
  const person = r.varint(32);
  const raw = (flags & Flags.RAW) !== 0;
  const key = (flags & Flags.KEYFRAME) !== 0;
  if (raw && key) return malformed('the pose flags (raw and keyframe together)');
  let coding = raw ? 'raw' : key ? 'keyframe' : 'delta';
  let refBack = 0;
  if (coding === 'delta') {
    refBack = r.varint(32);
    if (refBack === 0) return malformed("the pose delta's reference (zero)");
  }
  const body = bytes.subarray(r.pos, end);
  const expected = raw ? RAW_BODY_LEN : key ? KEYFRAME_BODY_LEN : -1;
  if (expected >= 0 && body.length < expected) truncated(r.pos - start + expected, end - start);
  if (expected >= 0 && body.length > expected) malformed('the pose body (longer than its coding)');
  return { person, coding, refBack, body };
}

/** The sample rates an Opus packet may be decoded at (PROTOCOL.md §8). */
const OPUS_SAMPLE_RATES = [8000, 12000, 16000, 24000, 48000];

/**
 * Samples per channel an Opus packet decodes to at `sampleRate`, from its
 * table-of-contents byte (RFC 6716 §3.1), or a string saying what is wrong.
 */
export function opusPacketSamples(packet, sampleRate) {
  if (packet.length === 0) return 'an empty Opus packet';
  if (!OPUS_SAMPLE_RATES.includes(sampleRate)) return 'Opus decodes at 8000, 12000, 16000, 24000 or 48000 Hz only';
  const config = packet[0] >> 3;
  // Frame length in units of 2.5 ms.
  const units = config <= 11 ? [4, 8, 16, 24][config % 4] : config <= 15 ? [4, 8][config % 2] : [1, 2, 4, 8][config % 4];
  let frames;
  switch (packet[0] & 3) {
    case 0: frames = 1; break;
    case 3:
      if (packet.length < 2 || (packet[1] & 0x3f) === 0) return 'an Opus packet whose frame count is missing or zero';
      frames = packet[1] & 0x3f;
      break;
    default: frames = 2;
  }
  if (frames * units > 48) return 'an Opus packet longer than 120 ms';
  return frames * units * sampleRate / 400;
}

function parseAudio(bytes, start, end) {
  const r = new Reader(bytes, start, end, true);
  const codec = r.varint(32);
  if (codec !== 0 && codec !== 1) return malformed('the audio codec (unknown)');
  const channels = r.u8();
  const sampleRate = r.varint(32);
  const len = r.varint(32);
  const bad = (what) => fail('bad_audio', `invalid audio chunk: ${what}`);
  if (len > AUDIO_CHUNK_CAPACITY) bad('more than 960 samples in one chunk');
  if (channels < 1 || channels > 2) bad('channels must be 1 or 2');
  if (sampleRate < 8000 || sampleRate > 192000) bad('sample rate must be between 8000 and 192000 Hz');
  if (len % channels !== 0) bad('sample count is not a whole number of frames');
  if (codec === 1) {
    // One Opus packet, the rest of the payload, checked against `len` (§8).
    const packet = bytes.slice(r.pos, end);
    if (packet.length > 1275) bad('an Opus packet longer than 1275 bytes');
    const n = opusPacketSamples(packet, sampleRate);
    if (typeof n === 'string') bad(n);
    if (n * channels !== len) bad("the Opus packet's duration is not the chunk's sample count");
    return { codec: 'opus', channels, sampleRate, len, packet };
  }
  const raw = r.take(len * 2);
  if (r.remaining() !== 0) malformed('the audio body (longer than its sample count)');
  const samples = new Int16Array(len);
  for (let i = 0; i < len; i++) samples[i] = (raw[2 * i] | (raw[2 * i + 1] << 8)) << 16 >> 16;
  return { codec: 'pcm16', channels, sampleRate, len, samples };
}

// ---- LZ4 (§9) ---------------------------------------------------------------------

/**
 * Decompresses one LZ4 *block* (the LZ4 block format, not the frame format) that must
 * expand to exactly `rawLen` bytes. Safe on hostile input: every length and offset is
 * checked before it is used, the output never grows past `rawLen`, and every loop
 * consumes input.
 * @param {Uint8Array} src @param {number} rawLen
 * @returns {Uint8Array} the `rawLen` decompressed bytes
 */
export function lz4DecompressBlock(src, rawLen) {
  const bad = (what) => malformed(`the LZ4 block (${what})`);
  if (!Number.isInteger(rawLen) || rawLen < 0 || rawLen > MAX_MESSAGE_LEN * 4) {
    return fail('bad_argument', 'the LZ4 output length must be a small non-negative integer');
  }
  const out = new Uint8Array(rawLen);
  const n = src.length;
  let ip = 0;
  let op = 0;
  const length = (base) => {
    let v = base;
    for (;;) {
      if (ip >= n) return bad('a length runs past the end');
      const b = src[ip++];
      v += b;
      if (b !== 255) return v;
    }
  };
  for (;;) {
    if (ip >= n) return bad('a token is missing');
    const token = src[ip++];
    let lit = token >> 4;
    if (lit === 15) lit = length(lit);
    if (lit > 0) {
      if (lit > n - ip) return bad('literals run past the end');
      if (lit > rawLen - op) return bad('longer than its stated length');
      out.set(src.subarray(ip, ip + lit), op);
      ip += lit;
      op += lit;
    }
    if (ip >= n) break;
    if (n - ip < 2) return bad('a match offset is cut short');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0) return bad('a zero match offset');
    let len = 4 + (token & 15);
    if (len === 19) len = length(len);
    if (len > rawLen - op) return bad('longer than its stated length');
    if (offset > op) return bad('a match before the start');
    if (offset >= len) {
      out.copyWithin(op, op - offset, op - offset + len);
    } else {
      for (let k = 0; k < len; k++) out[op + k] = out[op - offset + k];
    }
    op += len;
  }
  if (op !== rawLen) return malformed('the LZ4 block (length differs from its prefix)');
  return out;
}

// ---- the envelope (§4) --------------------------------------------------------------

/**
 * Checks and decodes one received message (one binary WebSocket message): length,
 * version, CRC, header, decompression and the payload of its kind, in the order of
 * PROTOCOL.md §4.4. Pose payloads come back still coded: pass the result to a
 * `PoseStreams` (or a `PoseDecoder`) to get landmarks.
 *
 * @param {Uint8Array|ArrayBuffer} input
 * @returns {{header: {version:number, kind:number, flags:number, room:number,
 *   sender:number, seq:number, tsUs:bigint}, type: string, body: object}}
 *   `type` is the kind's name ('welcome', 'pose', …); `body` holds its fields
 *   (docs/VIEWER.md lists them), e.g. for 'pose' `{person, coding, refBack, body}`,
 *   for 'audio' `{codec: 'pcm16', channels, sampleRate, len, samples: Int16Array}`
 *   or `{codec: 'opus', channels, sampleRate, len, packet: Uint8Array}` (one Opus
 *   packet that decodes to `len` samples at `sampleRate`: WebCodecs'
 *   `AudioDecoder` with codec 'opus' decodes it).
 * @throws {PoselinkError}
 */
export function decodeMessage(input) {
  const bytes = asBytes(input);
  const n = bytes.length;
  if (n > MAX_MESSAGE_LEN) {
    fail('oversize', `message of ${n} bytes exceeds the limit of ${MAX_MESSAGE_LEN} bytes; send smaller messages or raise the limit`);
  }
  if (n > 0 && bytes[0] >> 4 !== PROTOCOL_MAJOR) {
    fail('unknown_version', `unknown protocol version ${bytes[0] >> 4}.${bytes[0] & 15} (this module speaks ${PROTOCOL_MAJOR}.x); upgrade the older side`);
  }
  if (n < MIN_MESSAGE_LEN) truncated(MIN_MESSAGE_LEN, n);
  const bodyEnd = n - 4;
  const carried = (bytes[bodyEnd] | (bytes[bodyEnd + 1] << 8) | (bytes[bodyEnd + 2] << 16) | (bytes[bodyEnd + 3] << 24)) >>> 0;
  const computed = crc32(bytes, 0, bodyEnd);
  if (carried !== computed) {
    const hex = (v) => '0x' + v.toString(16).padStart(8, '0');
    fail('bad_checksum', `checksum mismatch (carried ${hex(carried)}, computed ${hex(computed)}): the message was corrupted or built by a broken encoder`);
  }
  const kind = bytes[1];
  const type = KIND_NAMES[kind - 1];
  if (type === undefined) {
    fail('unknown_kind', `unknown message kind 0x${kind.toString(16).padStart(2, '0')}; the peer speaks a newer minor version or is not a poselink peer`);
  }
  const flags = bytes[2];
  if (flags & ~0x07) malformed('the flags byte (reserved bits set)');
  const r = new Reader(bytes, 0, bodyEnd, true);
  r.pos = 7;
  const header = {
    version: bytes[0],
    kind,
    flags,
    room: bytes[3] | (bytes[4] << 8),
    sender: bytes[5] | (bytes[6] << 8),
    seq: r.varint(32),
    tsUs: r.varint(64),
  };
  let payload = bytes;
  let start = r.pos;
  let end = bodyEnd;
  if (flags & Flags.LZ4) {
    const pr = new Reader(bytes, start, end, true);
    const rawLen = pr.varint(64);
    if (rawLen > BigInt(MAX_PLAIN_PAYLOAD)) {
      fail('oversize', `message of ${rawLen} bytes exceeds the limit of ${MAX_PLAIN_PAYLOAD} bytes; send smaller messages or raise the limit`);
    }
    payload = lz4DecompressBlock(bytes.subarray(pr.pos, end), Number(rawLen));
    start = 0;
    end = payload.length;
  }
  let body;
  if (type === 'pose') body = parsePose(flags, payload, start, end);
  else if (type === 'audio') body = parseAudio(payload, start, end);
  else body = parseControl(type, payload, start, end);
  return { header, type, body };
}

// ---- encoding control messages ------------------------------------------------------

class Writer {
  constructor() { this.bytes = []; }
  u8(v) { this.bytes.push(v & 0xff); }
  varint(v) {
    let x = BigInt(v);
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      this.bytes.push(b);
    } while (x !== 0n);
  }
  string(s) {
    const b = UTF8_OUT.encode(s);
    this.varint(b.length);
    for (const x of b) this.bytes.push(x);
  }
}

function checkInt(v, max, what) {
  const ok = typeof v === 'bigint' ? v >= 0n && v <= max : Number.isSafeInteger(v) && v >= 0 && BigInt(v) <= max;
  if (!ok) fail('bad_argument', `${what} must be an integer from 0 to ${max}`);
  return v;
}

const LIMITS = { u8: 0xffn, u16: 0xffffn, u32: 0xffffffffn, u64: 0xffffffffffffffffn };

function writeField(w, type, v, name) {
  switch (type) {
    case 'u8': return w.u8(Number(checkInt(v, LIMITS.u8, name)));
    case 'u16': case 'u32': case 'u64': return w.varint(checkInt(v, LIMITS[type], name));
    case 'str':
      if (typeof v !== 'string') fail('bad_argument', `${name} must be a string`);
      return w.string(v);
    case 'role': case 'leave': {
      const names = type === 'role' ? ROLES : LEAVE_REASONS;
      const i = typeof v === 'number' ? v : names.indexOf(v);
      if (!(i >= 0 && i < names.length && Number.isInteger(i))) {
        fail('bad_argument', `${name} must be one of ${names.join(', ')}`);
      }
      return w.varint(i);
    }
    default: throw new Error(`poselink.js: unknown field type ${type}`);
  }
}

const FIELD_DEFAULTS = { u8: 0, u16: 0, u32: 0, u64: 0n, str: '' };

function writeFields(w, fields, body) {
  for (const [name, type] of fields) writeField(w, type, body[name] ?? FIELD_DEFAULTS[type], name);
}

/**
 * Encodes a control message (every kind but 'pose' and 'audio') as one complete
 * message, header to CRC. Fields left out of `body` default to 0 or ''. The result
 * is checked by decoding it, so a bad name or an overlong reason is refused here, as
 * every receiver would refuse it.
 *
 * @param {string} type  e.g. 'hello', 'join', 'leave', 'ping', 'pong', 'needs_keyframe'
 * @param {object} body  the fields, named as `decodeMessage` returns them, e.g.
 *   hello `{token, client, resume, minor}`, join `{room, role}`, leave `{room}`,
 *   ping `{t0Us}`, pong `{t0Us, t1Us, t2Us}`, needs_keyframe `{publisher, person}`,
 *   room_snapshot `{name, yourRole, members: [{member, role, user}]}`
 * @param {{room?:number, sender?:number, seq?:number, tsUs?:bigint|number}} [header]
 *   room handle, own member id (0 before the welcome), control sequence number, send
 *   time in µs
 * @returns {Uint8Array}
 * @throws {PoselinkError}
 */
export function encodeMessage(type, body = {}, header = {}) {
  const kind = Kind[type];
  if (kind === undefined || type === 'pose' || type === 'audio') {
    fail('bad_argument', `cannot encode ${JSON.stringify(type)}: encodeMessage takes a control message type (${KIND_NAMES.slice(0, 15).join(', ')})`);
  }
  const w = new Writer();
  w.u8(VERSION_BYTE);
  w.u8(kind);
  w.u8(0);
  const room = Number(checkInt(header.room ?? 0, LIMITS.u16, 'header.room'));
  const sender = Number(checkInt(header.sender ?? 0, LIMITS.u16, 'header.sender'));
  w.u8(room); w.u8(room >> 8); w.u8(sender); w.u8(sender >> 8);
  w.varint(checkInt(header.seq ?? 0, LIMITS.u32, 'header.seq'));
  w.varint(checkInt(header.tsUs ?? 0n, LIMITS.u64, 'header.tsUs'));
  const payloadStart = w.bytes.length;
  if (type === 'room_snapshot') {
    const members = body.members ?? [];
    if (!Array.isArray(members)) fail('bad_argument', 'members must be an array');
    writeFields(w, SNAPSHOT_HEAD, { ...body, count: members.length });
    for (const m of members) writeFields(w, MEMBER_FIELDS, m);
  } else {
    writeFields(w, CONTROL_FIELDS[type], body);
  }
  const out = new Uint8Array(w.bytes.length + 4);
  out.set(w.bytes);
  const crc = crc32(out, 0, w.bytes.length);
  out[w.bytes.length] = crc & 0xff;
  out[w.bytes.length + 1] = (crc >>> 8) & 0xff;
  out[w.bytes.length + 2] = (crc >>> 16) & 0xff;
  out[w.bytes.length + 3] = crc >>> 24;
  if (out.length > MAX_MESSAGE_LEN) fail('oversize', `the message would be ${out.length} bytes, over the limit of ${MAX_MESSAGE_LEN}`);
  parseControl(type, out, payloadStart, out.length - 4);
  return out;
}

// ---- the pose codec (§7) -------------------------------------------------------------

const N = VALUE_COUNT;
const isCoord = (i) => i % 5 < 3;
const QMAX = Int32Array.from({ length: N }, (_, i) => (isCoord(i) ? 6144 : 128));
const ERR_INIT = Int32Array.from({ length: N }, (_, i) => (isCoord(i) ? 24 : 2));
const bitLength = (x) => (x === 0 ? 0 : 32 - Math.clz32(x));
const widthOf = (err) => Math.min(10, 1 + bitLength(err >> 1));
/** The longest delta body: 165 fields of 10 bits, all escaped with 35-bit codes. */
const MAX_DELTA_BODY_LEN = Math.ceil((N * 10) / 8) + Math.ceil((N * 35) / 8);

/** MSB-first bit reading over `bytes[0..len)`, zeros past the end (PROTOCOL.md §7.6). */
function readBits(bytes, len, bit, n) {
  let v = 0;
  for (let j = 0; j < n; j++) {
    const p = bit + j;
    const byte = p >> 3 < len ? bytes[p >> 3] : 0;
    v = (v << 1) | ((byte >> (7 - (p & 7))) & 1);
  }
  return v;
}

function paddingIsZero(bytes, bit) {
  const pad = (8 - (bit & 7)) & 7;
  return pad === 0 || (bytes[(bit >> 3)] & ((1 << pad) - 1)) === 0;
}

/**
 * Decodes one pose stream (one person of one publisher in one room), keeping the
 * prediction model of PROTOCOL.md §7.7 exactly as the Rust `PoseDecoder` does.
 * A delta whose reference frame it does not hold throws `needs_keyframe` and leaves
 * the decoder unsynced until the next keyframe; a malformed delta throws and leaves
 * it as it was.
 */
export class PoseDecoder {
  constructor() {
    this.prev = new Int32Array(N);
    this.err = new Int32Array(N);
    this.width = new Int32Array(N);
    this.modelSeq = 0;
    this.synced = false;
    this.q = new Int32Array(N);
    this.code = new Int32Array(N);
    this.raw = new Float32Array(N);
    /** The last decoded frame; `decode` returns it (it is overwritten by the next call). */
    this.frame = { seq: 0, tsUs: 0n, person: 0, coding: 'keyframe', values: new Float32Array(N) };
    /** Counters: keyframes, deltas and raw frames decoded. */
    this.stats = { keyframes: 0, deltas: 0, raw: 0 };
  }

  /** Forgets the stream: the next delta needs a keyframe first. */
  reset() { this.synced = false; }

  /**
   * Decodes the pose payload of a message from `decodeMessage`.
   * @param {{seq:number, tsUs:bigint}} header  the message's header
   * @param {{person:number, coding:string, refBack:number, body:Uint8Array}} pose  its body
   * @returns {{seq:number, tsUs:bigint, person:number, coding:string, values:Float32Array}}
   *   the frame: `values[5 * i + j]` is landmark i's x, y, z, visibility, presence
   *   for j = 0 … 4 (x and y in image fractions, PROTOCOL.md §7.1)
   * @throws {PoselinkError} 'needs_keyframe', 'malformed', 'not_finite', 'out_of_range'
   */
  decode(header, pose) {
    const { body } = pose;
    const values = this.frame.values;
    if (pose.coding === 'raw') {
      if (body.length !== RAW_BODY_LEN) truncated(RAW_BODY_LEN, body.length);
      const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
      const tmp = this.raw;
      for (let i = 0; i < N; i++) tmp[i] = dv.getFloat32(4 * i, true);
      checkRaw(tmp);
      values.set(tmp);
      this.stats.raw++;
    } else if (pose.coding === 'keyframe') {
      if (body.length !== KEYFRAME_BODY_LEN) truncated(KEYFRAME_BODY_LEN, body.length);
      const q = this.q;
      for (let l = 0; l < LANDMARK_COUNT; l++) {
        const b = 8 * l;
        q[5 * l] = body[b] | (body[b + 1] << 8);
        q[5 * l + 1] = body[b + 2] | (body[b + 3] << 8);
        q[5 * l + 2] = body[b + 4] | (body[b + 5] << 8);
        q[5 * l + 3] = body[b + 6];
        q[5 * l + 4] = body[b + 7];
      }
      for (let i = 0; i < N; i++) {
        if (q[i] > QMAX[i]) malformed('the pose keyframe (a coordinate above 6144 or a score above 128)');
      }
      this.modelSeq = header.seq;
      this.synced = true;
      for (let i = 0; i < N; i++) {
        this.prev[i] = q[i];
        this.err[i] = ERR_INIT[i];
        this.width[i] = widthOf(ERR_INIT[i]);
      }
      dequantise(q, values);
      this.stats.keyframes++;
    } else {
      if (!this.synced || ((header.seq - pose.refBack) >>> 0) !== this.modelSeq) {
        this.synced = false;
        fail('needs_keyframe', 'pose delta without its reference frame; waiting for the next keyframe');
      }
      this.decodeDelta(header.seq, body);
      dequantise(this.q, values);
      this.stats.deltas++;
    }
    this.frame.seq = header.seq;
    this.frame.tsUs = header.tsUs;
    this.frame.person = pose.person;
    this.frame.coding = pose.coding;
    return this.frame;
  }

  /** PROTOCOL.md §7.6: fields, then the escaped fields' Rice-coded excesses. */
  decodeDelta(seq, body) {
    const len = body.length;
    if (len > MAX_DELTA_BODY_LEN) malformed('the pose delta (longer than 165 escaped values)');
    const { width, code, q, prev } = this;
    let bit = 0;
    for (let i = 0; i < N; i++) {
      code[i] = readBits(body, len, bit, width[i]);
      bit += width[i];
    }
    const fieldsLen = Math.ceil(bit / 8);
    if (fieldsLen > len || !paddingIsZero(body, bit)) {
      malformed("the pose delta's fields (too short or non-zero padding)");
    }
    bit = fieldsLen * 8;
    for (let i = 0; i < N; i++) {
      if (code[i] !== (1 << width[i]) - 1) continue;
      const k = Math.max(width[i] - 2, 0);
      let ones = 0;
      while (ones < 20 && readBits(body, len, bit, 1) === 1) { ones++; bit++; }
      if (ones === 20) {
        code[i] += readBits(body, len, bit, 15);
        bit += 15;
      } else {
        code[i] += (ones << k) | readBits(body, len, bit + 1, k);
        bit += 1 + k;
      }
      // Past the end the codes read zeros: the check below refuses the delta.
      if (bit > len * 8) break;
    }
    if (bit > len * 8) malformed('the pose delta bit stream (ends early)');
    if (Math.ceil(bit / 8) !== len || !paddingIsZero(body, bit)) {
      malformed('the pose delta bit stream (bytes or bits after the last value)');
    }
    for (let i = 0; i < N; i++) {
      const u = code[i];
      q[i] = prev[i] + ((u >>> 1) ^ -(u & 1));
      if (q[i] < 0 || q[i] > QMAX[i]) malformed('the pose delta (a value outside its range)');
    }
    // The model moves on only now, with the delta known to be good (§7.7 update).
    const { err } = this;
    for (let i = 0; i < N; i++) {
      const e = Math.min(Math.abs(q[i] - prev[i]), 4095);
      err[i] += e - (err[i] >> 2);
      const x = err[i] >> 1;
      const w = width[i];
      if (w < 10 && x >= 1 << (w - 1)) width[i] = w + 1;
      else if (w > 1 && x < 1 << (w - 2)) width[i] = w - 1;
      prev[i] = q[i];
    }
    this.modelSeq = seq;
  }
}

function dequantise(q, out) {
  for (let i = 0; i < N; i++) out[i] = isCoord(i) ? (q[i] - 2048) / 2048 : q[i] / 128;
}

const FIELD_NAMES = ['x', 'y', 'z', 'visibility', 'presence'];

function checkRaw(v) {
  for (let i = 0; i < N; i++) {
    const where = `landmark ${Math.floor(i / 5)} ${FIELD_NAMES[i % 5]}`;
    if (!Number.isFinite(v[i])) {
      fail('not_finite', `${where} is NaN or infinite; check the pose estimator's output before sending`);
    }
    const [lo, hi] = isCoord(i) ? [-1, 2] : [0, 1];
    if (v[i] < lo || v[i] > hi) {
      fail('out_of_range', `${where} is out of range (x, y, z must lie in [-1, 2], visibility and presence in [0, 1]); clamp it or drop the frame`);
    }
  }
}

/**
 * Keeps one `PoseDecoder` per stream — (room, sender, person) — as a receiver must
 * (PROTOCOL.md §7.1), at most `maxStreams` of them.
 */
export class PoseStreams {
  /** @param {{maxStreams?: number}} [options] */
  constructor({ maxStreams = 1024 } = {}) {
    this.maxStreams = maxStreams;
    /** @type {Map<string, {room:number, sender:number, person:number, decoder:PoseDecoder}>} */
    this.streams = new Map();
  }

  /**
   * Decodes a 'pose' message from `decodeMessage` with its stream's decoder.
   * @returns the frame (see `PoseDecoder.decode`), owned by the stream's decoder
   * @throws {PoselinkError} as `PoseDecoder.decode`, or 'limit' when a new stream
   *   would exceed `maxStreams`
   */
  decode(msg) {
    if (msg.type !== 'pose') fail('bad_argument', `PoseStreams.decode takes a pose message, not ${msg.type}`);
    const { room, sender } = msg.header;
    const { person } = msg.body;
    const key = `${room}/${sender}/${person}`;
    let s = this.streams.get(key);
    if (s === undefined) {
      if (this.streams.size >= this.maxStreams) {
        fail('limit', `more than ${this.maxStreams} pose streams; forget the streams of members that left`);
      }
      s = { room, sender, person, decoder: new PoseDecoder() };
      this.streams.set(key, s);
    }
    return s.decoder.decode(msg.header, msg.body);
  }

  /** Forgets the streams of `room` (all of them, or only those of `sender`). */
  forget(room, sender) {
    for (const [key, s] of this.streams) {
      if (s.room === room && (sender === undefined || s.sender === sender)) this.streams.delete(key);
    }
  }
}

// ---- for receivers: audio level, clock sync ------------------------------------

/**
 * The level of PCM16 samples: root mean square and peak, both as fractions of full
 * scale (0 … 1).
 * @param {Int16Array} samples
 * @returns {{rms: number, peak: number}}
 */
export function audioLevel(samples) {
  let sum = 0;
  let peak = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i] / 32768;
    sum += s * s;
    peak = Math.max(peak, Math.abs(s));
  }
  return { rms: samples.length ? Math.sqrt(sum / samples.length) : 0, peak };
}

/**
 * What a ping/pong exchange says about the two clocks (PROTOCOL.md §10): `t0Us` and
 * `t3Us` on the requester's clock (ping sent, pong received), the pong's `t1Us` and
 * `t2Us` on the responder's.
 * @returns {{offsetUs: number, rttUs: number}} responder clock − requester clock, and
 *   the network round trip with the responder's own delay excluded
 */
export function clockSample(t0Us, t1Us, t2Us, t3Us) {
  const [t0, t1, t2, t3] = [t0Us, t1Us, t2Us, t3Us].map(Number);
  return { offsetUs: ((t1 - t0) + (t2 - t3)) / 2, rttUs: (t3 - t0) - (t2 - t1) };
}
