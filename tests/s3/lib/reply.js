'use strict';
// Answers made by the proxy itself, S3 style: the S3Err error type, XML
// answers with S3's request ids, error documents, and the fault log line
// of a request. A request's state travels in `ctx` (see proxy.js handle()),
// the proxy's shared state in ctx.env.

const { STATUS, errorXml } = require('./s3xml');
const { corruptAnswer } = require('./corrupt');

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

function setS3Headers(ctx, res) {
  res.setHeader('x-amz-request-id', ctx.id);
  res.setHeader('x-amz-id-2', ctx.hostId);
  res.setHeader('Server', 'AmazonS3');
}

// An answer made here (not relayed from s3rver); a pending response-reset
// fault cuts it in the middle, a corrupt fault damages a successful one.
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

// A corrupt fault: the whole (applied) answer, damaged (lib/corrupt.js).
function sendCorrupt(ctx, status, headers, body) {
  const c = corruptAnswer(ctx.fault.corrupt, headers, body);
  if (ctx.method === 'HEAD' && headers['content-length'] !== undefined) c.headers['content-length'] = headers['content-length'];
  faultLog(ctx, 'corrupt', c.what);
  ctx.status = status;
  ctx.res.writeHead(status, c.headers);
  ctx.res.end(ctx.method === 'HEAD' ? undefined : c.body);
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

function readAll(stream, limit = 16 * 1024 * 1024) {
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

// One injected fault: a line of faults.log, counters, and a mark for access.log.
function faultLog(ctx, kind, what) {
  ctx.env.faults.record(ctx.op, ctx.bucket, ctx.key, kind, what);
  ctx.faulted = ctx.faulted ? ctx.faulted + ',' + kind : kind;
}

function log(msg) {
  console.log(`${new Date().toISOString()} ${msg}`);
}

module.exports = { S3Err, noSuchUpload, setS3Headers, sendXml, sendCorrupt, sendError, readAll, faultLog, log };
