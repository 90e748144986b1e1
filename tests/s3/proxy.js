#!/usr/bin/env node
'use strict';
// The strict test S3: an HTTP proxy in front of s3rver (s3rver-main.js) that
// behaves like S3 where s3rver does not. It verifies SigV4 and payload
// digests before anything reaches s3rver, keeps S3's multipart rules
// (and answers ListMultipartUploads, ListParts, AbortMultipartUpload and
// UploadPartCopy itself), lists objects in S3's order, and injects faults
// on request. README.md lists what differs from s3rver and why.
//
//   node proxy.js --dir DIR --upstream-port N [--port N]
//
// DIR holds data/ (s3rver's), tmp/ (request bodies over 64 MiB while they
// are verified), uploads.journal, faults.log, access.log, proxy.pid and
// proxy.port. Admin endpoints (no signature; "__lzfs__" is no bucket name):
//   GET|POST|DELETE /__lzfs__/faults   GET|DELETE /__lzfs__/stats
//   GET /__lzfs__/uploads              GET /__lzfs__/health

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const { pipeline, Transform } = require('stream');

const sigv4 = require('./lib/sigv4');
const { STATUS, document, errorXml, text, parseCompleteBody } = require('./lib/s3xml');
const { listObjects, ListError, OWNER, objectInfo } = require('./lib/listing');
const { Faults, validate, throttle } = require('./lib/faults');
const { corruptAnswer } = require('./lib/corrupt');
const Uploads = require('./lib/uploads');
const cks = require('./lib/checksums');

const MiB = 1024 * 1024;
const MEMORY_BODY_MAX = 64 * MiB;
const MIN_PART_SIZE = 5 * MiB;
const MAX_PART_SIZE = 5 * 1024 * MiB;
const MAX_PUT_SIZE = 5 * 1024 * MiB;
const MAX_XML_BODY = 2 * MiB;
const MAX_META_BYTES = 2048;
const MAX_KEY_BYTES = 1024;
const MAX_PARTS = 10000;
const ADMIN_PREFIX = '/__lzfs__/';

const OPS = [
  'ListBuckets', 'CreateBucket', 'DeleteBucket', 'HeadBucket', 'GetBucketLocation',
  'ListObjects', 'ListObjectsV2', 'ListMultipartUploads', 'DeleteObjects', 'BucketSubresource',
  'PutObject', 'CopyObject', 'GetObject', 'HeadObject', 'DeleteObject', 'ObjectSubresource',
  'CreateMultipartUpload', 'UploadPart', 'UploadPartCopy', 'CompleteMultipartUpload',
  'AbortMultipartUpload', 'ListParts', 'Unknown',
];
const BUCKET_SUBRESOURCES = ['acl', 'cors', 'website', 'policy', 'tagging', 'versioning', 'lifecycle',
  'encryption', 'logging', 'notification', 'replication', 'requestPayment', 'object-lock',
  'publicAccessBlock', 'accelerate', 'analytics', 'inventory', 'metrics', 'ownershipControls',
  'intelligent-tiering', 'policyStatus', 'versions'];

// ---------------------------------------------------------------- setup

function parseArgs(argv) {
  const a = { port: 0 };
  for (let i = 2; i < argv.length; i += 2) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--dir': a.dir = v; break;
      case '--upstream-port': a.upstreamPort = Number(v); break;
      case '--port': a.port = Number(v); break;
      default: throw new Error('unknown argument ' + argv[i]);
    }
  }
  if (!a.dir || !a.upstreamPort) throw new Error('usage: proxy.js --dir DIR --upstream-port N [--port N]');
  return a;
}

const args = parseArgs(process.argv);
const DIR = path.resolve(args.dir);
const DATA = path.join(DIR, 'data');
const TMP = path.join(DIR, 'tmp');
fs.mkdirSync(TMP, { recursive: true });
// Bodies left by a proxy that died mid-request.
for (const f of fs.readdirSync(TMP)) if (f.endsWith('.body')) fs.unlinkSync(path.join(TMP, f));

const KEYS = new Map([[
  process.env.LZFS_TEST_ACCESS_KEY || 'lzfstest',
  { secret: process.env.LZFS_TEST_SECRET_KEY || 'lzfstestsecret', token: process.env.LZFS_TEST_SESSION_TOKEN || undefined },
]]);

const faults = new Faults(path.join(DIR, 'faults.log'));
const uploads = new Uploads(path.join(DIR, 'uploads.journal'));
const checksums = new cks.ChecksumStore(path.join(DIR, 'checksums.journal'));
const accessLog = fs.createWriteStream(path.join(DIR, 'access.log'), { flags: 'a' });
const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
let listenPort = args.port;

function log(msg) {
  console.log(`${new Date().toISOString()} ${msg}`);
}

// ---------------------------------------------------------------- helpers

class S3Err extends Error {
  constructor(code, message, detail, status) {
    super(message);
    this.code = code;
    this.detail = detail || {};
    this.status = status || STATUS[code] || 400;
  }
}

