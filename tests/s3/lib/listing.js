'use strict';
// ListObjectsV2 and ListObjects (v1), answered from s3rver's data directory
// (read only). s3rver's own listing walks directories depth first, so "a/b"
// comes before "a.b" and pages can lose or repeat keys; here every key under
// the prefix is collected, sorted in UTF-8 byte order as S3 sorts, and then
// paginated, with common prefixes counted against max-keys as on S3.
//
// s3rver's layout: DATA/<bucket>/<key dirs>/<last segment>._S3rver_object,
// with "<...>._S3rver_object.md5" holding the ETag (without quotes).

const crypto = require('crypto');
const fs = require('fs');
const fsp = fs.promises;
const path = require('path');
const { document } = require('./s3xml');

const OBJECT_SUFFIX = '._S3rver_object';
const OWNER = { ID: '75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a', DisplayName: 'lzfstest' };

class ListError extends Error {
  constructor(code, message, detail) {
    super(message);
    this.code = code;
    this.detail = detail || {};
  }
}

async function collectKeys(bucketDir, prefix) {
  const keys = [];
  async function walk(dir, rel) {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (e.code === 'ENOENT') return; // removed while we walked
      throw e;
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        if (rel === '' && e.name.startsWith('._S3rver_')) continue; // s3rver's uploads
        const sub = rel + e.name + '/';
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) await walk(path.join(dir, e.name), sub);
      } else if (e.name.endsWith(OBJECT_SUFFIX)) {
        const key = rel + e.name.slice(0, -OBJECT_SUFFIX.length);
        if (key.startsWith(prefix)) keys.push(key);
      }
    }
  }
  await walk(bucketDir, '');
  return keys
    .map((k) => [Buffer.from(k, 'utf8'), k])
    .sort((a, b) => Buffer.compare(a[0], b[0]))
    .map((p) => p[1]);
}

async function objectInfo(bucketDir, key) {
  const file = path.join(bucketDir, key + OBJECT_SUFFIX);
  let st;
  try {
    st = await fsp.stat(file);
  } catch (e) {
    if (e.code === 'ENOENT') return null; // deleted while listing
    throw e;
  }
  let etag;
  try {
    etag = (await fsp.readFile(file + '.md5', 'utf8')).trim();
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    etag = await new Promise((resolve, reject) => {
      const h = crypto.createHash('md5');
      fs.createReadStream(file).on('error', reject).on('data', (c) => h.update(c))
        .on('end', () => resolve(h.digest('hex')));
    });
  }
  const mtime = new Date(Math.floor(st.mtimeMs / 1000) * 1000);
  return { size: st.size, etag, mtime };
}

// S3's encoding-type=url: form-style escaping, '/' kept.
const urlEncode = (s) => encodeURIComponent(s).replace(/%2F/g, '/').replace(/%20/g, '+');

function encodeToken(entry, isPrefix) {
  return Buffer.from(JSON.stringify([entry, isPrefix ? 1 : 0]), 'utf8').toString('base64');
}
function decodeToken(token) {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
    if (Array.isArray(v) && typeof v[0] === 'string') return { entry: v[0], isPrefix: !!v[1] };
  } catch (e) { /* fall through */ }
  throw new ListError('InvalidArgument', 'The continuation token provided is incorrect',
    { ArgumentName: 'continuation-token' });
}

/*
 * q: Map of decoded query parameters. Returns the XML body, or throws
 * ListError. dataDir is s3rver's directory; the bucket is known to exist.
 */
async function listObjects(dataDir, bucket, q) {
  const v2 = q.get('list-type') === '2';
  const prefix = q.get('prefix') || '';
  const delimiter = q.get('delimiter') || '';
  const encoding = q.get('encoding-type');
  if (encoding !== undefined && encoding !== 'url') {
    throw new ListError('InvalidArgument', 'Invalid Encoding Method specified in Request',
      { ArgumentName: 'encoding-type', ArgumentValue: encoding });
  }
  let maxKeys = 1000;
  if (q.has('max-keys')) {
    const mk = q.get('max-keys');
    if (!/^\d+$/.test(mk) || Number(mk) > 2147483647) {
      throw new ListError('InvalidArgument', 'Provided max-keys not an integer or within integer range',
        { ArgumentName: 'max-keys', ArgumentValue: mk });
    }
    maxKeys = Math.min(1000, Number(mk));
  }
  let after = null; // { entry, isPrefix }: resume strictly after this entry
  if (v2) {
    if (q.has('continuation-token')) after = decodeToken(q.get('continuation-token'));
    else if (q.get('start-after')) after = { entry: q.get('start-after'), isPrefix: false };
  } else if (q.get('marker')) {
    after = { entry: q.get('marker'), isPrefix: false };
  }

  const enc = (s) => (encoding === 'url' ? urlEncode(s) : s);
  const bucketDir = path.join(dataDir, bucket);
  const keys = await collectKeys(bucketDir, prefix);
  const afterBuf = after && Buffer.from(after.entry, 'utf8');

  const contents = [];
  const prefixes = [];
  let truncated = false;
  let last = null;
  let lastCp = null;
  for (const key of keys) {
    if (afterBuf) {
      if (Buffer.compare(Buffer.from(key, 'utf8'), afterBuf) <= 0) continue;
      if (after.isPrefix && key.startsWith(after.entry)) continue;
    }
    let cp = null;
    if (delimiter) {
      const i = key.indexOf(delimiter, prefix.length);
      if (i >= 0) cp = key.slice(0, i + delimiter.length);
    }
    if (cp !== null && cp === lastCp) continue;
    if (contents.length + prefixes.length >= maxKeys) {
      truncated = true;
      break;
    }
    if (cp !== null) {
      prefixes.push(cp);
      lastCp = cp;
      last = { entry: cp, isPrefix: true };
    } else {
      const info = await objectInfo(bucketDir, key);
      if (!info) continue;
      contents.push({ key, ...info });
      last = { entry: key, isPrefix: false };
    }
  }
  if (maxKeys === 0) truncated = false;

  const body = {
    Name: bucket,
    Prefix: enc(prefix),
  };
  if (!v2) {
    body.Marker = enc(q.get('marker') || '');
    if (truncated && delimiter) body.NextMarker = enc(last.entry);
  }
  body.MaxKeys = maxKeys;
  if (delimiter) body.Delimiter = enc(delimiter);
  if (encoding) body.EncodingType = encoding;
  body.IsTruncated = truncated ? 'true' : 'false';
  if (v2) {
    body.KeyCount = contents.length + prefixes.length;
    if (q.has('continuation-token')) body.ContinuationToken = q.get('continuation-token');
    if (truncated) body.NextContinuationToken = encodeToken(last.entry, last.isPrefix);
    if (q.has('start-after')) body.StartAfter = enc(q.get('start-after'));
  }
  const fetchOwner = !v2 || q.get('fetch-owner') === 'true';
  body.Contents = contents.map((c) => ({
    Key: enc(c.key),
    LastModified: c.mtime.toISOString(),
    ETag: `"${c.etag}"`,
    Size: c.size,
    Owner: fetchOwner ? OWNER : undefined,
    StorageClass: 'STANDARD',
  }));
  body.CommonPrefixes = prefixes.map((p) => ({ Prefix: enc(p) }));
  return document('ListBucketResult', body);
}

module.exports = { listObjects, ListError, objectInfo, OWNER };
