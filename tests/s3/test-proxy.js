#!/usr/bin/env node
'use strict';
// S3 behaviour of the running test S3, request by request, signed with aws4
// (s3req.js). Prints "ok - ..." / "not ok - ..." lines.
//
//   node test-proxy.js ENDPOINT
//
// Uses keys under "conf/" in bucket lzfs-test and leaves faults off.

const crypto = require('crypto');
const http = require('http');
const { request } = require('./s3req');

const EP = process.argv[2];
if (!EP) {
  console.error('usage: test-proxy.js ENDPOINT');
  process.exit(2);
}
const B = 'lzfs-test';
const MiB = 1024 * 1024;
let fails = 0;

function check(desc, cond, info) {
  if (cond) console.log(`ok - ${desc}`);
  else {
    fails++;
    console.log(`not ok - ${desc}`);
    if (info !== undefined) console.log('# ' + String(info).slice(0, 2000).replace(/\n/g, '\n# '));
  }
}

const s3 = (o) => request(EP, { bucket: B, ...o });
const md5hex = (b) => crypto.createHash('md5').update(b).digest('hex');
const sha256b64 = (b) => crypto.createHash('sha256').update(b).digest('base64');
const code = (r) => (/<Code>([^<]*)<\/Code>/.exec(r.body.toString()) || [])[1];
const all = (xml, tag) => [...xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1]);
const one = (xml, tag) => all(xml, tag)[0];
const unesc = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

async function admin(method, path, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(EP + path);
    const r = http.request({ host: u.hostname, port: u.port, method, path: u.pathname }, (res) => {
      let d = '';
      res.on('data', (c) => (d += c));
      res.on('end', () => resolve({ status: res.statusCode, json: d ? JSON.parse(d) : null }));
    });
    r.on('error', reject);
    r.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

// A raw request whose connection may be cut: resolves { status, error, bytes }.
function rawGet(path) {
  return new Promise((resolve) => {
    const u = new URL(EP);
    const r = http.get({ host: u.hostname, port: u.port, path, agent: false }, (res) => {
      let n = 0;
      res.on('data', (c) => (n += c.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes: n }));
      res.on('error', (e) => resolve({ status: res.statusCode, error: e.code || e.message, bytes: n }));
      res.on('aborted', () => resolve({ status: res.statusCode, error: 'aborted', bytes: n }));
    });
    r.on('error', (e) => resolve({ error: e.code || e.message }));
  });
}

async function listAll(extra, maxKeys) {
  const entries = [];
  let token;
  for (let page = 0; page < 100; page++) {
    const query = [['list-type', '2'], ['max-keys', String(maxKeys)], ...extra];
    if (token) query.push(['continuation-token', token]);
    const r = await s3({ method: 'GET', query });
    const xml = r.body.toString();
    for (const c of all(xml, 'Contents')) entries.push(unesc(one(c, 'Key')));
    for (const p of all(xml, 'CommonPrefixes')) entries.push(unesc(one(p, 'Prefix')));
    if (one(xml, 'IsTruncated') !== 'true') break;
    token = one(xml, 'NextContinuationToken');
  }
  return entries;
}

async function mpu(key, parts, headers) {
  const c = await s3({ method: 'POST', key, query: [['uploads', '']], headers });
  const id = one(c.body.toString(), 'UploadId');
  const etags = [];
  for (let i = 0; i < parts.length; i++) {
    const r = await s3({ method: 'PUT', key, query: [['partNumber', String(i + 1)], ['uploadId', id]], body: parts[i] });
    etags.push(r.headers.etag);
  }
  return { id, etags };
}

