'use strict';
// Verification of AWS Signature Version 4 as S3 applies it, header form
// (Authorization: AWS4-HMAC-SHA256 ...) and presigned query form
// (X-Amz-Algorithm=...). Failures are returned as S3 errors
// ({ code, message, detail }); see s3xml.js for their status codes.
//
// S3's canonical URI is the request path percent-decoded and re-encoded once
// per segment with the RFC 3986 unreserved set (no double encoding, no dot
// segment removal, "//" kept): a client that sends "a=b" raw in a key but
// signs it raw fails as it does on AWS, where the canonical form is "a%3Db".
// tests/s3/test-sigv4.js checks this module against aws4.

const crypto = require('crypto');

const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PRESIGN_EXPIRES = 7 * 24 * 3600;
const ALGORITHM = 'AWS4-HMAC-SHA256';
const PAYLOAD_MODES = new Set([
  'UNSIGNED-PAYLOAD',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
]);

function uriEncode(s) {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

// Percent-decodes without treating '+' as a space (that is form encoding,
// not URI encoding). Returns null for malformed escapes or invalid UTF-8.
function uriDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return null;
  }
}

function canonicalUri(rawPath) {
  const decoded = uriDecode(rawPath);
  if (decoded === null) return null;
  return decoded.split('/').map(uriEncode).join('/');
}

// Parses a raw query string into [name, value] pairs (decoded), in order.
function parseQuery(rawQuery) {
  const pairs = [];
  if (!rawQuery) return pairs;
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const name = uriDecode(eq < 0 ? piece : piece.slice(0, eq));
    const value = uriDecode(eq < 0 ? '' : piece.slice(eq + 1));
    if (name === null || value === null) return null;
    pairs.push([name, value]);
  }
  return pairs;
}

function canonicalQuery(pairs, skip) {
  return pairs
    .filter(([n]) => n !== skip)
    .map(([n, v]) => [uriEncode(n), uriEncode(v)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([n, v]) => n + '=' + v)
    .join('&');
}

// Header values by lower-case name, repeated headers joined with ',' and
// each value trimmed with inner whitespace runs collapsed, from rawHeaders
// (node's req.headers would join some repeats with ", ").
function headerMap(rawHeaders) {
  const m = new Map();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = String(rawHeaders[i + 1]).trim().replace(/\s+/g, ' ');
    m.set(name, m.has(name) ? m.get(name) + ',' + value : value);
  }
  return m;
}

// "20130524T000000Z" -> ms since the epoch, or NaN.
function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

function hmac(key, data) {
  return crypto.createHmac('sha256', key).update(data, 'utf8').digest();
}

const keyCache = new Map();
function signingKey(secret, date, region, service) {
  const id = [secret, date, region, service].join('\0');
  let k = keyCache.get(id);
  if (!k) {
    k = hmac(hmac(hmac(hmac('AWS4' + secret, date), region), service), 'aws4_request');
    if (keyCache.size > 256) keyCache.clear();
    keyCache.set(id, k);
  }
  return k;
}

function err(code, message, detail) {
  return { code, message, detail: detail || {} };
}

const hexBytes = (s) => Buffer.from(s, 'utf8').toString('hex').replace(/(..)(?!$)/g, '$1 ');

