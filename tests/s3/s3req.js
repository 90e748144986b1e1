#!/usr/bin/env node
'use strict';
// A small S3 request tool for tests, signing with aws4 (an implementation
// independent of the proxy's verifier).
//
// As a module: request(endpoint, { method, bucket, key, query, headers,
//   body, accessKey, secret, region, date, presign, expires, vhost })
//   -> Promise<{ status, headers, body: Buffer }>.
// key is raw (it is percent-encoded here); query is [[name, value], ...].
//
// As a command (prints "STATUS" then the body to stdout):
//   s3req.js ENDPOINT METHOD BUCKET [KEY] [--query n=v]... [--header n:v]...
//            [--data-file F] [--secret S] [--date ISO] [--vhost] [--presign SECS]

const aws4 = require('aws4');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

function amzDate(d) {
  return new Date(d).toISOString().replace(/[:-]|\.\d{3}/g, '');
}

function request(endpoint, o) {
  const url = new URL(endpoint);
  const body = o.body === undefined ? Buffer.alloc(0) : Buffer.from(o.body);
  const method = o.method || 'GET';
  const keyPath = o.key === undefined ? '' : '/' + o.key.split('/').map(enc).join('/');
  let path = o.vhost ? (keyPath || '/') : '/' + (o.bucket ? enc(o.bucket) + keyPath : '');
  const query = [...(o.query || [])];
  const date = amzDate(o.date || Date.now());
  if (o.presign) query.push(['X-Amz-Expires', String(o.presign)], ['X-Amz-Date', date]);
  const qs = query.map(([n, v]) => (v === undefined ? enc(n) : enc(n) + '=' + enc(v))).join('&');
  if (qs) path += '?' + qs;
  const headers = { ...(o.headers || {}) };
  const has = (n) => Object.keys(headers).some((h) => h.toLowerCase() === n);
  if (!o.presign) {
    headers['X-Amz-Date'] = date;
    if (!has('x-amz-content-sha256')) headers['X-Amz-Content-Sha256'] = crypto.createHash('sha256').update(body).digest('hex');
  }
  if (!has('content-length') && (body.length || method === 'PUT' || method === 'POST')) headers['Content-Length'] = body.length;
  const signer = new aws4.RequestSigner({
    host: o.vhost ? `${o.bucket}.localhost:${url.port}` : url.host,
    path, method, headers, service: 's3', region: o.region || 'us-east-1',
    signQuery: !!o.presign, doNotModifyHeaders: true,
  }, { accessKeyId: o.accessKey || 'lzfstest', secretAccessKey: o.secret || 'lzfstestsecret' });
  signer.datetime = date; // aws4 would take it from the clock
  const signed = signer.sign();
  return new Promise((resolve, reject) => {
    const r = http.request({ host: url.hostname, port: url.port, method, path: signed.path, headers: signed.headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end(body);
  });
}

module.exports = { request };

if (require.main === module) {
  const argv = process.argv.slice(2);
  const pos = [];
  const o = { query: [], headers: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--query') { const [n, ...v] = argv[++i].split('='); o.query.push([n, v.length ? v.join('=') : undefined]); }
    else if (a === '--header') { const [n, ...v] = argv[++i].split(':'); o.headers[n.trim()] = v.join(':').trim(); }
    else if (a === '--data-file') o.body = fs.readFileSync(argv[++i]);
    else if (a === '--secret') o.secret = argv[++i];
    else if (a === '--date') o.date = argv[++i];
    else if (a === '--presign') o.presign = Number(argv[++i]);
    else if (a === '--vhost') o.vhost = true;
    else pos.push(a);
  }
  const [endpoint, method, bucket, key] = pos;
  if (!endpoint || !method) {
    console.error('usage: s3req.js ENDPOINT METHOD BUCKET [KEY] [options]');
    process.exit(2);
  }
  request(endpoint, { ...o, method, bucket, key }).then((r) => {
    process.stdout.write(`${r.status}\n`);
    process.stdout.write(r.body);
  }, (e) => {
    console.error('s3req:', e.message);
    process.exit(1);
  });
}