function completeXml(etags, numbers) {
  return '<CompleteMultipartUpload>' + etags.map((e, i) =>
    `<Part><PartNumber>${numbers ? numbers[i] : i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('') +
    '</CompleteMultipartUpload>';
}

async function main() {
  await admin('DELETE', '/__lzfs__/faults');
  const data = crypto.randomBytes(1000);

  // Put, get, head, metadata.
  let r = await s3({ method: 'PUT', key: 'conf/obj', body: data, headers: { 'x-amz-meta-color': 'blue', 'Content-Type': 'text/x-test' } });
  check('PutObject 200 with the MD5 ETag', r.status === 200 && r.headers.etag === `"${md5hex(data)}"`, r.status);
  check('answers carry x-amz-request-id', /^[0-9A-F]{16}$/.test(r.headers['x-amz-request-id'] || ''));
  r = await s3({ method: 'GET', key: 'conf/obj' });
  check('GetObject returns the bytes', r.status === 200 && r.body.equals(data));
  r = await s3({ method: 'HEAD', key: 'conf/obj' });
  check('HeadObject: size, user metadata, content type', r.status === 200 && r.headers['content-length'] === '1000' &&
    r.headers['x-amz-meta-color'] === 'blue' && r.headers['content-type'] === 'text/x-test', JSON.stringify(r.headers));
  r = await s3({ method: 'HEAD', key: 'conf/missing' });
  check('HeadObject of a missing key: 404', r.status === 404);
  r = await s3({ method: 'GET', key: 'conf/missing' });
  check('GetObject of a missing key: 404 NoSuchKey', r.status === 404 && code(r) === 'NoSuchKey');
  r = await s3({ method: 'GET', bucket: 'no-such-bucket', key: 'x' });
  check('missing bucket: 404 NoSuchBucket', r.status === 404 && code(r) === 'NoSuchBucket', r.body);

  // Ranges.
  const range = async (spec) => s3({ method: 'GET', key: 'conf/obj', headers: { Range: spec } });
  r = await range('bytes=0-0');
  check('Range bytes=0-0: one byte', r.status === 206 && r.body.length === 1 && r.body[0] === data[0] &&
    r.headers['content-range'] === 'bytes 0-0/1000', `${r.status} ${r.body.length} ${r.headers['content-range']}`);
  r = await range('bytes=10-19');
  check('Range bytes=10-19', r.status === 206 && r.body.equals(data.subarray(10, 20)));
  r = await range('bytes=990-');
  check('Range bytes=990-', r.status === 206 && r.body.equals(data.subarray(990)));
  r = await range('bytes=-5');
  check('Range bytes=-5 (suffix)', r.status === 206 && r.body.equals(data.subarray(995)) &&
    r.headers['content-range'] === 'bytes 995-999/1000', `${r.status} ${r.headers['content-range']}`);
  r = await range('bytes=995-2000');
  check('Range past the end is cut to the end', r.status === 206 && r.body.equals(data.subarray(995)));
  r = await range('bytes=1000-');
  check('Range beyond the object: 416 InvalidRange', r.status === 416 && code(r) === 'InvalidRange');
  r = await range('bytes=9-3');
  check('unparseable Range is ignored: 200, whole object', r.status === 200 && r.body.equals(data));

  // Conditions.
  r = await s3({ method: 'GET', key: 'conf/obj', headers: { 'If-Match': '"0123"' } });
  check('GET If-Match mismatch: 412', r.status === 412 && code(r) === 'PreconditionFailed');
  r = await s3({ method: 'GET', key: 'conf/obj', headers: { 'If-Match': `"${md5hex(data)}"` } });
  check('GET If-Match match: 200', r.status === 200);
  r = await s3({ method: 'GET', key: 'conf/obj', headers: { 'If-None-Match': `"${md5hex(data)}"` } });
  check('GET If-None-Match match: 304', r.status === 304);
  r = await s3({ method: 'PUT', key: 'conf/obj', body: data, headers: { 'If-None-Match': '*' } });
  check('PUT If-None-Match * on an existing key: 412', r.status === 412 && code(r) === 'PreconditionFailed');

  // Digests.
  r = await s3({ method: 'PUT', key: 'conf/md5', body: data, headers: { 'Content-MD5': crypto.createHash('md5').update('x').digest('base64') } });
  check('Content-MD5 mismatch: 400 BadDigest', r.status === 400 && code(r) === 'BadDigest');
  r = await s3({ method: 'PUT', key: 'conf/md5', body: data, headers: { 'Content-MD5': 'nonsense' } });
  check('malformed Content-MD5: 400 InvalidDigest', r.status === 400 && code(r) === 'InvalidDigest');
  r = await s3({ method: 'PUT', key: 'conf/md5', body: data, headers: { 'Content-MD5': crypto.createHash('md5').update(data).digest('base64') } });
  check('Content-MD5 match: 200', r.status === 200);
  r = await s3({ method: 'PUT', key: 'conf/sha', body: data, headers: { 'x-amz-checksum-sha256': sha256b64(Buffer.from('x')) } });
  check('x-amz-checksum-sha256 mismatch: 400 BadDigest', r.status === 400 && code(r) === 'BadDigest');
  r = await s3({ method: 'PUT', key: 'conf/sha', body: data, headers: { 'x-amz-checksum-sha256': sha256b64(data) } });
  check('x-amz-checksum-sha256 match: 200, echoed', r.status === 200 && r.headers['x-amz-checksum-sha256'] === sha256b64(data));
  r = await s3({ method: 'PUT', key: 'conf/sha2', body: data, headers: { 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD' } });
  check('UNSIGNED-PAYLOAD body is taken', r.status === 200);
  r = await s3({ method: 'GET', key: 'conf/md5', query: [] });
  check('rejected bodies never reached storage', (await s3({ method: 'HEAD', key: 'conf/sha2x' })).status === 404 &&
    r.status === 200);

  // Auth edge cases.
  r = await s3({ method: 'GET', key: 'conf/obj', accessKey: 'nobody' });
  check('unknown access key: 403 InvalidAccessKeyId', r.status === 403 && code(r) === 'InvalidAccessKeyId');
  r = await s3({ method: 'GET', key: 'conf/obj', date: Date.now() - 20 * 60 * 1000 });
  check('20 minutes of skew: 403 RequestTimeTooSkewed', r.status === 403 && code(r) === 'RequestTimeTooSkewed');
  r = await s3({ method: 'GET', key: 'conf/obj', date: Date.now() - 10 * 60 * 1000 });
  check('10 minutes of skew is accepted', r.status === 200);
  r = await s3({ method: 'GET', key: 'conf/obj', presign: 60 });
  check('presigned GET', r.status === 200 && r.body.equals(data));
  r = await s3({ method: 'GET', key: 'conf/obj', presign: 60, date: Date.now() - 120 * 1000 });
  check('expired presigned GET: 403 AccessDenied', r.status === 403 && code(r) === 'AccessDenied');
  r = await s3({ method: 'GET', key: 'conf/obj', region: 'eu-central-1' });
  check('any region in the scope is accepted', r.status === 200);
  r = await new Promise((resolve) => http.get(`${EP}/${B}/conf/obj`, (res) => { res.resume(); resolve(res); }));
  check('anonymous GET: 403', r.statusCode === 403);
  r = await s3({ method: 'GET', key: 'conf/obj', vhost: true });
  check('virtual-host style GET', r.status === 200 && r.body.equals(data));
  r = await s3({ method: 'GET', query: [['list-type', '2'], ['prefix', 'conf/o']], vhost: true });
  check('virtual-host style ListObjectsV2', r.status === 200 && all(r.body.toString(), 'Key').includes('conf/obj'));

  // Keys s3rver cannot hold are refused, not mangled.
  r = await s3({ method: 'PUT', key: 'conf/a//b', body: data });
  check('key with an empty segment: 400 InvalidArgument', r.status === 400 && code(r) === 'InvalidArgument');
  r = await s3({ method: 'PUT', key: 'conf/' + 'k'.repeat(1100), body: data });
  check('key over 1024 bytes: 400 KeyTooLongError', r.status === 400 && code(r) === 'KeyTooLongError');
  const odd = 'conf/odd name+plus=eq&amp;日本.txt';
  r = await s3({ method: 'PUT', key: odd, body: data });
  const r2 = await s3({ method: 'GET', key: odd });
  check('key with space, +, =, &, UTF-8 round-trips', r.status === 200 && r2.body.equals(data));
  r = await s3({ method: 'PUT', key: 'conf/meta', body: data, headers: { 'x-amz-meta-big': 'x'.repeat(2100) } });
  check('metadata over 2 KB: 400 MetadataTooLarge', r.status === 400 && code(r) === 'MetadataTooLarge');

  // Listing: S3 order, pagination, delimiter.
  const keys = ['conf/l/a', 'conf/l/a.b', 'conf/l/a/b', 'conf/l/a/c/d', 'conf/l/b', 'conf/l/a-'];
  for (const k of keys) await s3({ method: 'PUT', key: k, body: Buffer.from(k) });
  const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  let got = await listAll([['prefix', 'conf/l/']], 1000);
  check('ListObjectsV2 in UTF-8 byte order', JSON.stringify(got) === JSON.stringify(sorted), got.join(' '));
  got = await listAll([['prefix', 'conf/l/']], 1);
  check('ListObjectsV2 max-keys=1 pages: every key once, in order', JSON.stringify(got) === JSON.stringify(sorted), got.join(' '));
  got = await listAll([['prefix', 'conf/l/'], ['delimiter', '/']], 1000);
  check('delimiter: keys and common prefixes', JSON.stringify(got.sort()) ===
    JSON.stringify(['conf/l/a', 'conf/l/a-', 'conf/l/a.b', 'conf/l/a/', 'conf/l/b']), got.join(' '));
  got = await listAll([['prefix', 'conf/l/'], ['delimiter', '/']], 1);
  check('delimiter with max-keys=1: each entry once', JSON.stringify(got) ===
    JSON.stringify(['conf/l/a', 'conf/l/a-', 'conf/l/a.b', 'conf/l/a/', 'conf/l/b']), got.join(' '));
  r = await s3({ method: 'GET', query: [['list-type', '2'], ['prefix', 'conf/l/'], ['delimiter', '/'], ['max-keys', '2']] });
  const xml = r.body.toString();
  check('KeyCount counts keys and prefixes', one(xml, 'KeyCount') === '2' && one(xml, 'IsTruncated') === 'true', xml);
  r = await s3({ method: 'GET', query: [['list-type', '2'], ['prefix', 'conf/l/'], ['start-after', 'conf/l/a/b']] });
  check('start-after', JSON.stringify(all(r.body.toString(), 'Key')) === JSON.stringify(['conf/l/a/c/d', 'conf/l/b']));
  r = await s3({ method: 'GET', query: [['list-type', '2'], ['prefix', 'conf/odd'], ['encoding-type', 'url']] });
  check('encoding-type=url encodes keys', all(r.body.toString(), 'Key')[0] === 'conf/odd+name%2Bplus%3Deq%26amp%3B%E6%97%A5%E6%9C%AC.txt',
    all(r.body.toString(), 'Key')[0]);
  r = await s3({ method: 'GET', query: [['prefix', 'conf/l/'], ['max-keys', '2']] });
  check('ListObjects (v1) pages with Marker', all(r.body.toString(), 'Key').length === 2 && one(r.body.toString(), 'IsTruncated') === 'true');

  // Copy.
  r = await s3({ method: 'PUT', key: 'conf/copy 1', headers: { 'x-amz-copy-source': `/${B}/${encodeURIComponent(odd)}` } });
  const c1 = await s3({ method: 'GET', key: 'conf/copy 1' });
  check('CopyObject from an odd key', r.status === 200 && one(r.body.toString(), 'ETag') && c1.body.equals(data), r.body);
  r = await s3({ method: 'PUT', key: 'conf/copy2', headers: { 'x-amz-copy-source': `${B}/conf/obj` } });
  let h = await s3({ method: 'HEAD', key: 'conf/copy2' });
  check('CopyObject keeps metadata (COPY)', h.headers['x-amz-meta-color'] === 'blue');
  r = await s3({ method: 'PUT', key: 'conf/copy2', headers: { 'x-amz-copy-source': `${B}/conf/l/b`, 'x-amz-metadata-directive': 'REPLACE', 'x-amz-meta-color': 'red' } });
  h = await s3({ method: 'HEAD', key: 'conf/copy2' });
  check('CopyObject REPLACE: new metadata, ETag of the new source', h.headers['x-amz-meta-color'] === 'red' &&
    h.headers.etag === `"${md5hex(Buffer.from('conf/l/b'))}"`, JSON.stringify(h.headers));
  r = await s3({ method: 'PUT', key: 'conf/copy3', headers: { 'x-amz-copy-source': `${B}/conf/nothing` } });
  check('CopyObject from a missing key: 404 NoSuchKey', r.status === 404 && code(r) === 'NoSuchKey');

  // Multipart.
  const p1 = crypto.randomBytes(5 * MiB);
  const p2 = crypto.randomBytes(1234);
  let u = await mpu('conf/mp', [p1, p2], { 'x-amz-meta-kind': 'multi' });
  r = await s3({ method: 'GET', key: 'conf/mp', query: [['uploadId', u.id]] });
  check('ListParts lists both parts with sizes', JSON.stringify(all(r.body.toString(), 'Size')) === JSON.stringify(['5242880', '1234']), r.body);
  r = await s3({ method: 'GET', query: [['uploads', '']] });
  check('ListMultipartUploads shows the upload', all(r.body.toString(), 'UploadId').includes(u.id));
  r = await s3({ method: 'POST', key: 'conf/mp', query: [['uploadId', u.id]], body: completeXml([u.etags[1], u.etags[0]], [2, 1]) });
  check('parts out of order: 400 InvalidPartOrder', r.status === 400 && code(r) === 'InvalidPartOrder');
  r = await s3({ method: 'POST', key: 'conf/mp', query: [['uploadId', u.id]], body: completeXml([u.etags[0], '"abc"']) });
  check('wrong part ETag: 400 InvalidPart', r.status === 400 && code(r) === 'InvalidPart');
  r = await s3({ method: 'POST', key: 'conf/mp', query: [['uploadId', u.id]], body: '<CompleteMultipartUpload>' });
  check('broken XML: 400 MalformedXML', r.status === 400 && code(r) === 'MalformedXML');
  r = await s3({ method: 'POST', key: 'conf/mp', query: [['uploadId', u.id]], body: completeXml(u.etags) });
  const want = md5hex(Buffer.concat([p1, p2].map((p) => crypto.createHash('md5').update(p).digest()))) + '-2';
  check('CompleteMultipartUpload: ETag md5(part md5s)-2', r.status === 200 && one(r.body.toString(), 'ETag') === `"${want}"`, r.body);
  r = await s3({ method: 'GET', key: 'conf/mp' });
  check('multipart object: bytes, ETag, metadata', r.body.equals(Buffer.concat([p1, p2])) && r.headers.etag === `"${want}"` &&
    r.headers['x-amz-meta-kind'] === 'multi');
  r = await s3({ method: 'GET', query: [['list-type', '2'], ['prefix', 'conf/mp']] });
  check('listing shows the multipart ETag', one(r.body.toString(), 'ETag') === `"${want}"`);
  r = await s3({ method: 'POST', key: 'conf/mp', query: [['uploadId', u.id]], body: completeXml(u.etags) });
  check('completing twice: 404 NoSuchUpload', r.status === 404 && code(r) === 'NoSuchUpload');
  r = await s3({ method: 'PUT', key: 'conf/mp', query: [['partNumber', '3'], ['uploadId', u.id]], body: p2 });
  check('part for a completed upload: 404 NoSuchUpload', r.status === 404 && code(r) === 'NoSuchUpload');
  r = await s3({ method: 'PUT', key: 'conf/mp', query: [['partNumber', '10001'], ['uploadId', u.id]], body: p2 });
  check('part number 10001: 400 InvalidArgument', r.status === 400 && code(r) === 'InvalidArgument');

  u = await mpu('conf/small', [Buffer.alloc(1024), Buffer.alloc(10)]);
  r = await s3({ method: 'POST', key: 'conf/small', query: [['uploadId', u.id]], body: completeXml(u.etags) });
  check('non-last part under 5 MiB: 400 EntityTooSmall', r.status === 400 && code(r) === 'EntityTooSmall' &&
    /<MinSizeAllowed>5242880</.test(r.body.toString()));
  r = await s3({ method: 'POST', key: 'conf/small', query: [['uploadId', u.id]], body: completeXml([u.etags[1]], [2]) });
  check('a single small part completes (the last part may be small)', r.status === 200);
  u = await mpu('conf/abort', [Buffer.alloc(100)]);
  r = await s3({ method: 'DELETE', key: 'conf/abort', query: [['uploadId', u.id]] });
  check('AbortMultipartUpload: 204', r.status === 204);
  r = await s3({ method: 'GET', key: 'conf/abort', query: [['uploadId', u.id]] });
  check('ListParts after abort: 404 NoSuchUpload', r.status === 404 && code(r) === 'NoSuchUpload');
  r = await s3({ method: 'DELETE', key: 'conf/abort', query: [['uploadId', u.id]] });
  check('abort twice: 404 NoSuchUpload', r.status === 404);

  // ListMultipartUploads and ListParts page through everything.
  const open = [];
  for (const k of ['conf/u/b', 'conf/u/a', 'conf/u/a', 'conf/u/c/d']) open.push({ k, id: (await mpu(k, [p2, p2, p2])).id });
  const seen = [];
  let km = '';
  let im = '';
  for (let i = 0; i < 10; i++) {
    const q = [['uploads', ''], ['prefix', 'conf/u/'], ['max-uploads', '1']];
    if (km) q.push(['key-marker', km], ['upload-id-marker', im]);
    const x = (await s3({ method: 'GET', query: q })).body.toString();
    for (const up of all(x, 'Upload')) seen.push(one(up, 'UploadId'));
    if (one(x, 'IsTruncated') !== 'true') break;
    km = one(x, 'NextKeyMarker');
    im = one(x, 'NextUploadIdMarker');
  }
  check('ListMultipartUploads max-uploads=1 pages: each upload once', seen.length === 4 &&
    new Set(seen).size === 4 && open.every((o) => seen.includes(o.id)), seen.join(' '));
  r = await s3({ method: 'GET', query: [['uploads', ''], ['prefix', 'conf/u/'], ['delimiter', '/']] });
  check('ListMultipartUploads with delimiter: CommonPrefixes', JSON.stringify(all(r.body.toString(), 'Prefix').slice(1)) ===
    JSON.stringify(['conf/u/c/']), r.body);
  r = await s3({ method: 'GET', key: 'conf/u/b', query: [['uploadId', open[0].id], ['max-parts', '2']] });
  const pm = one(r.body.toString(), 'NextPartNumberMarker');
  const r2b = await s3({ method: 'GET', key: 'conf/u/b', query: [['uploadId', open[0].id], ['part-number-marker', pm]] });
  check('ListParts pages with part-number-marker', all(r.body.toString(), 'PartNumber').join() === '1,2' &&
    one(r.body.toString(), 'IsTruncated') === 'true' && all(r2b.body.toString(), 'PartNumber').join() === '3');
  for (const o of open) await s3({ method: 'DELETE', key: o.k, query: [['uploadId', o.id]] });

  // UploadPartCopy.
  u = await mpu('conf/upc', []);
  r = await s3({ method: 'PUT', key: 'conf/upc', query: [['partNumber', '1'], ['uploadId', u.id]],
    headers: { 'x-amz-copy-source': `${B}/conf/mp`, 'x-amz-copy-source-range': `bytes=0-${5 * MiB - 1}` } });
  const e1 = one(r.body.toString(), 'ETag');
  check('UploadPartCopy with a range: CopyPartResult', r.status === 200 && e1 === `"${md5hex(p1)}"`, r.body);
  r = await s3({ method: 'PUT', key: 'conf/upc', query: [['partNumber', '2'], ['uploadId', u.id]],
    headers: { 'x-amz-copy-source': `${B}/conf/obj`, 'x-amz-copy-source-range': 'bytes=0-0' } });
  const e2 = one(r.body.toString(), 'ETag');
  r = await s3({ method: 'PUT', key: 'conf/upc', query: [['partNumber', '3'], ['uploadId', u.id]],
    headers: { 'x-amz-copy-source': `${B}/conf/obj`, 'x-amz-copy-source-range': 'bytes=0-1000' } });
  check('copy range past the source: 400 InvalidArgument', r.status === 400 && code(r) === 'InvalidArgument');
  r = await s3({ method: 'POST', key: 'conf/upc', query: [['uploadId', u.id]], body: completeXml([e1, e2]) });
  r = await s3({ method: 'GET', key: 'conf/upc' });
  check('object from copied parts has the right bytes', r.body.equals(Buffer.concat([p1, data.subarray(0, 1)])));

  // Additional checksums (SHA256), as S3 ties them to multipart uploads.
  const ck = (b) => ({ 'x-amz-checksum-sha256': sha256b64(b) });
  u = await mpu('conf/ck0', []);
  r = await s3({ method: 'PUT', key: 'conf/ck0', query: [['partNumber', '1'], ['uploadId', u.id]], body: p2, headers: ck(p2) });
  check('part checksum on an upload created without an algorithm: 400 type mismatch', r.status === 400 &&
    code(r) === 'InvalidRequest' && /expected checksum Type: null, actual checksum Type: sha256/.test(r.body), r.body);
  const alg = { 'x-amz-checksum-algorithm': 'SHA256' };
  r = await s3({ method: 'POST', key: 'conf/ck', query: [['uploads', '']], headers: alg });
  const cid = one(r.body.toString(), 'UploadId');
  check('CreateMultipartUpload with SHA256 echoes the algorithm', r.headers['x-amz-checksum-algorithm'] === 'SHA256');
  r = await s3({ method: 'PUT', key: 'conf/ck', query: [['partNumber', '1'], ['uploadId', cid]], body: p1 });
  check('part without the checksum the upload wants: 400 type mismatch', r.status === 400 &&
    /expected checksum Type: sha256, actual checksum Type: null/.test(r.body), r.body);
  r = await s3({ method: 'PUT', key: 'conf/ck', query: [['partNumber', '1'], ['uploadId', cid]], body: p1, headers: ck(p2) });
  check('part with a wrong checksum: 400 BadDigest', r.status === 400 && code(r) === 'BadDigest');
  const ce1 = (await s3({ method: 'PUT', key: 'conf/ck', query: [['partNumber', '1'], ['uploadId', cid]], body: p1, headers: ck(p1) })).headers.etag;
  r = await s3({ method: 'PUT', key: 'conf/ck', query: [['partNumber', '2'], ['uploadId', cid]], body: p2, headers: ck(p2) });
  const ce2 = r.headers.etag;
  check('part checksum echoed', r.headers['x-amz-checksum-sha256'] === sha256b64(p2));
  r = await s3({ method: 'GET', key: 'conf/ck', query: [['uploadId', cid]] });
  check('ListParts shows part checksums', JSON.stringify(all(r.body.toString(), 'ChecksumSHA256')) ===
    JSON.stringify([sha256b64(p1), sha256b64(p2)]) && one(r.body.toString(), 'ChecksumAlgorithm') === 'SHA256');
  r = await s3({ method: 'POST', key: 'conf/ck', query: [['uploadId', cid]], body: completeXml([ce1, ce2]) });
  check('Complete without part checksums: 400 InvalidRequest', r.status === 400 && code(r) === 'InvalidRequest' &&
    /missing for part 1/.test(r.body), r.body);
  const withCk = '<CompleteMultipartUpload>' + [[ce1, p1], [ce2, p2]].map(([e, b], i) =>
    `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag><ChecksumSHA256>${sha256b64(b)}</ChecksumSHA256></Part>`).join('') +
    '</CompleteMultipartUpload>';
  r = await s3({ method: 'POST', key: 'conf/ck', query: [['uploadId', cid]], body: withCk });
  const comp = crypto.createHash('sha256').update(Buffer.concat([p1, p2].map((b) => crypto.createHash('sha256').update(b).digest())))
    .digest('base64') + '-2';
  check('Complete: composite ChecksumSHA256 = sha256(part sha256s)-2', r.status === 200 &&
    one(r.body.toString(), 'ChecksumSHA256') === comp, r.body);
  r = await s3({ method: 'HEAD', key: 'conf/ck', headers: { 'x-amz-checksum-mode': 'ENABLED' } });
  check('HEAD with checksum mode returns the composite checksum', r.headers['x-amz-checksum-sha256'] === comp &&
    r.headers['x-amz-checksum-type'] === 'COMPOSITE', JSON.stringify(r.headers));
  r = await s3({ method: 'HEAD', key: 'conf/ck' });
  check('HEAD without checksum mode returns none', r.headers['x-amz-checksum-sha256'] === undefined);
  await s3({ method: 'PUT', key: 'conf/ck1', body: data, headers: ck(data) });
  r = await s3({ method: 'GET', key: 'conf/ck1', headers: { 'x-amz-checksum-mode': 'ENABLED' } });
  check('GET with checksum mode returns a PUT\'s checksum', r.headers['x-amz-checksum-sha256'] === sha256b64(data));
  await s3({ method: 'PUT', key: 'conf/ck1', body: data });
  r = await s3({ method: 'HEAD', key: 'conf/ck1', headers: { 'x-amz-checksum-mode': 'ENABLED' } });
  check('an overwrite without checksum drops it', r.headers['x-amz-checksum-sha256'] === undefined);
  r = await s3({ method: 'PUT', key: 'conf/crc', body: data, headers: { 'x-amz-checksum-crc32': 'AAAAAA==' } });
  check('CRC32 checksums: 501 (not verifiable here)', r.status === 501);

  // Delete.
  r = await s3({ method: 'DELETE', key: 'conf/obj' });
  check('DeleteObject: 204', r.status === 204);
  r = await s3({ method: 'DELETE', key: 'conf/obj' });
  check('DeleteObject of a missing key: 204', r.status === 204);
  const delBody = '<Delete><Object><Key>conf/l/a</Key></Object><Object><Key>conf/l/b</Key></Object></Delete>';
  r = await s3({ method: 'POST', query: [['delete', '']], body: delBody });
  check('DeleteObjects without Content-MD5: 400', r.status === 400 && code(r) === 'InvalidRequest');
  r = await s3({ method: 'POST', query: [['delete', '']], body: delBody,
    headers: { 'Content-MD5': crypto.createHash('md5').update(delBody).digest('base64') } });
  check('DeleteObjects', r.status === 200 && (await s3({ method: 'HEAD', key: 'conf/l/a' })).status === 404 &&
    all(r.body.toString(), 'Key').join() === 'conf/l/a,conf/l/b', r.body);
  await s3({ method: 'PUT', key: '12345', body: data });
  await s3({ method: 'PUT', key: 'conf/ sp ', body: data });
  const del2 = '<Delete><Quiet>true</Quiet><Object><Key>12345</Key></Object><Object><Key>conf/ sp </Key></Object>' +
    '<Object><Key>conf/a//b</Key></Object></Delete>';
  r = await s3({ method: 'POST', query: [['delete', '']], body: del2,
    headers: { 'Content-MD5': crypto.createHash('md5').update(del2).digest('base64') } });
  check('DeleteObjects: all-digit key and spaces kept; Quiet lists errors only',
    r.status === 200 && (await s3({ method: 'HEAD', key: '12345' })).status === 404 &&
    (await s3({ method: 'HEAD', key: 'conf/ sp ' })).status === 404 && all(r.body.toString(), 'Deleted').length === 0 &&
    all(r.body.toString(), 'Error').length === 1, r.body);

  // Faults, seen from the client.
  await admin('POST', '/__lzfs__/faults', { error_rate: 1, error_status: 503, ops: ['HeadObject'], count: 2 });
  const st = [];
  for (let i = 0; i < 3; i++) st.push((await s3({ method: 'HEAD', key: 'conf/mp' })).status);
  r = await s3({ method: 'GET', key: 'conf/l/a.b' });
  check('count=2 HeadObject faults: 503, 503, then 200; other ops untouched', st.join() === '503,503,200' && r.status === 200, st.join());
  await admin('POST', '/__lzfs__/faults', { reset_rate: 1, reset_when: 'response', ops: ['GetObject'], count: 1 });
  const signedPath = await presignedPath('conf/mp');
  const cut = await rawGet(signedPath);
  check('reset mid-response-body: the client sees a cut body', cut.error !== undefined && cut.bytes < 5 * MiB + 1234,
    JSON.stringify(cut));
  await admin('POST', '/__lzfs__/faults', { reset_rate: 1, reset_when: 'request', ops: ['PutObject'], count: 1 });
  const pr = await s3({ method: 'PUT', key: 'conf/reset', body: crypto.randomBytes(2 * MiB) }).then(() => 'answered', (e) => e.code || 'error');
  h = await s3({ method: 'HEAD', key: 'conf/reset' });
  check('reset mid-request-body: connection error, nothing stored', pr !== 'answered' && h.status === 404, `${pr} ${h.status}`);
  await admin('POST', '/__lzfs__/faults', { reset_rate: 1, reset_when: 'response', ops: ['PutObject'], count: 1 });
  const pr2 = await s3({ method: 'PUT', key: 'conf/reset2', body: data }).then(() => 'answered', (e) => e.code || 'error');
  h = await s3({ method: 'HEAD', key: 'conf/reset2' });
  check('reset of the answer: connection error, but the object is stored', pr2 !== 'answered' && h.status === 200, `${pr2} ${h.status}`);
  await admin('POST', '/__lzfs__/faults', { slow_bps: 200000, ops: ['GetObject'] });
  let t0 = Date.now();
  r = await s3({ method: 'GET', key: 'conf/mp', headers: { Range: 'bytes=0-399999' } });
  let dt = Date.now() - t0;
  check('slow_bps 200000: 400 kB take about 2 s', r.body.length === 400000 && dt >= 1700 && dt < 4000, `${dt} ms`);
  await admin('POST', '/__lzfs__/faults', { latency_ms: 300, ops: ['HeadObject'], count: 1 });
  t0 = Date.now();
  await s3({ method: 'HEAD', key: 'conf/mp' });
  dt = Date.now() - t0;
  check('latency_ms 300 delays the answer', dt >= 290, `${dt} ms`);
  // The same seed gives the same sequence.
  const seq = async () => {
    await admin('POST', '/__lzfs__/faults', { error_rate: 0.5, ops: ['HeadObject'], seed: 42 });
    const s = [];
    for (let i = 0; i < 12; i++) s.push((await s3({ method: 'HEAD', key: 'conf/mp' })).status);
    return s.join();
  };
  const s1 = await seq();
  const s2 = await seq();
  check('seeded faults repeat', s1 === s2 && s1.includes('500') && s1.includes('200'), `${s1} / ${s2}`);
  u = await mpu('conf/e200', [p2]);
  await admin('POST', '/__lzfs__/faults', { error_rate: 1, error_as_200: true, ops: ['CompleteMultipartUpload'], count: 1 });
  r = await s3({ method: 'POST', key: 'conf/e200', query: [['uploadId', u.id]], body: completeXml(u.etags) });
  check('error_as_200: Complete answers 200 with an Error body, and does not complete', r.status === 200 &&
    code(r) === 'InternalError' && (await s3({ method: 'HEAD', key: 'conf/e200' })).status === 404, r.body);
  r = await s3({ method: 'POST', key: 'conf/e200', query: [['uploadId', u.id]], body: completeXml(u.etags) });
  check('... and the retry completes', r.status === 200 && one(r.body.toString(), 'ETag'));
  // Corrupted answers: applied, then damaged.
  const corrupt = async (kind, op) => admin('POST', '/__lzfs__/faults', { corrupt_rate: 1, corrupt: kind, ops: [op], count: 1 });
  await corrupt('truncate', 'ListObjectsV2');
  r = await s3({ query: [['list-type', '2'], ['prefix', 'conf/']] });
  const full = await s3({ query: [['list-type', '2'], ['prefix', 'conf/']] });
  check('corrupt truncate: a 200 with half the XML, Content-Length matching',
    r.status === 200 && r.body.length === Math.floor(full.body.length / 2) &&
    Number(r.headers['content-length']) === r.body.length && !r.body.toString().includes('</ListBucketResult>'),
    `${r.status} ${r.body.length} of ${full.body.length}`);
  await corrupt('garbage', 'ListObjectsV2');
  r = await s3({ query: [['list-type', '2'], ['prefix', 'conf/']] });
  check('corrupt garbage: a 200 with an HTML page', r.status === 200 && r.body.toString().startsWith('<html>') &&
    r.headers['content-type'] === 'text/html', r.body.toString().slice(0, 100));
  await corrupt('huge', 'ListObjectsV2');
  r = await s3({ query: [['list-type', '2'], ['prefix', 'conf/']] });
  check('corrupt huge: 20 MiB of blanks, still well-formed XML', r.status === 200 && r.body.length > 20 * MiB &&
    r.body.toString().trim().endsWith('</ListBucketResult>'), r.body.length);
  const cdata = crypto.randomBytes(1000);
  await corrupt('etag', 'PutObject');
  r = await s3({ method: 'PUT', key: 'conf/corrupt-etag', body: cdata });
  h = await s3({ method: 'HEAD', key: 'conf/corrupt-etag' });
  check('corrupt etag: the PUT is applied, its answer carries another ETag',
    r.status === 200 && r.headers.etag !== `"${md5hex(cdata)}"` && h.headers.etag === `"${md5hex(cdata)}"`,
    `${r.headers.etag} ${h.headers.etag}`);
  await corrupt('etag', 'HeadObject');
  h = await s3({ method: 'HEAD', key: 'conf/corrupt-etag' });
  check('corrupt etag on HEAD keeps the Content-Length', h.headers.etag !== `"${md5hex(cdata)}"` &&
    h.headers['content-length'] === '1000', JSON.stringify(h.headers));
  const stats = await admin('GET', '/__lzfs__/stats');
  check('corrupt faults are counted', stats.json.faults.corrupt === 5, JSON.stringify(stats.json.faults));
  const badc = await admin('POST', '/__lzfs__/faults', { corrupt_rate: 1, corrupt: 'mangle' });
  check('unknown corrupt kind: 400', badc.status === 400);

  // A part held back (latency) past its upload's abort: NoSuchUpload, as S3
  // answers; s3rver once re-created the upload for it or crashed.
  u = await mpu('conf/race', []);
  await admin('POST', '/__lzfs__/faults', { latency_ms: 1500, ops: ['UploadPart'] });
  const held = s3({ method: 'PUT', key: 'conf/race', query: [['partNumber', '1'], ['uploadId', u.id]],
    body: crypto.randomBytes(MiB) });
  await new Promise((res) => setTimeout(res, 300));
  r = await s3({ method: 'DELETE', key: 'conf/race', query: [['uploadId', u.id]] });
  const hr = await held;
  await admin('DELETE', '/__lzfs__/faults');
  check('a part held back past its upload\'s abort: 404 NoSuchUpload, the server stays up',
    r.status === 204 && hr.status === 404 && code(hr) === 'NoSuchUpload' &&
    (await s3({ method: 'HEAD', key: 'conf/mp' })).status === 200, `${r.status} ${hr.status} ${code(hr)}`);
  // The same for a CompleteMultipartUpload held back past the abort.
  u = await mpu('conf/race2', [crypto.randomBytes(MiB)]);
  await admin('POST', '/__lzfs__/faults', { latency_ms: 1500, ops: ['CompleteMultipartUpload'] });
  const heldc = s3({ method: 'POST', key: 'conf/race2', query: [['uploadId', u.id]],
    body: completeXml(u.etags) });
  await new Promise((res) => setTimeout(res, 300));
  r = await s3({ method: 'DELETE', key: 'conf/race2', query: [['uploadId', u.id]] });
  const hc = await heldc;
  await admin('DELETE', '/__lzfs__/faults');
  check('a Complete held back past its upload\'s abort: 404 NoSuchUpload, the server stays up',
    r.status === 204 && hc.status === 404 && code(hc) === 'NoSuchUpload' &&
    (await s3({ method: 'HEAD', key: 'conf/mp' })).status === 200, `${r.status} ${hc.status} ${code(hc)}`);
  const bad = await admin('POST', '/__lzfs__/faults', { error_rate: 2 });
  check('invalid fault spec: 400', bad.status === 400);
  const bad2 = await admin('POST', '/__lzfs__/faults', { ops: ['PutObjekt'] });
  check('unknown op in spec: 400', bad2.status === 400);
  await admin('DELETE', '/__lzfs__/faults');

  console.log(`# ${fails} failed`);
  process.exit(fails ? 1 : 0);
}

async function presignedPath(key) {
  // Build a presigned path by signing with aws4 but not sending.
  const aws4 = require('aws4');
  const u = new URL(EP);
  const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  const signed = aws4.sign({
    host: u.host, path: `/${B}/${key.split('/').map(enc).join('/')}?X-Amz-Expires=60`, method: 'GET', service: 's3',
    region: 'us-east-1', signQuery: true,
  }, { accessKeyId: 'lzfstest', secretAccessKey: 'lzfstestsecret' });
  return signed.path;
}

main().catch((e) => {
  console.log(`not ok - test-proxy crashed: ${e.stack || e}`);
  process.exit(1);
});
