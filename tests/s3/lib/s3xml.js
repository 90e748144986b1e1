'use strict';
// S3's XML: escaping, error documents, and the few request bodies the proxy
// reads (CompleteMultipartUpload, DeleteObjects). The bodies are S3's own small, flat
// schemas, so a tag scanner is enough; anything it cannot read is
// MalformedXML, as on S3.

const STATUS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidToken: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  PreconditionFailed: 412,
  RequestTimeout: 400,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400,
};

// Text content only needs &, < and > escaped; S3 leaves quotes as they are.
function esc(s) {
  return String(s).replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]);
}

function unesc(s) {
  return s.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (m, e) => {
    switch (e) {
      case 'amp': return '&';
      case 'lt': return '<';
      case 'gt': return '>';
      case 'quot': return '"';
      case 'apos': return "'";
      default:
        return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

// Builds XML from a JS value: { Tag: value | [values] | {children} }.
// undefined values are left out.
function toXml(obj) {
  let out = '';
  for (const [tag, value] of Object.entries(obj)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== null && typeof v === 'object') out += `<${tag}>${toXml(v)}</${tag}>`;
      else out += `<${tag}>${esc(v)}</${tag}>`;
    }
  }
  return out;
}

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
function document(root, body) {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${NS}">${toXml(body)}</${root}>`;
}

function errorXml(code, message, detail, requestId, hostId) {
  return '<?xml version="1.0" encoding="UTF-8"?>\n' +
    toXml({ Error: { Code: code, Message: message, ...detail, RequestId: requestId, HostId: hostId } });
}

// Text of each <tag>...</tag> directly found in xml (not nested same tags).
function elements(xml, tag) {
  const re = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g');
  const out = [];
  let m;
  while ((m = re.exec(xml)) !== null) out.push(m[1]);
  return out;
}

function text(xml, tag) {
  const e = elements(xml, tag);
  return e.length ? unesc(e[0].trim()) : undefined;
}

// CompleteMultipartUpload body -> [{ number, etag, checksums: { ALGO: base64 } }]
// in request order, or null.
function parseCompleteBody(xml) {
  if (!/<CompleteMultipartUpload[\s>]/.test(xml) || !/<\/CompleteMultipartUpload>\s*$/.test(xml)) return null;
  const parts = [];
  for (const p of elements(xml, 'Part')) {
    const num = text(p, 'PartNumber');
    const etag = text(p, 'ETag');
    if (num === undefined || etag === undefined || !/^\d+$/.test(num)) return null;
    const checksums = {};
    for (const algo of ['SHA256', 'SHA1', 'CRC32', 'CRC32C', 'CRC64NVME']) {
      const v = text(p, 'Checksum' + algo);
      if (v !== undefined) checksums[algo] = v;
    }
    parts.push({ number: Number(num), etag: etag.replace(/"/g, ''), checksums });
  }
  return parts.length ? parts : null;
}

// DeleteObjects body -> { quiet, keys } (keys exactly as sent), or null.
function parseDeleteBody(xml) {
  if (!/<Delete[\s>]/.test(xml) || !/<\/Delete>\s*$/.test(xml)) return null;
  const keys = [];
  for (const o of elements(xml, 'Object')) {
    const k = elements(o, 'Key');
    if (k.length !== 1) return null;
    keys.push(unesc(k[0]));
  }
  if (keys.length === 0 || keys.length > 1000) return null;
  return { quiet: text(xml, 'Quiet') === 'true', keys };
}

module.exports = { STATUS, document, errorXml, text, parseCompleteBody, parseDeleteBody };
