'use strict';
// The way to s3rver: requests in path style without signature (s3rver then
// skips its own partial checks), and answers relayed back to the client as
// a stream, with the slow_bps and response-reset faults applied.

const fs = require('fs');
const http = require('http');
const { pipeline, Transform } = require('stream');

const sigv4 = require('./sigv4');
const { text } = require('./s3xml');
const { throttle } = require('./faults');
const { S3Err, setS3Headers, sendCorrupt, readAll, faultLog } = require('./reply');

// Request headers that belong to the client's connection or signature.
const HOP_HEADERS = new Set(['host', 'authorization', 'connection', 'keep-alive', 'expect', 'transfer-encoding',
  'content-length', 'x-amz-content-sha256', 'x-amz-date', 'x-amz-security-token', 'proxy-connection', 'te',
  'upgrade', 'trailer']);

class Upstream {
  constructor(port) {
    this.port = port;
    // Idle connections to s3rver are dropped here after 30 s, well before
    // s3rver would close them (10 min), so a request never goes out on a
    // socket that the other side is closing.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 30000 });
  }

  // Path-style target for s3rver; auth parameters of presigned URLs left out.
  path(bucket, key, pairs) {
    let p = bucket === undefined ? '/' : '/' + sigv4.uriEncode(bucket);
    if (key !== undefined) p += '/' + key.split('/').map(sigv4.uriEncode).join('/');
    const qs = (pairs || []).filter(([n]) => !/^X-Amz-/i.test(n))
      .map(([n, v]) => (v === '' ? sigv4.uriEncode(n) : sigv4.uriEncode(n) + '=' + sigv4.uriEncode(v))).join('&');
    return qs ? p + '?' + qs : p;
  }

  headers(reqHeaders, extra) {
    const h = {};
    for (const [k, v] of Object.entries(reqHeaders)) if (!HOP_HEADERS.has(k)) h[k] = v;
    return { ...h, host: `127.0.0.1:${this.port}`, ...extra };
  }

  // Sends one request to s3rver. body: undefined, a Buffer, { chunks },
  // { file } or a readable stream. Resolves with the response (unread).
  request(method, urlPath, headers, body, size) {
    return new Promise((resolve, reject) => {
      const h = { ...headers };
      if (body !== undefined || method === 'PUT' || method === 'POST') h['content-length'] = size || 0;
      const ureq = http.request({
        host: '127.0.0.1', port: this.port, method, path: urlPath, headers: h, agent: this.agent,
      }, resolve);
      ureq.on('error', (e) => reject(new S3Err('InternalError',
        `The lzfs test S3 could not reach its storage (s3rver): ${e.code || e.message}`, {}, 500)));
      if (body === undefined) ureq.end();
      else if (Buffer.isBuffer(body)) ureq.end(body);
      else if (body.chunks) {
        for (const c of body.chunks) ureq.write(c);
        ureq.end();
      } else if (body.file) {
        pipeline(fs.createReadStream(body.file), ureq, () => {});
      } else {
        pipeline(body, ureq, () => {});
      }
    });
  }
}

// Throws s3rver's error answer as an S3Err (the client then gets it with
// S3's RequestId and HostId added).
async function relayError(ctx, ures) {
  const body = (await readAll(ures)).toString('utf8');
  const code = text(body, 'Code');
  if (code === undefined) {
    throw new S3Err('InternalError', `s3rver answered ${ures.statusCode} without an S3 error`, {}, 500);
  }
  const detail = {};
  const inner = body.replace(/^[\s\S]*?<Error>/, '').replace(/<\/Error>[\s\S]*$/, '');
  const re = /<([A-Za-z0-9]+)>([\s\S]*?)<\/\1>/g;
  let m;
  while ((m = re.exec(inner)) !== null) {
    if (!['Code', 'Message', 'RequestId', 'HostId'].includes(m[1])) detail[m[1]] = text(m[0], m[1]);
  }
  throw new S3Err(code, text(body, 'Message') || '', detail, ures.statusCode);
}

// Streams an upstream answer to the client, with extraHeaders, applying the
// slow_bps, response-reset and corrupt faults to it.
async function relay(ctx, ures, extraHeaders) {
  const { res, fault } = ctx;
  const headers = { ...ures.headers, ...extraHeaders };
  for (const h of ['connection', 'keep-alive', 'transfer-encoding', 'x-amz-request-id', 'x-amz-id-2', 'server']) {
    delete headers[h];
  }
  setS3Headers(ctx, res);
  ctx.status = ures.statusCode;
  const len = Number(headers['content-length'] || 0);
  const hasBody = ctx.method !== 'HEAD' && len > 0;
  if (fault && fault.corrupt && ures.statusCode < 300 && len <= 16 * 1024 * 1024) {
    const body = hasBody ? await readAll(ures) : (ures.resume(), Buffer.alloc(0));
    return sendCorrupt(ctx, ures.statusCode, headers, body);
  }
  if (fault && fault.reset === 'response' && !hasBody) {
    // Nothing to cut in the middle of: the answer is lost whole.
    faultLog(ctx, 'reset', 'reset response (no body; request was applied)');
    ures.resume();
    res.destroy();
    return Promise.resolve();
  }
  res.writeHead(ures.statusCode, headers);
  const stages = [ures];
  if (fault && fault.slowBps && hasBody) stages.push(throttle(fault.slowBps));
  if (fault && fault.reset === 'response' && hasBody) {
    const cut = Math.max(1, Math.floor(len / 2));
    let n = 0;
    stages.push(new Transform({
      transform(chunk, enc, cb) {
        if (n >= cut) return cb(); // cut already; the socket is going
        if (n + chunk.length < cut) {
          n += chunk.length;
          return cb(null, chunk);
        }
        this.push(chunk.subarray(0, cut - n));
        n = cut;
        faultLog(ctx, 'reset', `reset response-body after ${cut} of ${len} bytes`);
        setImmediate(() => res.destroy());
        cb();
      },
    }));
  }
  stages.push(res);
  return new Promise((resolve) => pipeline(...stages, () => resolve()));
}

// The request as the client sent it (path style), with its body; s3rver's
// errors are thrown (except for HEAD, whose errors have no body to read).
async function forward(ctx, body, extraUpHeaders) {
  const up = ctx.env.upstream;
  const ures = await up.request(ctx.method, up.path(ctx.bucket, ctx.key, ctx.queryPairs),
    up.headers(ctx.req.headers, extraUpHeaders), body, body && body.size);
  if (ures.statusCode >= 400 && ctx.method !== 'HEAD') await relayError(ctx, ures);
  return ures;
}

module.exports = { Upstream, relayError, relay, forward };