const noSuchUpload = (id) => new S3Err('NoSuchUpload',
  'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  { UploadId: id });

function requestId() {
  return crypto.randomBytes(8).toString('hex').toUpperCase();
}

function setS3Headers(ctx, res) {
  res.setHeader('x-amz-request-id', ctx.id);
  res.setHeader('x-amz-id-2', ctx.hostId);
  res.setHeader('Server', 'AmazonS3');
}

// An answer made here (not relayed from s3rver); a pending response-reset
// fault cuts it in the middle.
function sendXml(ctx, status, xml, extraHeaders) {
  const res = ctx.res;
  const body = Buffer.from(xml, 'utf8');
  setS3Headers(ctx, res);
  if (ctx.fault && ctx.fault.corrupt && status < 300) {
    return sendCorrupt(ctx, status, { 'content-type': 'application/xml', ...extraHeaders }, body);
  }
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': body.length, ...extraHeaders });
  ctx.status = status;
  if (ctx.fault && ctx.fault.reset === 'response' && !ctx.resetDone) {
    ctx.resetDone = true;
    const cut = Math.floor(body.length / 2);
    faultLog(ctx, 'reset', `reset response-body after ${cut} of ${body.length} bytes`);
    res.write(body.subarray(0, cut), () => res.destroy());
    return;
  }
  res.end(body);
}

// Errors answer as S3 does; when the request body was neither read nor
// announced with 100-continue, it is read and dropped first, so the client
// gets the answer rather than a reset.
async function sendError(ctx, e) {
  const res = ctx.res;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = e.status || STATUS[e.code] || 400;
  const xml = errorXml(e.code, e.message, e.detail, ctx.id, ctx.hostId);
  const headers = {};
  if (!ctx.bodyRead) {
    if (ctx.expectContinue && !ctx.continued) headers.Connection = 'close';
    else await drain(ctx.req);
  }
  sendXml(ctx, status, xml, headers);
  ctx.errorCode = e.code;
}

function drain(req) {
  return new Promise((resolve) => {
    if (req.readableEnded || req.destroyed) return resolve();
    req.on('end', resolve).on('close', resolve).on('error', resolve);
    req.resume();
  });
}

async function bucketExists(bucket) {
  try {
    return (await fs.promises.stat(path.join(DATA, bucket))).isDirectory();
  } catch (e) {
    return false;
  }
}

async function requireBucket(bucket) {
  if (!(await bucketExists(bucket))) {
    throw new S3Err('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
  }
}

// s3rver keeps a key as a path: "a/b" is DATA/bucket/a/b._S3rver_object.
// Keys that no path can hold faithfully are refused rather than mangled.
function checkKey(key) {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) {
    throw new S3Err('KeyTooLongError', 'Your key is too long', { Size: bytes, MaxSizeAllowed: MAX_KEY_BYTES });
  }
  const segs = key.split('/');
  segs.forEach((s, i) => {
    const bad = (s === '' && i < segs.length - 1) || s === '.' || s === '..' || s.includes('._S3rver_') ||
      s.includes('\0') || Buffer.byteLength(s, 'utf8') > 236;
    if (bad) {
      throw new S3Err('InvalidArgument',
        `The lzfs test S3 cannot store this key (s3rver maps keys to file paths: no empty, "." or ".." segments, ` +
        'no segment over 236 bytes)', { ArgumentName: 'key', ArgumentValue: key });
    }
  });
}

function checkMetadataSize(headers) {
  let n = 0;
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith('x-amz-meta-')) n += Buffer.byteLength(k.slice(11)) + Buffer.byteLength(String(v));
  }
  if (n > MAX_META_BYTES) {
    throw new S3Err('MetadataTooLarge', 'Your metadata headers exceed the maximum allowed metadata size.',
      { Size: n, MaxSizeAllowed: MAX_META_BYTES });
  }
}

function checkBucketName(b) {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(b) || b.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(b)) {
    throw new S3Err('InvalidBucketName', 'The specified bucket is not valid.', { BucketName: b });
  }
}

