'use strict';
// Request bodies: read whole before anything is forwarded (memory up to
// 64 MiB, else a file in DIR/tmp), hashed on the way in, and held against
// what the request claims: x-amz-content-sha256, Content-MD5 and the
// x-amz-checksum-* headers. A body that fails never reaches s3rver.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const cks = require('./checksums');
const { S3Err, faultLog, log } = require('./reply');

const MEMORY_BODY_MAX = 64 * 1024 * 1024;

// Reads the request body, hashing as it goes; bodies over 64 MiB go to a
// temporary file. Returns { chunks | file, size, sha256, sha1, md5 }, or
// null when the client went away (or a reset fault cut it).
function readBody(ctx, opts) {
  const { req } = ctx;
  const len = Number(req.headers['content-length'] || 0);
  const sha256 = opts.sha256 ? crypto.createHash('sha256') : null;
  const sha1 = opts.sha1 ? crypto.createHash('sha1') : null;
  const md5 = opts.md5 ? crypto.createHash('md5') : null;
  const toFile = len > MEMORY_BODY_MAX;
  const file = toFile ? path.join(ctx.env.tmp, `${ctx.id}.body`) : null;
  const out = toFile ? fs.createWriteStream(file) : null;
  const chunks = [];
  let size = 0;
  if (ctx.expectContinue && !ctx.continued) {
    ctx.res.writeContinue();
    ctx.continued = true;
  }
  return new Promise((resolve) => {
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      ctx.bodyRead = true;
      if (result === null && file) {
        out.destroy();
        fs.unlink(file, () => {});
      }
      resolve(result);
    };
    req.on('data', (c) => {
      size += c.length;
      if (sha256) sha256.update(c);
      if (sha1) sha1.update(c);
      if (md5) md5.update(c);
      if (out) {
        if (!out.write(c)) {
          req.pause();
          out.once('drain', () => req.resume());
        }
      } else {
        chunks.push(c);
      }
      if (opts.resetAt !== undefined && size >= opts.resetAt) {
        faultLog(ctx, 'reset', `reset request-body after ${size} of ${len} bytes`);
        req.socket.destroy();
        finish(null);
      }
    });
    req.on('end', () => {
      ctx.inBytes = size;
      const result = {
        size,
        sha256: sha256 && sha256.digest('hex'),
        sha1: sha1 && sha1.digest('base64'),
        md5: md5 && md5.digest('base64'),
      };
      if (!out) return finish({ ...result, chunks });
      out.end(() => finish({ ...result, file }));
      out.on('error', (e) => {
        log(`${ctx.id} spill file: ${e.message}`);
        finish(null);
      });
    });
    req.on('aborted', () => finish(null));
    req.on('close', () => { if (!req.complete) finish(null); });
    req.on('error', () => finish(null));
  });
}

function discardBody(body) {
  if (body && body.file) fs.unlink(body.file, () => {});
}

function bodyText(body) {
  return Buffer.concat(body.chunks).toString('utf8');
}

// What the body must match, from the request's headers; checked before the
// body is read so a malformed header fails fast.
function digestsWanted(ctx) {
  const h = ctx.req.headers;
  const want = { sha256: /^[0-9a-f]{64}$/.test(ctx.auth.payloadHash) };
  if (h['content-md5'] !== undefined) {
    if (!/^[A-Za-z0-9+/]{22}==$/.test(h['content-md5'].trim())) {
      throw new S3Err('InvalidDigest', 'The Content-MD5 you specified was invalid.', { 'Content-MD5': h['content-md5'] });
    }
    want.md5 = true;
  }
  ctx.checksum = cks.requestChecksum(h); // { algo, value } or null
  if (ctx.checksum) want[cks.ALGOS[ctx.checksum.algo].hash] = true;
  if (h['x-amz-trailer'] !== undefined) {
    throw new S3Err('NotImplemented', 'The lzfs test S3 does not support trailing checksums (x-amz-trailer).', {}, 501);
  }
  return want;
}

function verifyDigests(ctx, body) {
  const h = ctx.req.headers;
  if (/^[0-9a-f]{64}$/.test(ctx.auth.payloadHash) && body.sha256 !== ctx.auth.payloadHash) {
    throw new S3Err('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.",
      { ClientComputedContentSHA256: ctx.auth.payloadHash, S3ComputedContentSHA256: body.sha256 });
  }
  if (h['content-md5'] !== undefined && body.md5 !== h['content-md5'].trim()) {
    throw new S3Err('BadDigest', 'The Content-MD5 you specified did not match what was received.',
      { ExpectedDigest: h['content-md5'].trim(), CalculatedDigest: body.md5 });
  }
  const c = ctx.checksum;
  if (c) {
    const got = c.algo === 'SHA256' ? Buffer.from(body.sha256, 'hex').toString('base64') : body.sha1;
    if (got !== c.value) throw new S3Err('BadDigest', `The ${c.algo} you specified did not match the calculated checksum.`);
  }
}

// The x-amz-checksum-* header of an answer, for a request that carried one.
function checksumHeaders(c) {
  return c ? { [cks.ALGOS[c.algo].header]: c.value } : {};
}

module.exports = { readBody, discardBody, bodyText, digestsWanted, verifyDigests, checksumHeaders };
