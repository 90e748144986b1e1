'use strict';
// In-progress multipart uploads, as the proxy saw them: upload id -> bucket,
// key, initiation time and the parts uploaded so far. Kept in memory and in
// an append-only journal (one JSON line per change, synced with the change)
// so that a restarted proxy still knows them; the journal is rewritten as a
// snapshot at start and whenever it has grown much larger than the state.

const fs = require('fs');

class Uploads {
  constructor(file) {
    this.file = file;
    this.map = new Map();
    this.lines = 0;
    this._load();
    this._compact();
  }

  _apply(r) {
    if (r.t === 'create') {
      this.map.set(r.id, { id: r.id, bucket: r.bucket, key: r.key, initiated: r.initiated, algo: r.algo, parts: new Map() });
    } else if (r.t === 'part') {
      const u = this.map.get(r.id);
      if (u) u.parts.set(r.n, { size: r.size, etag: r.etag, mtime: r.mtime, checksum: r.checksum });
    } else if (r.t === 'end') {
      this.map.delete(r.id);
    }
  }

  _load() {
    let data;
    try {
      data = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if (e.code === 'ENOENT') return;
      throw e;
    }
    for (const line of data.split('\n')) {
      if (!line) continue;
      try {
        this._apply(JSON.parse(line));
      } catch (e) {
        // A line cut short by a crash is the last one; what came before holds.
        break;
      }
    }
  }

  _records() {
    const out = [];
    for (const u of this.map.values()) {
      out.push({ t: 'create', id: u.id, bucket: u.bucket, key: u.key, initiated: u.initiated, algo: u.algo });
      for (const [n, p] of u.parts) out.push({ t: 'part', id: u.id, n, ...p });
    }
    return out;
  }

  _compact() {
    const recs = this._records();
    const tmp = this.file + '.tmp';
    fs.writeFileSync(tmp, recs.map((r) => JSON.stringify(r) + '\n').join(''));
    fs.renameSync(tmp, this.file);
    this.lines = recs.length;
  }

  _log(r) {
    this._apply(r);
    fs.appendFileSync(this.file, JSON.stringify(r) + '\n');
    if (++this.lines > 1000 && this.lines > 4 * this._size()) this._compact();
  }

  _size() {
    let n = 0;
    for (const u of this.map.values()) n += 1 + u.parts.size;
    return n;
  }

  // algo: the upload's checksum algorithm (x-amz-checksum-algorithm) or undefined.
  create(bucket, key, id, algo) {
    this._log({ t: 'create', id, bucket, key, initiated: new Date().toISOString(), algo });
  }

  get(id) {
    return this.map.get(id);
  }

  addPart(id, n, info) {
    this._log({ t: 'part', id, n, size: info.size, etag: info.etag, mtime: info.mtime, checksum: info.checksum });
  }

  remove(id) {
    if (this.map.has(id)) this._log({ t: 'end', id });
  }

  // Uploads of a bucket (all buckets if bucket is undefined), ordered as S3
  // lists them: by key (UTF-8 byte order), then by initiation time.
  list(bucket) {
    return [...this.map.values()]
      .filter((u) => bucket === undefined || u.bucket === bucket)
      .sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)) ||
        (a.initiated < b.initiated ? -1 : a.initiated > b.initiated ? 1 : 0));
  }

  toJSON() {
    return this.list().map((u) => ({
      bucket: u.bucket, key: u.key, upload_id: u.id, initiated: u.initiated, checksum_algorithm: u.algo,
      parts: [...u.parts.entries()].sort((a, b) => a[0] - b[0]).map(([n, p]) => ({ number: n, size: p.size, etag: p.etag })),
    }));
  }
}

module.exports = Uploads;
