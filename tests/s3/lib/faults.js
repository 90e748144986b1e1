'use strict';
// Fault injection: the spec set through the admin endpoint, the decision
// for each request, the log line for each fault, and the counters.
//
// Spec (every field optional):
//   error_rate   0..1   answer with error_status instead of doing the request
//   error_status 500 (InternalError, default) or 503 (SlowDown)
//   error_as_200 true: CompleteMultipartUpload, CopyObject and UploadPartCopy
//                get their error as S3 may send it, inside a 200 answer
//   reset_rate   0..1   destroy the connection mid-request-body (the request
//                       never reaches storage) or mid-response-body (it did)
//   reset_when   "request" | "response" | "any" (default, picks at random):
//                a request without body is cut before it is applied
//   latency_ms   delay before the request is forwarded
//   slow_bps     response body rate limit, bytes per second
//   down_secs    stop accepting connections for this long (one shot)
//   corrupt_rate 0..1   apply the request, then damage its successful answer
//   corrupt      "truncate" | "garbage" | "huge" | "etag" | "any" (default):
//                how (lib/corrupt.js)
//   ops          [names] only these S3 operations are affected
//   count        at most this many requests are affected, then faults stop
//   seed         PRNG seed, for a reproducible sequence
// A request is "affected" when it gets any fault; each fault is one line of
// faults.log: "TIME OP BUCKET/KEY FAULT".

const fs = require('fs');
const { Transform } = require('stream');
const corrupt = require('./corrupt');

const ERRORS = {
  500: ['InternalError', 'We encountered an internal error. Please try again.'],
  503: ['SlowDown', 'Please reduce your request rate.'],
};
const FIELDS = ['error_rate', 'error_status', 'error_as_200', 'reset_rate', 'reset_when', 'latency_ms', 'slow_bps',
  'down_secs', 'ops', 'count', 'seed', 'corrupt_rate', 'corrupt'];

// mulberry32: small, fast, good enough to spread faults; seeded for replay.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function validate(spec, knownOps) {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) return 'the spec must be a JSON object';
  for (const k of Object.keys(spec)) if (!FIELDS.includes(k)) return `unknown field "${k}" (known: ${FIELDS.join(', ')})`;
  const num = (k, lo, hi) => spec[k] === undefined ||
    (typeof spec[k] === 'number' && Number.isFinite(spec[k]) && spec[k] >= lo && spec[k] <= hi);
  if (!num('error_rate', 0, 1)) return 'error_rate must be a number in 0..1';
  if (!num('reset_rate', 0, 1)) return 'reset_rate must be a number in 0..1';
  if (!num('corrupt_rate', 0, 1)) return 'corrupt_rate must be a number in 0..1';
  if (spec.corrupt !== undefined && ![...corrupt.KINDS, 'any'].includes(spec.corrupt)) {
    return `corrupt must be one of ${corrupt.KINDS.join(', ')} or any`;
  }
  if (spec.error_status !== undefined && !ERRORS[spec.error_status]) return 'error_status must be 500 or 503';
  if (spec.error_as_200 !== undefined && typeof spec.error_as_200 !== 'boolean') return 'error_as_200 must be true or false';
  if (spec.reset_when !== undefined && !['request', 'response', 'any'].includes(spec.reset_when)) {
    return 'reset_when must be "request", "response" or "any"';
  }
  if (!num('latency_ms', 0, 600000)) return 'latency_ms must be a number in 0..600000';
  if (!num('slow_bps', 0, 1e12)) return 'slow_bps must be a non-negative number';
  if (!num('down_secs', 0, 3600)) return 'down_secs must be a number in 0..3600';
  if (!num('count', 0, 1e12)) return 'count must be a non-negative number';
  if (!num('seed', 0, 4294967295)) return 'seed must be an integer in 0..2^32-1';
  if (spec.ops !== undefined) {
    if (!Array.isArray(spec.ops) || !spec.ops.every((o) => typeof o === 'string')) return 'ops must be a list of names';
    const bad = spec.ops.filter((o) => !knownOps.includes(o));
    if (bad.length) return `unknown operation(s) ${bad.join(', ')} (known: ${knownOps.join(', ')})`;
  }
  return null;
}