function parseAuthHeader(value) {
  if (/^AWS /.test(value)) {
    return err('InvalidRequest',
      'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }
  const sp = value.indexOf(' ');
  if (sp < 0 || value.slice(0, sp) !== ALGORITHM) {
    return err('InvalidArgument', 'Unsupported Authorization Type', {
      ArgumentName: 'Authorization', ArgumentValue: value.split(' ')[0],
    });
  }
  const fields = {};
  for (const part of value.slice(sp + 1).split(',')) {
    const p = part.trim();
    const eq = p.indexOf('=');
    if (eq > 0) fields[p.slice(0, eq)] = p.slice(eq + 1);
  }
  for (const f of ['Credential', 'SignedHeaders', 'Signature']) {
    if (!fields[f]) {
      return err('AuthorizationHeaderMalformed',
        `The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.`);
    }
  }
  return { credential: fields.Credential, signedHeaders: fields.SignedHeaders, signature: fields.Signature };
}

/*
 * Verifies one request. req: { method, rawPath, rawQuery, rawHeaders, now }.
 * keys: Map accessKey -> { secret, token } (token may be undefined).
 * Returns { accessKey, payloadHash, presigned } or { error: {code,message,detail} }.
 * The payload itself is not checked here: the caller compares payloadHash
 * (a hex SHA-256, or one of PAYLOAD_MODES) with the body it receives.
 */
function verify(req, keys) {
  const headers = headerMap(req.rawHeaders);
  const query = parseQuery(req.rawQuery);
  if (query === null) return { error: err('InvalidURI', "Couldn't parse the specified URI.") };
  const q = new Map(query);
  const presigned = q.has('X-Amz-Algorithm');
  const hasHeader = headers.has('authorization');

  if (presigned && hasHeader) {
    return { error: err('InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
      { ArgumentName: 'Authorization', ArgumentValue: headers.get('authorization').split(' ')[0] }) };
  }
  if (!presigned && !hasHeader) {
    if (q.has('Signature') || q.has('AWSAccessKeyId')) {
      return { error: err('InvalidRequest',
        'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.') };
    }
    return { error: err('AccessDenied', 'Access Denied') };
  }

  let auth, amzDate, payloadHash, expires;
  if (presigned) {
    if (q.get('X-Amz-Algorithm') !== ALGORITHM) {
      return { error: err('AuthorizationQueryParametersError',
        'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"') };
    }
    for (const p of ['X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-SignedHeaders', 'X-Amz-Date', 'X-Amz-Expires']) {
      if (!q.get(p)) {
        return { error: err('AuthorizationQueryParametersError',
          'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.') };
      }
    }
    auth = { credential: q.get('X-Amz-Credential'), signedHeaders: q.get('X-Amz-SignedHeaders'), signature: q.get('X-Amz-Signature') };
    amzDate = q.get('X-Amz-Date');
    expires = Number(q.get('X-Amz-Expires'));
    if (!/^\d+$/.test(q.get('X-Amz-Expires')) || expires > MAX_PRESIGN_EXPIRES) {
      return { error: err('AuthorizationQueryParametersError',
        'X-Amz-Expires must be non-negative and less than a week (604800 seconds)') };
    }
    // A presigned URL knows nothing of the body: its canonical request ends
    // in UNSIGNED-PAYLOAD (as aws4 and botocore sign it). A hash header sent
    // along is still held against the body.
    payloadHash = headers.get('x-amz-content-sha256') || 'UNSIGNED-PAYLOAD';
  } else {
    auth = parseAuthHeader(headers.get('authorization'));
    if (auth.code) return { error: auth };
    amzDate = headers.get('x-amz-date');
    payloadHash = headers.get('x-amz-content-sha256');
    if (!payloadHash) {
      return { error: err('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256') };
    }
  }
  if (!/^[0-9a-f]{64}$/.test(payloadHash) && !PAYLOAD_MODES.has(payloadHash)) {
    return { error: err('InvalidArgument',
      'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.',
      { ArgumentName: 'x-amz-content-sha256', ArgumentValue: payloadHash }) };
  }

  const cred = auth.credential.split('/');
  const malformed = presigned ? 'AuthorizationQueryParametersError' : 'AuthorizationHeaderMalformed';
  if (cred.length !== 5) {
    return { error: err(malformed,
      `The authorization header is malformed; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`) };
  }
  const [accessKey, credDate, region, service, terminator] = cred;
  const account = keys.get(accessKey);
  if (!account) {
    return { error: err('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.',
      { AWSAccessKeyId: accessKey }) };
  }
  if (service !== 's3' || terminator !== 'aws4_request' || !/^\d{8}$/.test(credDate) || !region) {
    return { error: err(malformed,
      `The authorization header is malformed; incorrect service "${service}". This endpoint belongs to "s3".`) };
  }

  // A Date header may stand in for x-amz-date in the header form.
  let t = parseAmzDate(amzDate);
  if (!presigned && amzDate === undefined && headers.has('date')) {
    t = Date.parse(headers.get('date'));
    if (!Number.isNaN(t)) amzDate = new Date(t).toISOString().replace(/[-:]|\.\d{3}/g, '');
  }
  if (Number.isNaN(t)) {
    return { error: err('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header') };
  }
  if (credDate !== amzDate.slice(0, 8)) {
    return { error: err(malformed,
      `The authorization header is malformed; Invalid credential date. Date is not the same as X-Amz-Date.`) };
  }
  const now = req.now;
  const serverTime = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (presigned) {
    if (now > t + expires * 1000) {
      return { error: err('AccessDenied', 'Request has expired', {
        'X-Amz-Expires': String(expires), Expires: new Date(t + expires * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        ServerTime: serverTime }) };
    }
    if (t > now + MAX_SKEW_MS) {
      return { error: err('AccessDenied', 'Request is not valid yet') };
    }
  } else if (Math.abs(now - t) > MAX_SKEW_MS) {
    return { error: err('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
      RequestTime: amzDate, ServerTime: serverTime, MaxAllowedSkewMilliseconds: String(MAX_SKEW_MS) }) };
  }

  const signed = auth.signedHeaders.split(';');
  if (!signed.includes('host')) {
    return { error: err(malformed, 'The authorization header is malformed; SignedHeaders must include host.') };
  }
  // S3 refuses x-amz-* headers that the signature does not cover.
  const unsigned = [...headers.keys()].filter((h) => h.startsWith('x-amz-') && !signed.includes(h));
  if (unsigned.length) {
    return { error: err('AccessDenied', 'There were headers present in the request which were not signed',
      { HeadersNotSigned: unsigned.join(', ') }) };
  }

  // Session tokens: required when the key has one, refused otherwise.
  const token = presigned ? q.get('X-Amz-Security-Token') : headers.get('x-amz-security-token');
  if (account.token !== undefined || token !== undefined) {
    if (token === undefined) {
      return { error: err('InvalidToken', 'The provided token is malformed or otherwise invalid.') };
    }
    if (account.token === undefined || token !== account.token) {
      return { error: err('InvalidToken', 'The provided token is malformed or otherwise invalid.') };
    }
  }

  const cUri = canonicalUri(req.rawPath);
  if (cUri === null) return { error: err('InvalidURI', "Couldn't parse the specified URI.") };
  const canonicalHeaders = signed.map((h) => h + ':' + (headers.has(h) ? headers.get(h) : '') + '\n').join('');
  const canonicalRequest = [
    req.method,
    cUri,
    canonicalQuery(query, presigned ? 'X-Amz-Signature' : null),
    canonicalHeaders,
    auth.signedHeaders,
    presigned ? 'UNSIGNED-PAYLOAD' : payloadHash,
  ].join('\n');
  const scope = [credDate, region, service, terminator].join('/');
  const stringToSign = [
    ALGORITHM,
    amzDate,
    scope,
    crypto.createHash('sha256').update(canonicalRequest, 'utf8').digest('hex'),
  ].join('\n');
  const expected = crypto.createHmac('sha256', signingKey(account.secret, credDate, region, service))
    .update(stringToSign, 'utf8').digest('hex');
  const given = Buffer.from(auth.signature);
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, Buffer.from(expected))) {
    return { error: err('SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
        AWSAccessKeyId: accessKey,
        StringToSign: stringToSign,
        SignatureProvided: auth.signature,
        StringToSignBytes: hexBytes(stringToSign),
        CanonicalRequest: canonicalRequest,
        CanonicalRequestBytes: hexBytes(canonicalRequest),
      }) };
  }
  return { accessKey, payloadHash, presigned, region };
}

module.exports = { verify, uriEncode, uriDecode, parseQuery };
