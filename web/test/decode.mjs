// Checks web/poselink.js against test vectors made by the Rust codec.
//
//   node web/test/decode.mjs VECTORS.json
//
// VECTORS.json (written by tests/protocol/web_decoder) holds:
// - sessions: sequences of messages (hex) with what the Rust receiver made of each —
//   the decoded message, the decoded pose frame, or the kind of error. Each session
//   is fed to one fresh PoseStreams, as one connection's messages would be.
// - encodes: control messages with the bytes the Rust encoder made of them.
// - refusals: control messages the Rust encoder refuses, with the error kind.
// - connections: the hal's BlazePose skeleton edges.
// Then the decoder is fed mutated copies of every message, for a bounded count and
// time: it must throw PoselinkError or decode, never throw anything else or hang.
//
// Prints one line of JSON with the counts and exits 0 when everything matched.

import { readFileSync } from 'node:fs';
import {
  PoselinkError, PoseStreams, decodeMessage, encodeMessage, crc32, POSE_CONNECTIONS,
  LANDMARK_NAMES,
} from '../poselink.js';

const FUZZ_MAX = 30000;
const FUZZ_MS = 20000;
const MAX_FAILURES_SHOWN = 20;

const path = process.argv[2];
if (!path) {
  console.error('usage: node web/test/decode.mjs VECTORS.json');
  process.exit(2);
}
const vectors = JSON.parse(readFileSync(path, 'utf8'));

const failures = [];
const failure = (what) => { failures.push(what); };

const fromHex = (s) => {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
};
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** The JSON form the Rust side writes: BigInt as decimal strings, byte arrays as hex. */
function canonical(v) {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return toHex(v);
  if (ArrayBuffer.isView(v)) return Array.from(v);
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = canonical(x);
    return out;
  }
  return v;
}

/** Where `got` differs from `want` ('' if nowhere); numbers within `tol`. */
function diff(got, want, tol, at = '') {
  if (typeof want === 'number' && typeof got === 'number') {
    return Math.abs(got - want) <= tol ? '' : `${at}: ${got} != ${want}`;
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) return `${at}: length or type differs`;
    for (let i = 0; i < want.length; i++) {
      const d = diff(got[i], want[i], tol, `${at}[${i}]`);
      if (d) return d;
    }
    return '';
  }
  if (want !== null && typeof want === 'object') {
    if (got === null || typeof got !== 'object') return `${at}: ${JSON.stringify(got)} is not an object`;
    const keys = new Set([...Object.keys(want), ...Object.keys(got)]);
    for (const k of keys) {
      const d = diff(got[k], want[k], tol, `${at}.${k}`);
      if (d) return d;
    }
    return '';
  }
  return got === want ? '' : `${at}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`;
}

/** What the viewer does with one received message. */
function receive(streams, bytes) {
  try {
    const msg = decodeMessage(bytes);
    const out = { message: canonical(msg) };
    if (msg.type === 'pose') out.frame = canonical(streams.decode(msg));
    return out;
  } catch (e) {
    if (e instanceof PoselinkError) return { error: e.kind };
    throw e;
  }
}

// ---- sessions ------------------------------------------------------------------------

const counts = {
  sessions: 0, messages: 0, matched: 0, inexact: 0, frames: 0, needsKeyframe: 0, errors: 0,
  encodes: 0, encodeMatched: 0, refusals: 0, refusalMatched: 0, fuzz: 0, fuzzRejected: 0,
};
const allMessages = [];

for (const session of vectors.sessions) {
  counts.sessions++;
  const streams = new PoseStreams();
  session.messages.forEach((m, i) => {
    counts.messages++;
    const bytes = fromHex(m.hex);
    allMessages.push(bytes);
    let got;
    try {
      got = receive(streams, bytes);
    } catch (e) {
      failure(`${session.name} #${i}: crashed with ${e && e.stack ? e.stack : e}`);
      return;
    }
    const d = diff(got, m.expect, 1e-6);
    if (d) {
      failure(`${session.name} #${i}: ${d}`);
      return;
    }
    counts.matched++;
    if (diff(got, m.expect, 0)) counts.inexact++;
    if (got.frame) counts.frames++;
    if (got.error === 'needs_keyframe') counts.needsKeyframe++;
    else if (got.error) counts.errors++;
  });
}