// "bucket/key", "/bucket/key?versionId=..." -> { bucket, key }
function parseCopySource(value) {
  let v = value;
  const q = v.indexOf('?');
  if (q >= 0) {
    const params = new Map(sigv4.parseQuery(v.slice(q + 1)) || []);
    const ver = params.get('versionId');
    if (ver !== undefined && ver !== 'null') {
      throw new S3Err('InvalidArgument', 'Invalid version id specified',
        { ArgumentName: 'x-amz-copy-source', ArgumentValue: value });
    }
    v = v.slice(0, q);
  }
  const decoded = sigv4.uriDecode(v.replace(/^\//, ''));
  const slash = decoded === null ? -1 : decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new S3Err('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
      { ArgumentName: 'x-amz-copy-source', ArgumentValue: value });
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

async function sourceObject(src) {
  await requireBucket(src.bucket);
  checkKey(src.key);
  const info = await objectInfo(path.join(DATA, src.bucket), src.key);
  if (!info) throw new S3Err('NoSuchKey', 'The specified key does not exist.', { Key: src.key });
  return info;
}

// x-amz-copy-source-if-* on the source object.
function checkCopyConditions(headers, info) {
  const etag = `"${info.etag}"`;
  const im = headers['x-amz-copy-source-if-match'];
  const inm = headers['x-amz-copy-source-if-none-match'];
  if ((im !== undefined && !etagMatches(im, etag)) || (inm !== undefined && etagMatches(inm, etag))) {
    throw new S3Err('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
      { Condition: im !== undefined ? 'x-amz-copy-source-If-Match' : 'x-amz-copy-source-If-None-Match' });
  }
}

function etagMatches(list, etag) {
  const bare = etag.replace(/"/g, '');
  return list.split(',').map((s) => s.trim().replace(/^W\//, '').replace(/"/g, '')).some((t) => t === '*' || t === bare);
}

// If-None-Match: * and If-Match on writes (PutObject, CompleteMultipartUpload).
async function checkWriteConditions(ctx) {
  const im = ctx.req.headers['if-match'];
  const inm = ctx.req.headers['if-none-match'];
  if (im === undefined && inm === undefined) return;
  const info = await objectInfo(path.join(DATA, ctx.bucket), ctx.key);
  if (inm !== undefined) {
    if (inm.trim() !== '*') throw new S3Err('NotImplemented', 'If-None-Match on writes only takes "*"', {}, 501);
    if (info) {
      throw new S3Err('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
        { Condition: 'If-None-Match' });
    }
  }
  if (im !== undefined) {
    if (!info) throw new S3Err('NoSuchKey', 'The specified key does not exist.', { Key: ctx.key });
    if (!etagMatches(im, `"${info.etag}"`)) {
      throw new S3Err('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
        { Condition: 'If-Match' });
    }
  }
}

function opName(method, bucket, key, q, headers) {
  if (bucket === undefined) return method === 'GET' ? 'ListBuckets' : 'Unknown';
  if (key === undefined) {
    const sub = BUCKET_SUBRESOURCES.some((s) => q.has(s));
    switch (method) {
      case 'GET':
        if (q.has('uploads')) return 'ListMultipartUploads';
        if (q.has('location')) return 'GetBucketLocation';
        if (sub) return 'BucketSubresource';
        return q.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
      case 'HEAD': return 'HeadBucket';
      case 'PUT': return sub ? 'BucketSubresource' : 'CreateBucket';
      case 'DELETE': return sub ? 'BucketSubresource' : 'DeleteBucket';
      case 'POST': return q.has('delete') ? 'DeleteObjects' : 'Unknown';
      default: return 'Unknown';
    }
  }
  const objSub = ['acl', 'tagging', 'retention', 'legal-hold', 'torrent', 'restore', 'select', 'attributes']
    .some((s) => q.has(s));
  switch (method) {
    case 'GET':
      if (q.has('uploadId')) return 'ListParts';
      return objSub ? 'ObjectSubresource' : 'GetObject';
    case 'HEAD': return 'HeadObject';
    case 'PUT':
      if (q.has('uploadId') || q.has('partNumber')) return headers['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart';
      if (objSub) return 'ObjectSubresource';
      return headers['x-amz-copy-source'] !== undefined ? 'CopyObject' : 'PutObject';
    case 'POST':
      if (q.has('uploads')) return 'CreateMultipartUpload';
      if (q.has('uploadId')) return 'CompleteMultipartUpload';
      return objSub ? 'ObjectSubresource' : 'Unknown';
    case 'DELETE':
      if (q.has('uploadId')) return 'AbortMultipartUpload';
      return objSub ? 'ObjectSubresource' : 'DeleteObject';
    default: return 'Unknown';
  }
}

// ---------------------------------------------------------------- bodies

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
  const file = toFile ? path.join(TMP, `${ctx.id}.body`) : null;
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

// ---------------------------------------------------------------- upstream

function upstreamPath(bucket, key, pairs) {
  let p = bucket === undefined ? '/' : '/' + sigv4.uriEncode(bucket);
  if (key !== undefined) p += '/' + key.split('/').map(sigv4.uriEncode).join('/');
  const qs = (pairs || []).filter(([n]) => !/^X-Amz-/i.test(n))
    .map(([n, v]) => (v === '' ? sigv4.uriEncode(n) : sigv4.uriEncode(n) + '=' + sigv4.uriEncode(v))).join('&');
  return qs ? p + '?' + qs : p;
}

const HOP_HEADERS = new Set(['host', 'authorization', 'connection', 'keep-alive', 'expect', 'transfer-encoding',
  'content-length', 'x-amz-content-sha256', 'x-amz-date', 'x-amz-security-token', 'proxy-connection', 'te',
  'upgrade', 'trailer']);

function upstreamHeaders(reqHeaders, extra) {
  const h = {};
  for (const [k, v] of Object.entries(reqHeaders)) if (!HOP_HEADERS.has(k)) h[k] = v;
  return { ...h, host: `127.0.0.1:${args.upstreamPort}`, ...extra };
}

// Sends one request to s3rver. body: undefined, a Buffer, { chunks },
// { file } or a readable stream. Resolves with the response (unread).
function upstream(method, urlPath, headers, body, size) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined || method === 'PUT' || method === 'POST') h['content-length'] = size || 0;
    const ureq = http.request({
      host: '127.0.0.1', port: args.upstreamPort, method, path: urlPath, headers: h, agent: upstreamAgent,
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

function readAll(stream, limit = 16 * MiB) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    stream.on('data', (c) => {
      n += c.length;
      if (n > limit) stream.destroy(new Error('upstream answer too large'));
      else chunks.push(c);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

// Passes an upstream error answer on, with S3's RequestId and HostId added.
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
  const status = ures.statusCode;
  throw new S3Err(code, text(body, 'Message') || '', detail, status);
}

// A corrupt fault: the whole (applied) answer, damaged (lib/corrupt.js).
function sendCorrupt(ctx, status, headers, body) {
  const c = corruptAnswer(ctx.fault.corrupt, headers, body);
  if (ctx.method === 'HEAD' && headers['content-length'] !== undefined) c.headers['content-length'] = headers['content-length'];
  faultLog(ctx, 'corrupt', c.what);
  ctx.status = status;
  ctx.res.writeHead(status, c.headers);
  ctx.res.end(ctx.method === 'HEAD' ? undefined : c.body);
}

// Streams an upstream answer to the client, with extraHeaders, applying the
// slow_bps, response-reset and corrupt faults to it.
async function relay(ctx, ures, extraHeaders, fault) {
  const res = ctx.res;
  const headers = { ...ures.headers, ...extraHeaders };
  for (const h of ['connection', 'keep-alive', 'transfer-encoding', 'x-amz-request-id', 'x-amz-id-2', 'server']) {
    delete headers[h];
  }
  setS3Headers(ctx, res);
  ctx.status = ures.statusCode;
  const len = Number(headers['content-length'] || 0);
  const hasBody = ctx.method !== 'HEAD' && len > 0;
  if (fault && fault.corrupt && ures.statusCode < 300 && len <= 16 * MiB) {
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

// ---------------------------------------------------------------- handlers

async function forwardSimple(ctx, body, extraUpHeaders) {
  const ures = await upstream(ctx.method, upstreamPath(ctx.bucket, ctx.key, ctx.queryPairs),
    upstreamHeaders(ctx.req.headers, extraUpHeaders), body, body && body.size);
  if (ures.statusCode >= 400 && ctx.method !== 'HEAD') await relayError(ctx, ures);
  return ures;
}

async function handleGetObject(ctx) {
  const q = ctx.query;
  if (q.has('partNumber')) throw new S3Err('NotImplemented', 'The lzfs test S3 does not serve parts of objects (partNumber).', {}, 501);
  const extra = {};
  const range = ctx.req.headers.range;
  if (range !== undefined) {
    // S3 serves one range; anything it cannot parse is ignored (200, all).
    const m = /^\s*bytes=(\d*)-(\d*)\s*$/.exec(range);
    if (!m || (m[1] === '' && m[2] === '') || (m[1] !== '' && m[2] !== '' && Number(m[2]) < Number(m[1]))) {
      extra.range = undefined;
    } else if (m[1] === '') {
      const info = await objectInfo(path.join(DATA, ctx.bucket), ctx.key);
      if (info) {
        const n = Number(m[2]);
        if (n === 0 || info.size === 0) {
          throw new S3Err('InvalidRange', 'The requested range is not satisfiable',
            { RangeRequested: range, ActualObjectSize: info.size });
        }
        extra.range = `bytes=${Math.max(0, info.size - n)}-${info.size - 1}`;
      }
    } else {
      extra.range = `bytes=${m[1]}-${m[2]}`;
    }
  }
  const headers = upstreamHeaders(ctx.req.headers, extra);
  if (headers.range === undefined) delete headers.range;
  // If-Match / If-Unmodified-Since are checked here, on the answer's ETag and
  // date; s3rver does If-None-Match and If-Modified-Since itself.
  delete headers['if-match'];
  delete headers['if-unmodified-since'];
  const ures = await upstream(ctx.method, upstreamPath(ctx.bucket, ctx.key, ctx.queryPairs), headers);
  if (ures.statusCode >= 400) {
    if (ctx.method !== 'HEAD') await relayError(ctx, ures);
    ures.resume();
    throw new S3Err(ures.statusCode === 404 ? 'NoSuchKey' : 'InternalError', '', {}, ures.statusCode);
  }
  const im = ctx.req.headers['if-match'];
  const ius = ctx.req.headers['if-unmodified-since'];
  const failed = (im !== undefined && !etagMatches(im, ures.headers.etag || '')) ||
    (im === undefined && ius !== undefined && ures.statusCode < 300 &&
      Date.parse(ures.headers['last-modified']) > Date.parse(ius));
  if (failed) {
    ures.destroy();
    throw new S3Err('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
      { Condition: im !== undefined ? 'If-Match' : 'If-Unmodified-Since' });
  }
  // The object's checksum is returned for whole objects only, as S3 does.
  const answer = {};
  if ((ctx.req.headers['x-amz-checksum-mode'] || '').toUpperCase() === 'ENABLED' && ures.statusCode === 200) {
    const c = checksums.get(ctx.bucket, ctx.key, ures.headers.etag || '');
    if (c) Object.assign(answer, checksumHeaders(c), { 'x-amz-checksum-type': c.type });
  }
  return relay(ctx, ures, answer, ctx.fault);
}

async function handlePutObject(ctx, body) {
  checkMetadataSize(ctx.req.headers);
  await checkWriteConditions(ctx);
  const ures = await forwardSimple(ctx, body);
  const c = ctx.checksum;
  if (ures.statusCode === 200 && c) checksums.set(ctx.bucket, ctx.key, ures.headers.etag || '', c.algo, c.value, 'FULL_OBJECT');
  else if (ures.statusCode === 200) checksums.delete(ctx.bucket, ctx.key);
  return relay(ctx, ures, checksumHeaders(c), ctx.fault);
}

async function handleCopyObject(ctx) {
  const src = parseCopySource(ctx.req.headers['x-amz-copy-source']);
  const info = await sourceObject(src);
  checkCopyConditions(ctx.req.headers, info);
  if (info.size > MAX_PUT_SIZE) {
    throw new S3Err('InvalidRequest', `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_PUT_SIZE}`);
  }
  const directive = ctx.req.headers['x-amz-metadata-directive'];
  if (directive !== undefined && directive !== 'COPY' && directive !== 'REPLACE') {
    throw new S3Err('InvalidArgument', 'Unknown metadata directive.', { ArgumentName: 'x-amz-metadata-directive', ArgumentValue: directive });
  }
  if (directive === 'REPLACE') checkMetadataSize(ctx.req.headers);
  // s3rver reads the header with decodeURI; hand it a form that survives.
  const ures = await forwardSimple(ctx, undefined, {
    'x-amz-copy-source': encodeURI(`/${src.bucket}/${src.key}`),
  });
  checksums.delete(ctx.bucket, ctx.key);
  return relay(ctx, ures, {}, ctx.fault);
}

function uploadFor(ctx) {
  const id = ctx.query.get('uploadId');
  const u = id !== undefined && uploads.get(id);
  if (!u || u.bucket !== ctx.bucket || u.key !== ctx.key) throw noSuchUpload(id);
  return u;
}

function partNumberOf(ctx) {
  const s = ctx.query.get('partNumber');
  if (s === undefined || !/^\d+$/.test(s) || Number(s) < 1 || Number(s) > MAX_PARTS) {
    throw new S3Err('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive',
      { ArgumentName: 'partNumber', ArgumentValue: s === undefined ? '' : s });
  }
  return Number(s);
}

function uploadDir(u) {
  return path.join(DATA, u.bucket, '._S3rver_uploads', u.id);
}

// After a part landed in s3rver: remember it, unless the upload was aborted
// or completed meanwhile (then s3rver has just re-created its directory).
function recordPart(ctx, u, n, info) {
  if (uploads.get(u.id)) {
    uploads.addPart(u.id, n, info);
  } else {
    fs.rm(uploadDir(u), { recursive: true, force: true }, () => {});
  }
}

async function handleUploadPart(ctx, u, n, body) {
  const ures = await forwardSimple(ctx, body, {});
  const etag = (ures.headers.etag || '').replace(/"/g, '');
  recordPart(ctx, u, n, {
    size: body.size, etag, mtime: new Date().toISOString(), checksum: ctx.checksum ? ctx.checksum.value : undefined,
  });
  return relay(ctx, ures, checksumHeaders(ctx.checksum), ctx.fault);
}

async function handleUploadPartCopy(ctx, u, n) {
  const src = parseCopySource(ctx.req.headers['x-amz-copy-source']);
  const info = await sourceObject(src);
  checkCopyConditions(ctx.req.headers, info);
  let start = 0;
  let end = info.size - 1;
  const r = ctx.req.headers['x-amz-copy-source-range'];
  if (r !== undefined) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(r.trim());
    if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) >= info.size) {
      throw new S3Err('InvalidArgument', `Range specified is not valid for source object of size: ${info.size}`,
        { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: r });
    }
    start = Number(m[1]);
    end = Number(m[2]);
  }
  const size = end - start + 1;
  if (size > MAX_PART_SIZE) {
    throw new S3Err('InvalidRequest', `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_PART_SIZE}`);
  }
  // With a checksum algorithm on the upload, S3 computes the part's checksum.
  const hash = u.algo ? crypto.createHash(cks.ALGOS[u.algo].hash) : null;
  let source;
  if (size > 0) {
    const sres = await upstream('GET', upstreamPath(src.bucket, src.key),
      upstreamHeaders({}, { range: `bytes=${start}-${end}` }));
    if (sres.statusCode !== 206 && sres.statusCode !== 200) await relayError(ctx, sres);
    source = !hash ? sres : sres.pipe(new Transform({
      transform(chunk, enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    }));
  } else {
    source = Buffer.alloc(0);
  }
  const pres = await upstream('PUT', upstreamPath(ctx.bucket, ctx.key, [['partNumber', String(n)], ['uploadId', u.id]]),
    upstreamHeaders({}), source, size);
  if (pres.statusCode >= 400) await relayError(ctx, pres);
  pres.resume();
  const etag = (pres.headers.etag || '').replace(/"/g, '');
  const mtime = new Date().toISOString();
  const checksum = hash ? hash.digest('base64') : undefined;
  recordPart(ctx, u, n, { size, etag, mtime, checksum });
  ctx.bodyRead = true;
  const result = { LastModified: mtime, ETag: `"${etag}"` };
  if (hash) result[cks.ALGOS[u.algo].xml] = checksum;
  return sendXml(ctx, 200, document('CopyPartResult', result));
}

async function handleCreateMultipart(ctx) {
  checkMetadataSize(ctx.req.headers);
  const algo = cks.algorithmOf(ctx.req.headers['x-amz-checksum-algorithm']);
  const type = ctx.req.headers['x-amz-checksum-type'];
  if (type !== undefined && type.toUpperCase() !== 'COMPOSITE') {
    throw new S3Err('NotImplemented', 'The lzfs test S3 keeps COMPOSITE multipart checksums only.', {}, 501);
  }
  const ures = await forwardSimple(ctx, undefined);
  const xml = (await readAll(ures)).toString('utf8');
  const id = text(xml, 'UploadId');
  if (!id || !/^[0-9a-f]+$/.test(id)) throw new S3Err('InternalError', 's3rver gave no upload id', {}, 500);
  uploads.create(ctx.bucket, ctx.key, id, algo);
  return sendXml(ctx, 200, document('InitiateMultipartUploadResult', { Bucket: ctx.bucket, Key: ctx.key, UploadId: id }),
    algo ? { 'x-amz-checksum-algorithm': algo, 'x-amz-checksum-type': 'COMPOSITE' } : {});
}

async function handleComplete(ctx, u, body) {
  const parts = parseCompleteBody(bodyText(body));
  if (!parts) {
    throw new S3Err('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
  }
  for (let i = 1; i < parts.length; i++) {
    if (parts[i].number <= parts[i - 1].number) {
      throw new S3Err('InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.',
        { UploadId: u.id });
    }
  }
  parts.forEach((p, i) => {
    const have = u.parts.get(p.number);
    if (!have || have.etag !== p.etag) {
      throw new S3Err('InvalidPart', 'One or more of the specified parts could not be found.  The part may not have been uploaded, ' +
        "or the specified entity tag may not match the part's entity tag.", { UploadId: u.id, PartNumber: p.number, ETag: p.etag });
    }
    if (i < parts.length - 1 && have.size < MIN_PART_SIZE) {
      throw new S3Err('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size',
        { ProposedSize: have.size, MinSizeAllowed: MIN_PART_SIZE, PartNumber: p.number, ETag: p.etag });
    }
    if (u.algo) {
      const given = p.checksums[u.algo];
      if (given === undefined) {
        throw new S3Err('InvalidRequest', `The upload was created using a ${u.algo.toLowerCase()} checksum. The complete ` +
          `request must include the checksum for each part. It was missing for part ${p.number} in the request.`);
      }
      if (given !== have.checksum) {
        throw new S3Err('InvalidPart', `The ${u.algo.toLowerCase()} checksum of part ${p.number} does not match the uploaded part's.`,
          { UploadId: u.id, PartNumber: p.number });
      }
    }
  });
  await checkWriteConditions(ctx);
  // s3rver's XML parser turns an all-digit ETag into a number; quoted, it cannot.
  const xml = '<CompleteMultipartUpload>' +
    parts.map((p) => `<Part><PartNumber>${p.number}</PartNumber><ETag>"${p.etag}"</ETag></Part>`).join('') +
    '</CompleteMultipartUpload>';
  const buf = Buffer.from(xml);
  const ures = await upstream('POST', upstreamPath(ctx.bucket, ctx.key, [['uploadId', u.id]]),
    upstreamHeaders({ 'content-type': 'application/xml' }), buf, buf.length);
  if (ures.statusCode >= 400) await relayError(ctx, ures);
  const etag = text((await readAll(ures)).toString('utf8'), 'ETag');
  if (!etag) throw new S3Err('InternalError', 's3rver completed without an ETag', {}, 500);
  uploads.remove(u.id);
  const result = {
    Location: ctx.vhost ? `http://${ctx.req.headers.host}/${ctx.key}` : `http://${ctx.req.headers.host}/${ctx.bucket}/${ctx.key}`,
    Bucket: ctx.bucket,
    Key: ctx.key,
    ETag: etag,
  };
  if (u.algo) {
    const value = cks.composite(u.algo, parts.map((p) => u.parts.get(p.number).checksum));
    checksums.set(ctx.bucket, ctx.key, etag, u.algo, value, 'COMPOSITE');
    result[cks.ALGOS[u.algo].xml] = value;
    result.ChecksumType = 'COMPOSITE';
  } else {
    checksums.delete(ctx.bucket, ctx.key);
  }
  return sendXml(ctx, 200, document('CompleteMultipartUploadResult', result));
}

async function handleAbort(ctx, u) {
  uploads.remove(u.id);
  await fs.promises.rm(uploadDir(u), { recursive: true, force: true });
  if (ctx.fault && ctx.fault.reset === 'response') {
    faultLog(ctx, 'reset', 'reset response (no body; request was applied)');
    ctx.res.destroy();
    return;
  }
  setS3Headers(ctx, ctx.res);
  ctx.res.writeHead(204);
  ctx.res.end();
  ctx.status = 204;
}

function intParam(q, name, dflt, max) {
  if (!q.has(name)) return dflt;
  const s = q.get(name);
  if (!/^\d+$/.test(s)) {
    throw new S3Err('InvalidArgument', `Provided ${name} not an integer or within integer range`,
      { ArgumentName: name, ArgumentValue: s });
  }
  return Math.min(max, Number(s));
}

function handleListParts(ctx, u) {
  const q = ctx.query;
  const maxParts = intParam(q, 'max-parts', 1000, 1000);
  const marker = intParam(q, 'part-number-marker', 0, MAX_PARTS);
  const all = [...u.parts.entries()].filter(([n]) => n > marker).sort((a, b) => a[0] - b[0]);
  const page = all.slice(0, maxParts);
  const truncated = all.length > page.length;
  return sendXml(ctx, 200, document('ListPartsResult', {
    Bucket: u.bucket,
    Key: u.key,
    UploadId: u.id,
    Initiator: OWNER,
    Owner: OWNER,
    StorageClass: 'STANDARD',
    ChecksumAlgorithm: u.algo,
    PartNumberMarker: marker,
    NextPartNumberMarker: page.length ? page[page.length - 1][0] : marker,
    MaxParts: maxParts,
    IsTruncated: truncated ? 'true' : 'false',
    Part: page.map(([n, p]) => ({
      PartNumber: n, LastModified: p.mtime, ETag: `"${p.etag}"`, Size: p.size,
      ...(u.algo && p.checksum ? { [cks.ALGOS[u.algo].xml]: p.checksum } : {}),
    })),
  }));
}

async function handleListUploads(ctx) {
  await requireBucket(ctx.bucket);
  const q = ctx.query;
  const prefix = q.get('prefix') || '';
  const delimiter = q.get('delimiter') || '';
  const keyMarker = q.get('key-marker') || '';
  const idMarker = keyMarker ? q.get('upload-id-marker') || '' : '';
  const maxUploads = intParam(q, 'max-uploads', 1000, 1000);
  const encoding = q.get('encoding-type');
  const enc = (s) => (encoding === 'url' ? encodeURIComponent(s).replace(/%2F/g, '/').replace(/%20/g, '+') : s);
  const km = Buffer.from(keyMarker);

  const list = uploads.list(ctx.bucket).filter((u) => u.key.startsWith(prefix));
  let pastIdMarker = idMarker === '';
  const entries = [];
  for (const u of list) {
    if (keyMarker) {
      const c = Buffer.compare(Buffer.from(u.key), km);
      if (c < 0) continue;
      if (c === 0) {
        if (!pastIdMarker) {
          if (u.id === idMarker) pastIdMarker = true;
          continue;
        }
      }
    }
    entries.push(u);
  }
  const out = [];
  const prefixes = [];
  let truncated = false;
  let last = null;
  for (const u of entries) {
    let cp = null;
    if (delimiter) {
      const i = u.key.indexOf(delimiter, prefix.length);
      if (i >= 0) cp = u.key.slice(0, i + delimiter.length);
    }
    if (cp !== null && prefixes[prefixes.length - 1] === cp) continue;
    if (out.length + prefixes.length >= maxUploads) {
      truncated = true;
      break;
    }
    if (cp !== null) {
      prefixes.push(cp);
      last = { key: cp, id: '' };
    } else {
      out.push(u);
      last = { key: u.key, id: u.id };
    }
  }
  return sendXml(ctx, 200, document('ListMultipartUploadsResult', {
    Bucket: ctx.bucket,
    KeyMarker: enc(keyMarker),
    UploadIdMarker: idMarker,
    NextKeyMarker: truncated ? enc(last.key) : undefined,
    NextUploadIdMarker: truncated ? last.id : undefined,
    Prefix: prefix ? enc(prefix) : undefined,
    Delimiter: delimiter ? enc(delimiter) : undefined,
    MaxUploads: maxUploads,
    EncodingType: encoding,
    IsTruncated: truncated ? 'true' : 'false',
    Upload: out.map((u) => ({
      Key: enc(u.key), UploadId: u.id, Initiator: OWNER, Owner: OWNER, StorageClass: 'STANDARD', Initiated: u.initiated,
    })),
    CommonPrefixes: prefixes.map((p) => ({ Prefix: enc(p) })),
  }));
}

async function handleList(ctx) {
  await requireBucket(ctx.bucket);
  let xml;
  try {
    xml = await listObjects(DATA, ctx.bucket, ctx.query);
  } catch (e) {
    if (e instanceof ListError) throw new S3Err(e.code, e.message, e.detail);
    throw e;
  }
  return sendXml(ctx, 200, xml);
}

// ---------------------------------------------------------------- faults

function faultLog(ctx, kind, what) {
  faults.record(ctx.op, ctx.bucket, ctx.key, kind, what);
  ctx.faulted = ctx.faulted ? ctx.faulted + ',' + kind : kind;
}

function goDown(secs) {
  faults.record('-', undefined, undefined, 'down', `down ${secs}s (connections refused)`);
  log(`down for ${secs}s`);
  server.close();
  server.closeAllConnections();
  setTimeout(() => listen(() => log('up again')), secs * 1000);
}

// ---------------------------------------------------------------- admin

async function handleAdmin(ctx) {
  const { req, res } = ctx;
  const what = ctx.rawPath.slice(ADMIN_PREFIX.length);
  const json = (status, obj) => {
    const b = Buffer.from(JSON.stringify(obj, null, 1) + '\n');
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': b.length });
    res.end(b);
    ctx.status = status;
  };
  const m = req.method;
  if (what === 'health' && m === 'GET') {
    try {
      const u = await upstream('GET', '/', upstreamHeaders({}));
      await readAll(u);
      return json(200, { ok: true, port: listenPort, upstream_port: args.upstreamPort, upstream_status: u.statusCode });
    } catch (e) {
      return json(502, { ok: false, error: e.message });
    }
  }
  if (what === 'faults') {
    if (m === 'GET') return json(200, faults.get());
    if (m === 'DELETE') {
      faults.set({});
      return json(200, faults.get());
    }
    if (m === 'POST' || m === 'PUT') {
      const raw = (await readAll(req, MiB)).toString('utf8').trim();
      let spec;
      try {
        spec = raw === '' || raw === 'off' ? {} : JSON.parse(raw);
      } catch (e) {
        return json(400, { error: 'not JSON: ' + e.message });
      }
      const problem = validate(spec, OPS);
      if (problem) return json(400, { error: problem });
      faults.set(spec);
      log(`faults set: ${JSON.stringify(spec)}`);
      if (spec.down_secs > 0) {
        res.setHeader('Connection', 'close');
        res.on('finish', () => goDown(spec.down_secs));
      }
      return json(200, faults.get());
    }
  }
  if (what === 'stats') {
    if (m === 'GET') return json(200, faults.stats());
    if (m === 'DELETE') {
      faults.resetStats();
      return json(200, faults.stats());
    }
  }
  if (what === 'uploads' && m === 'GET') return json(200, uploads.toJSON());
  return json(404, { error: `no admin endpoint ${m} ${ctx.rawPath}` });
}

// ---------------------------------------------------------------- dispatch

function parseTarget(ctx) {
  const url = ctx.req.url;
  const qi = url.indexOf('?');
  ctx.rawPath = qi < 0 ? url : url.slice(0, qi);
  ctx.rawQuery = qi < 0 ? '' : url.slice(qi + 1);
  if (!ctx.rawPath.startsWith('/')) throw new S3Err('InvalidURI', "Couldn't parse the specified URI.");
  ctx.queryPairs = sigv4.parseQuery(ctx.rawQuery);
  const decoded = sigv4.uriDecode(ctx.rawPath);
  if (ctx.queryPairs === null || decoded === null) throw new S3Err('InvalidURI', "Couldn't parse the specified URI.");
  ctx.query = new Map(ctx.queryPairs);
  const host = (ctx.req.headers.host || '').replace(/:\d+$/, '').toLowerCase();
  // Virtual-host style: BUCKET.localhost[:port]; anything else is path style.
  if (host.endsWith('.localhost') && host.length > '.localhost'.length) {
    ctx.vhost = true;
    ctx.bucket = host.slice(0, -'.localhost'.length);
    const k = decoded.slice(1);
    ctx.key = k === '' ? undefined : k;
  } else {
    const rest = decoded.slice(1);
    if (rest !== '') {
      const slash = rest.indexOf('/');
      ctx.bucket = slash < 0 ? rest : rest.slice(0, slash);
      const k = slash < 0 ? '' : rest.slice(slash + 1);
      ctx.key = k === '' ? undefined : k;
    }
  }
}

async function route(ctx) {
  const { req } = ctx;
  parseTarget(ctx);
  ctx.op = opName(ctx.method, ctx.bucket, ctx.key, ctx.query, req.headers);
  faults.countRequest(ctx.op);

  const auth = sigv4.verify({
    method: ctx.method, rawPath: ctx.rawPath, rawQuery: ctx.rawQuery, rawHeaders: req.rawHeaders, now: Date.now(),
  }, KEYS);
  if (auth.error) throw new S3Err(auth.error.code, auth.error.message, auth.error.detail);
  ctx.auth = auth;
  if (auth.payloadHash.startsWith('STREAMING-')) {
    throw new S3Err('NotImplemented', 'The lzfs test S3 does not take aws-chunked (STREAMING-*) payloads.', {}, 501);
  }

  if (ctx.bucket !== undefined && ctx.op !== 'CreateBucket' && ctx.op !== 'ListBuckets') {
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(ctx.bucket)) {
      throw new S3Err('NoSuchBucket', 'The specified bucket does not exist', { BucketName: ctx.bucket });
    }
  }
  if (ctx.key !== undefined) checkKey(ctx.key);

  const te = req.headers['transfer-encoding'];
  const clen = req.headers['content-length'];
  const hasBody = (clen !== undefined && Number(clen) > 0) || te !== undefined;
  if ((ctx.method === 'PUT' || ctx.method === 'POST') && clen === undefined && te !== undefined) {
    throw new S3Err('MissingContentLength', 'You must provide the Content-Length HTTP header.');
  }
  const size = Number(clen || 0);

  // Checks that need no body come first, so 100-continue can refuse early.
  let upload;
  let partNumber;
  switch (ctx.op) {
    case 'CreateBucket': checkBucketName(ctx.bucket); break;
    case 'PutObject':
      if (size > MAX_PUT_SIZE) {
        throw new S3Err('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size',
          { ProposedSize: size, MaxSizeAllowed: MAX_PUT_SIZE });
      }
      break;
    case 'UploadPart':
    case 'UploadPartCopy':
      partNumber = partNumberOf(ctx);
      upload = uploadFor(ctx);
      if (size > MAX_PART_SIZE) {
        throw new S3Err('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size',
          { ProposedSize: size, MaxSizeAllowed: MAX_PART_SIZE });
      }
      break;
    case 'CompleteMultipartUpload':
    case 'AbortMultipartUpload':
    case 'ListParts':
      upload = uploadFor(ctx);
      break;
    case 'DeleteObjects': {
      const h = req.headers;
      if (h['content-md5'] === undefined && !Object.keys(h).some((k) => k.startsWith('x-amz-checksum-'))) {
        throw new S3Err('InvalidRequest', 'Missing required header for this request: Content-MD5');
      }
      break;
    }
    default: break;
  }
  if (['CompleteMultipartUpload', 'DeleteObjects'].includes(ctx.op) && size > MAX_XML_BODY) {
    throw new S3Err('MaxMessageLengthExceeded', 'Your request was too big.', {}, 400);
  }
  const want = digestsWanted(ctx);
  if (ctx.op === 'UploadPart') cks.checkPartType(upload.algo, ctx.checksum && ctx.checksum.algo);

  const fault = faults.decide(ctx.op);
  ctx.fault = fault;
  let body;
  if (hasBody || ctx.method === 'PUT' || ctx.method === 'POST') {
    const resetAt = fault && fault.reset === 'request' && hasBody ? Math.max(1, Math.floor(size / 2)) : undefined;
    body = await readBody(ctx, { ...want, resetAt });
    if (body === null) return; // the client went away, or the fault cut it
    try {
      verifyDigests(ctx, body);
    } catch (e) {
      discardBody(body);
      throw e;
    }
  } else {
    ctx.bodyRead = true;
  }

  try {
    if (fault && fault.latencyMs) {
      faultLog(ctx, 'latency', `latency ${fault.latencyMs}ms`);
      await new Promise((r) => setTimeout(r, fault.latencyMs));
    }
    if (fault && fault.slowBps) faultLog(ctx, 'slow', `slow ${fault.slowBps} B/s`);
    if (fault && fault.error) {
      const [status, code, message] = fault.error;
      faultLog(ctx, 'error', `error ${status} ${code}`);
      throw new S3Err(code, message, {}, status);
    }
    if (fault && fault.reset === 'request') {
      // A bodiless request: the connection goes before it is done.
      faultLog(ctx, 'reset', 'reset before the request was applied');
      ctx.res.destroy();
      return;
    }
    switch (ctx.op) {
      case 'ListObjects':
      case 'ListObjectsV2': return await handleList(ctx);
      case 'ListMultipartUploads': return await handleListUploads(ctx);
      case 'GetObject':
      case 'HeadObject': return await handleGetObject(ctx);
      case 'PutObject': return await handlePutObject(ctx, body);
      case 'CopyObject': return await handleCopyObject(ctx);
      case 'CreateMultipartUpload': return await handleCreateMultipart(ctx);
      case 'UploadPart': return await handleUploadPart(ctx, upload, partNumber, body);
      case 'UploadPartCopy': return await handleUploadPartCopy(ctx, upload, partNumber);
      case 'CompleteMultipartUpload': return await handleComplete(ctx, upload, body);
      case 'AbortMultipartUpload': return await handleAbort(ctx, upload);
      case 'ListParts': return handleListParts(ctx, upload);
      case 'DeleteObject': {
        const ures = await forwardSimple(ctx, body);
        if (ures.statusCode < 300) checksums.delete(ctx.bucket, ctx.key);
        return await relay(ctx, ures, {}, ctx.fault);
      }
      default: {
        const ures = await forwardSimple(ctx, body);
        return await relay(ctx, ures, {}, ctx.fault);
      }
    }
  } finally {
    discardBody(body);
  }
}

async function handle(req, res, expectContinue) {
  const ctx = {
    req, res, method: req.method, id: requestId(), hostId: crypto.randomBytes(24).toString('base64'),
    expectContinue, continued: false, bodyRead: false, op: '-', status: 0, start: Date.now(),
  };
  res.on('close', () => {
    const target = ctx.bucket ? `${ctx.bucket}/${ctx.key || ''}` : '-';
    const status = res.writableFinished ? ctx.status || res.statusCode : 'reset';
    if (ctx.op !== 'admin') faults.countStatus(String(status));
    accessLog.write(`${new Date(ctx.start).toISOString()} ${ctx.id} ${req.method} ${ctx.op} ${target} ` +
      `${status}${ctx.errorCode ? ' ' + ctx.errorCode : ''} in=${ctx.inBytes || 0} ms=${Date.now() - ctx.start}` +
      `${ctx.faulted ? ' fault=' + ctx.faulted : ''}\n`);
  });
  try {
    if (req.url.startsWith(ADMIN_PREFIX) && !/\.localhost(:\d+)?$/i.test(req.headers.host || '')) {
      ctx.rawPath = req.url.split('?')[0];
      ctx.op = 'admin';
      return await handleAdmin(ctx);
    }
    await route(ctx);
  } catch (e) {
    if (e instanceof cks.ChecksumError) e = new S3Err(e.code, e.message, {}, e.status);
    if (!(e instanceof S3Err)) {
      log(`${ctx.id} ${req.method} ${req.url}: ${e.stack || e}`);
      e = new S3Err('InternalError', 'We encountered an internal error. Please try again.', {}, 500);
    }
    try {
      await sendError(ctx, e);
    } catch (e2) {
      res.destroy();
    }
  }
}

// ---------------------------------------------------------------- server

const server = http.createServer();
server.on('request', (req, res) => handle(req, res, false));
server.on('checkContinue', (req, res) => handle(req, res, true));
server.on('clientError', (err, socket) => {
  if (socket.writable && !socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
});
server.requestTimeout = 0; // 1 GiB bodies from slow clients are fine
server.headersTimeout = 60000;
server.keepAliveTimeout = 20000;

function listen(cb) {
  const onErr = (e) => {
    if (e.code === 'EADDRINUSE' && listenPort !== 0) {
      log(`port ${listenPort} busy, retrying`);
      setTimeout(() => listen(cb), 200);
    } else {
      log(`listen: ${e.message}`);
      process.exit(1);
    }
  };
  server.once('error', onErr);
  server.listen(listenPort, '127.0.0.1', () => {
    server.off('error', onErr);
    listenPort = server.address().port;
    cb();
  });
}

listen(() => {
  fs.writeFileSync(path.join(DIR, 'proxy.pid.tmp'), `${process.pid}\n`);
  fs.renameSync(path.join(DIR, 'proxy.pid.tmp'), path.join(DIR, 'proxy.pid'));
  fs.writeFileSync(path.join(DIR, 'proxy.port.tmp'), `${listenPort}\n`);
  fs.renameSync(path.join(DIR, 'proxy.port.tmp'), path.join(DIR, 'proxy.port'));
  log(`proxy on 127.0.0.1:${listenPort} -> s3rver 127.0.0.1:${args.upstreamPort}; ${uploads.map.size} uploads in progress`);
});

function stop(sig) {
  log(`${sig}, stopping`);
  server.close();
  server.closeAllConnections();
  accessLog.end(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
