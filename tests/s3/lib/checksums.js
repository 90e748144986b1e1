'use strict';
// S3's additional checksums (x-amz-checksum-*), SHA256 and SHA1 only: the
// CRC algorithms would need CRC code that node does not ship, so they are
// refused (501) rather than accepted unverified.
//
// Rules kept, as S3 keeps them: a multipart upload's checksum algorithm is
// fixed by CreateMultipartUpload (x-amz-checksum-algorithm); every part must
// then carry that checksum and no other ("Checksum Type mismatch"), and
// CompleteMultipartUpload must repeat each part's checksum. The object's
// checksum is the part checksum for a single PUT, or the composite
// base64(hash(concatenated binary part checksums))-N for a multipart upload;
// HEAD and GET return it with x-amz-checksum-mode: ENABLED.
//
// Object checksums are kept in an append-only journal (the last line per
// key wins), each with the ETag it belongs to, so that a stale entry for a
// key overwritten by other means is never returned.

const crypto = require('crypto');
const fs = require('fs');

const ALGOS = {
  SHA256: { header: 'x-amz-checksum-sha256', xml: 'ChecksumSHA256', hash: 'sha256', bytes: 32 },
  SHA1: { header: 'x-amz-checksum-sha1', xml: 'ChecksumSHA1', hash: 'sha1', bytes: 20 },
};
const UNSUPPORTED = ['CRC32', 'CRC32C', 'CRC64NVME'];

class ChecksumError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// The algorithm named by x-amz-checksum-algorithm (undefined if absent).
function algorithmOf(value) {
  if (value === undefined) return undefined;
  const a = value.toUpperCase();
  if (ALGOS[a]) return a;
  if (UNSUPPORTED.includes(a)) {
    throw new ChecksumError('NotImplemented', `The lzfs test S3 verifies SHA256 and SHA1 checksums only, not ${a}.`, 501);
  }
  throw new ChecksumError('InvalidRequest', 'Value for x-amz-checksum-algorithm header is invalid.', 400);
}

// The checksum a request carries: { algo, value } or null. At most one.
function requestChecksum(headers) {
  const found = [];
  for (const [algo, a] of Object.entries(ALGOS)) {
    const v = headers[a.header];
    if (v === undefined) continue;
    if (Buffer.from(v, 'base64').length !== a.bytes || !/^[A-Za-z0-9+/]+={0,2}$/.test(v.trim())) {
      throw new ChecksumError('InvalidRequest', `Value for ${a.header} header is invalid.`, 400);
    }
    found.push({ algo, value: v.trim() });
  }
  for (const u of UNSUPPORTED) {
    if (headers[`x-amz-checksum-${u.toLowerCase()}`] !== undefined) algorithmOf(u);
  }
  if (found.length > 1) {
    throw new ChecksumError('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.', 400);
  }
  return found[0] || null;
}

// A part's checksum against the upload's algorithm, as S3 words it.
function checkPartType(uploadAlgo, partAlgo) {
  if ((uploadAlgo || null) !== (partAlgo || null)) {
    const name = (a) => (a ? a.toLowerCase() : 'null');
    throw new ChecksumError('InvalidRequest',
      `Checksum Type mismatch occurred, expected checksum Type: ${name(uploadAlgo)}, actual checksum Type: ${name(partAlgo)}`, 400);
  }
}

// base64 of the hash of the concatenated binary part checksums, then -N.
function composite(algo, partValues) {
  const h = crypto.createHash(ALGOS[algo].hash);
  for (const v of partValues) h.update(Buffer.from(v, 'base64'));
  return `${h.digest('base64')}-${partValues.length}`;
}

class ChecksumStore {
  constructor(file) {
    this.file = file;
    this.map = new Map();
    let data = '';
    try {
      data = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    for (const line of data.split('\n')) {
      if (!line) continue;
      let r;
      try {
        r = JSON.parse(line);
      } catch (e) {
        break; // a line cut short by a crash
      }
      if (r.del) this.map.delete(r.id);
      else this.map.set(r.id, r);
    }
    const tmp = file + '.tmp';
    fs.writeFileSync(tmp, [...this.map.values()].map((r) => JSON.stringify(r) + '\n').join(''));
    fs.renameSync(tmp, file);
  }

  static id(bucket, key) {
    return bucket + '/' + key;
  }

  // { algo, value, type } if the object with this ETag has a checksum.
  get(bucket, key, etag) {
    const r = this.map.get(ChecksumStore.id(bucket, key));
    return r && r.etag === etag.replace(/"/g, '') ? r : undefined;
  }

  set(bucket, key, etag, algo, value, type) {
    const r = { id: ChecksumStore.id(bucket, key), etag: etag.replace(/"/g, ''), algo, value, type };
    this.map.set(r.id, r);
    fs.appendFileSync(this.file, JSON.stringify(r) + '\n');
  }

  delete(bucket, key) {
    const id = ChecksumStore.id(bucket, key);
    if (!this.map.has(id)) return;
    this.map.delete(id);
    fs.appendFileSync(this.file, JSON.stringify({ id, del: 1 }) + '\n');
  }
}

module.exports = { ALGOS, ChecksumError, ChecksumStore, algorithmOf, requestChecksum, checkPartType, composite };
