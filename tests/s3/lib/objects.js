'use strict';
// Objects and listings: the S3 rules on keys, metadata, conditions and
// copy sources, and the handlers for GetObject/HeadObject (ranges,
// If-Match, checksum mode), PutObject, CopyObject, DeleteObject,
// DeleteObjects and ListObjects(V2). Each handler takes the request's ctx
// (ctx.env holds the data directory, s3rver and the checksum store).

const fs = require('fs');
const path = require('path');

const sigv4 = require('./sigv4');
const { document, parseDeleteBody } = require('./s3xml');
const { listObjects, ListError, objectInfo } = require('./listing');
const { S3Err, sendXml } = require('./reply');
const { bodyText, checksumHeaders } = require('./body');
const { relayError, relay, forward } = require('./upstream');

const MAX_PUT_SIZE = 5 * 1024 * 1024 * 1024;
const MAX_META_BYTES = 2048;
const MAX_KEY_BYTES = 1024;

async function bucketExists(env, bucket) {
  try {
    return (await fs.promises.stat(path.join(env.data, bucket))).isDirectory();
  } catch (e) {
    return false;
  }
}

async function requireBucket(env, bucket) {
  if (!(await bucketExists(env, bucket))) {
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

async function sourceObject(env, src) {
  await requireBucket(env, src.bucket);
  checkKey(src.key);
  const info = await objectInfo(path.join(env.data, src.bucket), src.key);
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
  const info = await objectInfo(path.join(ctx.env.data, ctx.bucket), ctx.key);
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
      const info = await objectInfo(path.join(ctx.env.data, ctx.bucket), ctx.key);
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
  const up = ctx.env.upstream;
  const headers = up.headers(ctx.req.headers, extra);
  if (headers.range === undefined) delete headers.range;
  // If-Match / If-Unmodified-Since are checked here, on the answer's ETag and
  // date; s3rver does If-None-Match and If-Modified-Since itself.
  delete headers['if-match'];
  delete headers['if-unmodified-since'];
  const ures = await up.request(ctx.method, up.path(ctx.bucket, ctx.key, ctx.queryPairs), headers);
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
    const c = ctx.env.checksums.get(ctx.bucket, ctx.key, ures.headers.etag || '');
    if (c) Object.assign(answer, checksumHeaders(c), { 'x-amz-checksum-type': c.type });
  }
  return relay(ctx, ures, answer);
}

async function handlePutObject(ctx, body) {
  checkMetadataSize(ctx.req.headers);
  await checkWriteConditions(ctx);
  const ures = await forward(ctx, body);
  const c = ctx.checksum;
  if (ures.statusCode === 200 && c) ctx.env.checksums.set(ctx.bucket, ctx.key, ures.headers.etag || '', c.algo, c.value, 'FULL_OBJECT');
  else if (ures.statusCode === 200) ctx.env.checksums.delete(ctx.bucket, ctx.key);
  return relay(ctx, ures, checksumHeaders(c));
}

async function handleCopyObject(ctx) {
  const src = parseCopySource(ctx.req.headers['x-amz-copy-source']);
  const info = await sourceObject(ctx.env, src);
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
  const ures = await forward(ctx, undefined, {
    'x-amz-copy-source': encodeURI(`/${src.bucket}/${src.key}`),
  });
  ctx.env.checksums.delete(ctx.bucket, ctx.key);
  return relay(ctx, ures, {});
}

async function handleDeleteObject(ctx, body) {
  const ures = await forward(ctx, body);
  if (ures.statusCode < 300) ctx.env.checksums.delete(ctx.bucket, ctx.key);
  return relay(ctx, ures, {});
}

// DeleteObjects, one DeleteObject to s3rver per key (s3rver's own parses
// an all-digit key as a number and fails); Quiet leaves out what went well.
async function handleDeleteObjects(ctx, body) {
  await requireBucket(ctx.env, ctx.bucket);
  const req = parseDeleteBody(bodyText(body));
  if (!req) {
    throw new S3Err('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
  }
  const results = new Array(req.keys.length);
  let next = 0;
  const worker = async () => {
    while (next < req.keys.length) {
      const i = next++;
      const key = req.keys[i];
      try {
        checkKey(key);
        const up = ctx.env.upstream;
        const ures = await up.request('DELETE', up.path(ctx.bucket, key), up.headers({}));
        if (ures.statusCode >= 300) await relayError(ctx, ures);
        ures.resume();
        ctx.env.checksums.delete(ctx.bucket, key);
        results[i] = { Deleted: { Key: key } };
      } catch (e) {
        results[i] = { Error: { Key: key, Code: e.code || 'InternalError', Message: e.message } };
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const deleted = results.filter((r) => r.Deleted && !req.quiet).map((r) => r.Deleted);
  const errors = results.filter((r) => r.Error).map((r) => r.Error);
  return sendXml(ctx, 200, document('DeleteResult', { Deleted: deleted, Error: errors }));
}

async function handleList(ctx) {
  await requireBucket(ctx.env, ctx.bucket);
  let xml;
  try {
    xml = await listObjects(ctx.env.data, ctx.bucket, ctx.query);
  } catch (e) {
    if (e instanceof ListError) throw new S3Err(e.code, e.message, e.detail);
    throw e;
  }
  return sendXml(ctx, 200, xml);
}

module.exports = {
  requireBucket, checkKey, checkMetadataSize, checkBucketName, parseCopySource, sourceObject, checkCopyConditions,
  checkWriteConditions, handleGetObject, handlePutObject, handleCopyObject, handleDeleteObject, handleDeleteObjects,
  handleList, MAX_PUT_SIZE,
};
