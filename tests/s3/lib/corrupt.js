'use strict';
// Corrupted answers: the request was applied, then its successful answer is
// damaged in one way a client must notice and report clearly, never take
// for success. Kinds (fault spec "corrupt", default "any" = one at random):
//   truncate  the body cut in half, Content-Length matching the cut: a
//             complete HTTP answer with half an XML document
//   garbage   the body replaced by a proxy's HTML error page (status 200)
//   huge      the body preceded by 20 MiB of blanks (legal XML whitespace)
//   etag      the ETag header and every <ETag> element replaced by the MD5
//             of something else
// Answers without a body get only the etag change (and "truncate",
// "garbage", "huge" are logged as not applicable to them).

const crypto = require('crypto');

const KINDS = ['truncate', 'garbage', 'huge', 'etag'];
const HUGE = 20 * 1024 * 1024;

function pick(kind, rng) {
  return kind === undefined || kind === 'any' ? KINDS[Math.floor(rng() * KINDS.length)] : kind;
}

function wrongEtag() {
  return '"' + crypto.createHash('md5').update(crypto.randomBytes(16)).digest('hex') + '"';
}

// Returns { headers, body, what }: the damaged answer and a log line.
function corruptAnswer(kind, headers, body) {
  const h = { ...headers };
  let b = body;
  let what;
  switch (kind) {
    case 'truncate':
      if (!b.length) return { headers: h, body: b, what: 'corrupt truncate: no body to cut (unchanged)' };
      b = b.subarray(0, Math.floor(b.length / 2));
      what = `corrupt truncate: body cut to ${b.length} of ${body.length} bytes`;
      break;
    case 'garbage':
      b = Buffer.from('<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>\n');
      h['content-type'] = 'text/html';
      what = `corrupt garbage: body replaced by ${b.length} bytes of HTML`;
      break;
    case 'huge': {
      const s = b.toString('utf8');
      const decl = /^\s*<\?xml[^>]*\?>/.exec(s);
      const at = decl ? Buffer.byteLength(decl[0]) : 0;
      b = Buffer.concat([b.subarray(0, at), Buffer.alloc(HUGE, 0x20), b.subarray(at)]);
      what = `corrupt huge: ${HUGE} blank bytes added (${b.length} bytes)`;
      break;
    }
    case 'etag': {
      const tag = wrongEtag();
      const had = h.etag !== undefined || /<ETag>/.test(b.toString('utf8'));
      if (h.etag !== undefined) h.etag = tag;
      if (b.length) b = Buffer.from(b.toString('utf8').replace(/<ETag>[^<]*<\/ETag>/g, `<ETag>${tag.replace(/"/g, '&quot;')}</ETag>`));
      what = had ? `corrupt etag: ETag replaced by ${tag}` : 'corrupt etag: no ETag in the answer (unchanged)';
      break;
    }
    default:
      throw new Error('unknown corrupt kind ' + kind);
  }
  h['content-length'] = String(b.length);
  return { headers: h, body: b, what };
}

module.exports = { KINDS, pick, corruptAnswer };
