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
// are verified), uploads.journal, checksums.journal, faults.log, access.log,
// proxy.pid and proxy.port. Admin endpoints (no signature; "__lzfs__" is no
// bucket name):
//   GET|POST|DELETE /__lzfs__/faults   GET|DELETE /__lzfs__/stats
//   GET /__lzfs__/uploads              GET /__lzfs__/health
//
// A request goes through route(): parse the target (path or virtual-host
// style) and name the operation; verify the signature (lib/sigv4.js);
// checks that need no body, so that 100-continue can refuse early; decide
// its faults (lib/faults.js); read and verify the body (lib/body.js); then
// a handler (lib/objects.js, lib/multipart.js) or a plain forward to s3rver
// with the answer streamed back (lib/upstream.js). A request's state is its
// `ctx`; what requests share (data directory, s3rver, journals, faults) is
// `env`, reachable as ctx.env.

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const sigv4 = require('./lib/sigv4');
const { Faults, validate } = require('./lib/faults');
const Uploads = require('./lib/uploads');
const cks = require('./lib/checksums');
const { errorXml } = require('./lib/s3xml');
const { S3Err, sendXml, sendError, readAll, faultLog, log } = require('./lib/reply');
const { readBody, discardBody, digestsWanted, verifyDigests } = require('./lib/body');
const { Upstream, relay, forward } = require('./lib/upstream');
const obj = require('./lib/objects');
const mpu = require('./lib/multipart');

const MiB = 1024 * 1024;
const MAX_XML_BODY = 2 * MiB;
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
const env = {
  data: path.join(DIR, 'data'),
  tmp: TMP,
  upstream: new Upstream(args.upstreamPort),
  uploads,
  checksums: new cks.ChecksumStore(path.join(DIR, 'checksums.journal')),
  faults,
};
const accessLog = fs.createWriteStream(path.join(DIR, 'access.log'), { flags: 'a' });
let listenPort = args.port;

function requestId() {
  return crypto.randomBytes(8).toString('hex').toUpperCase();
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

// ---------------------------------------------------------------- faults

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
  const json = (status, value) => {
    const b = Buffer.from(JSON.stringify(value, null, 1) + '\n');
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': b.length });
    res.end(b);
    ctx.status = status;
  };
  const m = req.method;
  if (what === 'health' && m === 'GET') {
    try {
      const u = await env.upstream.request('GET', '/', env.upstream.headers({}));
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
  if (ctx.key !== undefined) obj.checkKey(ctx.key);

  const te = req.headers['transfer-encoding'];
  const clen = req.headers['content-length'];
  const hasBody = (clen !== undefined && Number(clen) > 0) || te !== undefined;
  // S3 wants the length up front: chunked uploads are refused, and a PUT
  // without any length is too.
  if (te !== undefined && (ctx.method === 'PUT' || ctx.method === 'POST')) {
    throw new S3Err('NotImplemented', 'A header you provided implies functionality that is not implemented',
      { Header: 'Transfer-Encoding' }, 501);
  }
  if ((ctx.op === 'PutObject' || ctx.op === 'UploadPart') && clen === undefined) {
    throw new S3Err('MissingContentLength', 'You must provide the Content-Length HTTP header.');
  }
  const size = Number(clen || 0);

  // Checks that need no body come first, so 100-continue can refuse early.
  let upload;
  let partNumber;
  switch (ctx.op) {
    case 'CreateBucket': obj.checkBucketName(ctx.bucket); break;
    case 'PutObject':
      if (size > obj.MAX_PUT_SIZE) {
        throw new S3Err('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size',
          { ProposedSize: size, MaxSizeAllowed: obj.MAX_PUT_SIZE });
      }
      break;
    case 'UploadPart':
    case 'UploadPartCopy':
      partNumber = mpu.partNumberOf(ctx);
      upload = mpu.uploadFor(ctx);
      if (size > mpu.MAX_PART_SIZE) {
        throw new S3Err('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size',
          { ProposedSize: size, MaxSizeAllowed: mpu.MAX_PART_SIZE });
      }
      break;
    case 'CompleteMultipartUpload':
    case 'AbortMultipartUpload':
    case 'ListParts':
      upload = mpu.uploadFor(ctx);
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
      if (fault.errorAs200 && ['CompleteMultipartUpload', 'CopyObject', 'UploadPartCopy'].includes(ctx.op)) {
        // S3 documents these can fail after it answered 200: the error is the body.
        faultLog(ctx, 'error', `error ${code} inside a 200 answer`);
        return sendXml(ctx, 200, errorXml(code, message, {}, ctx.id, ctx.hostId));
      }
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
      case 'ListObjectsV2': return await obj.handleList(ctx);
      case 'ListMultipartUploads': return await mpu.handleListUploads(ctx);
      case 'GetObject':
      case 'HeadObject': return await obj.handleGetObject(ctx);
      case 'PutObject': return await obj.handlePutObject(ctx, body);
      case 'CopyObject': return await obj.handleCopyObject(ctx);
      case 'DeleteObjects': return await obj.handleDeleteObjects(ctx, body);
      case 'CreateMultipartUpload': return await mpu.handleCreateMultipart(ctx);
      case 'UploadPart': return await mpu.handleUploadPart(ctx, upload, partNumber, body);
      case 'UploadPartCopy': return await mpu.handleUploadPartCopy(ctx, upload, partNumber);
      case 'CompleteMultipartUpload': return await mpu.handleComplete(ctx, upload, body);
      case 'AbortMultipartUpload': return await mpu.handleAbort(ctx, upload);
      case 'ListParts': return mpu.handleListParts(ctx, upload);
      case 'DeleteObject': return await obj.handleDeleteObject(ctx, body);
      default: {
        const ures = await forward(ctx, body);
        return await relay(ctx, ures, {});
      }
    }
  } finally {
    discardBody(body);
  }
}

async function handle(req, res, expectContinue) {
  const ctx = {
    env, req, res, method: req.method, id: requestId(), hostId: crypto.randomBytes(24).toString('base64'),
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
