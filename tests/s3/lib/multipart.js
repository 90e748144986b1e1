'use strict';
// Multipart uploads as S3 keeps them, on top of s3rver's part storage:
// uploads and parts are tracked (lib/uploads.js, ctx.env.uploads), parts go
// only to known uploads, CompleteMultipartUpload is checked (order, ETags,
// 5 MiB minimum, checksums) before s3rver assembles the object, and
// AbortMultipartUpload, ListParts, ListMultipartUploads and UploadPartCopy,
// which s3rver lacks, are answered here.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { Transform } = require('stream');

const cks = require('./checksums');
const { document, text, parseCompleteBody } = require('./s3xml');
const { OWNER } = require('./listing');
const { S3Err, noSuchUpload, setS3Headers, sendXml, readAll, faultLog } = require('./reply');
const { bodyText, checksumHeaders } = require('./body');
const { relayError, relay, forward } = require('./upstream');
const { requireBucket, checkMetadataSize, parseCopySource, sourceObject, checkCopyConditions, checkWriteConditions } =
  require('./objects');

const MiB = 1024 * 1024;
const MIN_PART_SIZE = 5 * MiB;
const MAX_PART_SIZE = 5 * 1024 * MiB;
const MAX_PARTS = 10000;

function uploadFor(ctx) {
  const id = ctx.query.get('uploadId');
  const u = id !== undefined && ctx.env.uploads.get(id);
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

function uploadDir(env, u) {
  return path.join(env.data, u.bucket, '._S3rver_uploads', u.id);
}

// After a part landed in s3rver: remember it, unless the upload was aborted
// or completed meanwhile (then s3rver has just re-created its directory).
function recordPart(ctx, u, n, info) {
  if (ctx.env.uploads.get(u.id)) {
    ctx.env.uploads.addPart(u.id, n, info);
  } else {
    fs.rm(uploadDir(ctx.env, u), { recursive: true, force: true }, () => {});
  }
}

async function handleUploadPart(ctx, u, n, body) {
  const ures = await forward(ctx, body, {});
  const etag = (ures.headers.etag || '').replace(/"/g, '');
  recordPart(ctx, u, n, {
    size: body.size, etag, mtime: new Date().toISOString(), checksum: ctx.checksum ? ctx.checksum.value : undefined,
  });
  return relay(ctx, ures, checksumHeaders(ctx.checksum));
}

async function handleUploadPartCopy(ctx, u, n) {
  const src = parseCopySource(ctx.req.headers['x-amz-copy-source']);
  const info = await sourceObject(ctx.env, src);
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
  const up = ctx.env.upstream;
  let source;
  if (size > 0) {
    const sres = await up.request('GET', up.path(src.bucket, src.key), up.headers({}, { range: `bytes=${start}-${end}` }));
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
  const pres = await up.request('PUT', up.path(ctx.bucket, ctx.key, [['partNumber', String(n)], ['uploadId', u.id]]),
    up.headers({}), source, size);
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
  const ures = await forward(ctx, undefined);
  const xml = (await readAll(ures)).toString('utf8');
  const id = text(xml, 'UploadId');
  if (!id || !/^[0-9a-f]+$/.test(id)) throw new S3Err('InternalError', 's3rver gave no upload id', {}, 500);
  ctx.env.uploads.create(ctx.bucket, ctx.key, id, algo);
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
  const up = ctx.env.upstream;
  const ures = await up.request('POST', up.path(ctx.bucket, ctx.key, [['uploadId', u.id]]),
    up.headers({ 'content-type': 'application/xml' }), buf, buf.length);
  if (ures.statusCode >= 400) await relayError(ctx, ures);
  const etag = text((await readAll(ures)).toString('utf8'), 'ETag');
  if (!etag) throw new S3Err('InternalError', 's3rver completed without an ETag', {}, 500);
  ctx.env.uploads.remove(u.id);
  const result = {
    Location: ctx.vhost ? `http://${ctx.req.headers.host}/${ctx.key}` : `http://${ctx.req.headers.host}/${ctx.bucket}/${ctx.key}`,
    Bucket: ctx.bucket,
    Key: ctx.key,
    ETag: etag,
  };
  if (u.algo) {
    const value = cks.composite(u.algo, parts.map((p) => u.parts.get(p.number).checksum));
    ctx.env.checksums.set(ctx.bucket, ctx.key, etag, u.algo, value, 'COMPOSITE');
    result[cks.ALGOS[u.algo].xml] = value;
    result.ChecksumType = 'COMPOSITE';
  } else {
    ctx.env.checksums.delete(ctx.bucket, ctx.key);
  }
  return sendXml(ctx, 200, document('CompleteMultipartUploadResult', result));
}

async function handleAbort(ctx, u) {
  ctx.env.uploads.remove(u.id);
  await fs.promises.rm(uploadDir(ctx.env, u), { recursive: true, force: true });
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
  await requireBucket(ctx.env, ctx.bucket);
  const q = ctx.query;
  const prefix = q.get('prefix') || '';
  const delimiter = q.get('delimiter') || '';
  const keyMarker = q.get('key-marker') || '';
  const idMarker = keyMarker ? q.get('upload-id-marker') || '' : '';
  const maxUploads = intParam(q, 'max-uploads', 1000, 1000);
  const encoding = q.get('encoding-type');
  const enc = (s) => (encoding === 'url' ? encodeURIComponent(s).replace(/%2F/g, '/').replace(/%20/g, '+') : s);
  const km = Buffer.from(keyMarker);

  const list = ctx.env.uploads.list(ctx.bucket).filter((u) => u.key.startsWith(prefix));
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

module.exports = {
  uploadFor, partNumberOf, handleCreateMultipart, handleUploadPart, handleUploadPartCopy, handleComplete, handleAbort,
  handleListParts, handleListUploads, MAX_PART_SIZE,
};