class Faults {
  constructor(logFile) {
    this.logFile = logFile;
    this.spec = {};
    this.remaining = Infinity;
    this.rng = prng(Date.now());
    this.requests = {};
    this.faults = {};
    this.faultsByOp = {};
    this.statuses = {};
  }

  set(spec) {
    this.spec = { ...spec };
    delete this.spec.down_secs; // one shot, handled by the server
    this.remaining = spec.count === undefined ? Infinity : spec.count;
    this.rng = prng(spec.seed === undefined ? (Date.now() ^ process.pid) : spec.seed);
  }

  get() {
    const s = { ...this.spec };
    if (this.remaining !== Infinity) s.remaining = this.remaining;
    return s;
  }

  active() {
    const s = this.spec;
    return this.remaining > 0 && (s.error_rate > 0 || s.reset_rate > 0 || s.latency_ms > 0 || s.slow_bps > 0 ||
      s.corrupt_rate > 0);
  }

  countRequest(op) {
    this.requests[op] = (this.requests[op] || 0) + 1;
  }

  countStatus(status) {
    this.statuses[status] = (this.statuses[status] || 0) + 1;
  }

  // Decides the faults for one request: { error: [status, code, message],
  // reset: 'request'|'response', corrupt: KIND, latencyMs, slowBps } (fields
  // absent when not injected), or null.
  decide(op) {
    const s = this.spec;
    if (!this.active() || (s.ops && !s.ops.includes(op))) return null;
    const d = {};
    if (s.error_rate > 0 && this.rng() < s.error_rate) {
      const status = s.error_status || 500;
      d.error = [status, ...ERRORS[status]];
      d.errorAs200 = !!s.error_as_200;
    } else if (s.reset_rate > 0 && this.rng() < s.reset_rate) {
      const when = s.reset_when || 'any';
      d.reset = when === 'any' ? (this.rng() < 0.5 ? 'request' : 'response') : when;
    } else if (s.corrupt_rate > 0 && this.rng() < s.corrupt_rate) {
      d.corrupt = corrupt.pick(s.corrupt, this.rng);
    }
    if (s.latency_ms > 0) d.latencyMs = s.latency_ms;
    if (s.slow_bps > 0) d.slowBps = s.slow_bps;
    if (Object.keys(d).length === 0) return null;
    this.remaining--;
    return d;
  }

  // One line per injected fault, and its counters.
  record(op, bucket, key, kind, what) {
    this.faults[kind] = (this.faults[kind] || 0) + 1;
    const byOp = this.faultsByOp[op] || (this.faultsByOp[op] = {});
    byOp[kind] = (byOp[kind] || 0) + 1;
    const target = bucket ? bucket + '/' + (key || '') : '-';
    fs.appendFileSync(this.logFile, `${new Date().toISOString()} ${op} ${target} ${what}\n`);
  }

  stats() {
    const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
    return {
      requests: { ...this.requests },
      total_requests: sum(this.requests),
      faults: { ...this.faults },
      total_faults: sum(this.faults),
      faults_by_op: JSON.parse(JSON.stringify(this.faultsByOp)),
      statuses: { ...this.statuses },
    };
  }

  resetStats() {
    this.requests = {};
    this.faults = {};
    this.faultsByOp = {};
    this.statuses = {};
  }
}

// Passes at most bps bytes per second, in slices of about 1/20 s.
function throttle(bps) {
  const slice = Math.max(1, Math.floor(bps / 20));
  const start = Date.now();
  let sent = 0;
  return new Transform({
    transform(chunk, enc, cb) {
      const push = (off) => {
        if (off >= chunk.length) return cb();
        const piece = chunk.subarray(off, off + slice);
        const due = start + ((sent + piece.length) / bps) * 1000;
        setTimeout(() => {
          sent += piece.length;
          this.push(piece);
          push(off + piece.length);
        }, Math.max(0, due - Date.now()));
      };
      push(0);
    },
  });
}

module.exports = { Faults, validate, throttle };