// ---- encoding ---------------------------------------------------------------------------

const U64_FIELDS = new Set(['resume', 'serverTimeUs', 't0Us', 't1Us', 't2Us', 'tsUs']);
const withBigInts = (o) => Object.fromEntries(
  Object.entries(o).map(([k, v]) => [k, U64_FIELDS.has(k) ? BigInt(v) : v]));

for (const e of vectors.encodes) {
  counts.encodes++;
  try {
    const got = toHex(encodeMessage(e.type, withBigInts(e.body), withBigInts(e.header)));
    if (got === e.hex) counts.encodeMatched++;
    else failure(`encode ${e.type}: ${got} != ${e.hex}`);
  } catch (err) {
    failure(`encode ${e.type}: threw ${err && err.stack ? err.stack : err}`);
  }
}

for (const e of vectors.refusals) {
  counts.refusals++;
  try {
    encodeMessage(e.type, withBigInts(e.body), withBigInts(e.header));
    failure(`refusal ${e.type} ${JSON.stringify(e.body).slice(0, 80)}: encoded, expected ${e.error}`);
  } catch (err) {
    if (err instanceof PoselinkError && err.kind === e.error) counts.refusalMatched++;
    else failure(`refusal ${e.type}: threw ${err && err.kind ? err.kind : err}, expected ${e.error}`);
  }
}

// ---- constants -----------------------------------------------------------------------------

if (JSON.stringify(POSE_CONNECTIONS) !== JSON.stringify(vectors.connections)) {
  failure('POSE_CONNECTIONS differ from the hal\'s skeleton edges');
}
if (LANDMARK_NAMES.length !== 33) failure('LANDMARK_NAMES does not name 33 landmarks');
if (crc32(new TextEncoder().encode('123456789')) !== 0xcbf43926) failure('crc32 check value');

// ---- mutated input: PoselinkError or a result, never a crash or a hang -----------------------

let seed = 0x9e3779b97f4a7c15n;
const next = () => {
  // xorshift64*
  seed ^= seed >> 12n; seed ^= (seed << 25n) & 0xffffffffffffffffn; seed ^= seed >> 27n;
  return Number(((seed * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn) >> 33n);
};
const reseal = (b) => {
  if (b.length < 4) return b;
  const c = crc32(b, 0, b.length - 4);
  b[b.length - 4] = c & 0xff; b[b.length - 3] = (c >>> 8) & 0xff;
  b[b.length - 2] = (c >>> 16) & 0xff; b[b.length - 1] = c >>> 24;
  return b;
};
const started = Date.now();
if (allMessages.length > 0) {
  const streams = new PoseStreams();
  for (let i = 0; i < FUZZ_MAX && Date.now() - started < FUZZ_MS; i++) {
    const base = allMessages[next() % allMessages.length];
    let b;
    switch (next() % 4) {
      case 0: { // overwrite a few bytes
        b = base.slice();
        const k = 1 + (next() % 4);
        for (let j = 0; j < k && b.length; j++) b[next() % b.length] = next() & 0xff;
        break;
      }
      case 1: // cut
        b = base.slice(0, next() % (base.length + 1));
        break;
      case 2: { // grow with random bytes
        b = new Uint8Array(base.length + 1 + (next() % 64));
        b.set(base);
        for (let j = base.length; j < b.length; j++) b[j] = next() & 0xff;
        break;
      }
      default: // random bytes after a plausible start
        b = new Uint8Array(13 + (next() % 700));
        for (let j = 0; j < b.length; j++) b[j] = next() & 0xff;
        b[0] = 0x10; b[1] = 1 + (next() % 17); b[2] = next() & 0x07;
    }
    if (next() % 4 !== 0) reseal(b);
    counts.fuzz++;
    try {
      const msg = decodeMessage(b);
      if (msg.type === 'pose') streams.decode(msg);
    } catch (e) {
      if (e instanceof PoselinkError) counts.fuzzRejected++;
      else failure(`mutated input ${toHex(b).slice(0, 120)}: crashed with ${e && e.stack ? e.stack : e}`);
    }
    if (streams.streams.size > 512) streams.streams.clear();
  }
}

console.log(JSON.stringify({ ...counts, failures: failures.slice(0, MAX_FAILURES_SHOWN), failureCount: failures.length }));
process.exit(failures.length === 0 ? 0 : 1);
