#!/usr/bin/env node
'use strict';
// Runs s3rver 3.7.1 on a loopback port, with the store fixes below, for the
// proxy (proxy.js) to stand in front of. Writes its pid and port to files so
// that tests/s3/server can find and stop it.
//
//   node s3rver-main.js --data DIR --port-file F --pid-file F [--port N] [--bucket NAME]...
//
// Store fixes (s3rver's FilesystemStore; see README.md for why):
//  - objects are written to a temporary file and renamed into place, so a
//    reader never sees half an object and a failed write leaves the old one;
//  - a completed multipart upload gets S3's ETag, md5(part md5s)-N;
//  - a Range ending at byte 0 ("bytes=0-0") is honoured (s3rver read
//    "end 0" as "no end"), and a range on an empty object is refused;
//  - CopyObject with x-amz-metadata-directive REPLACE copies the source's
//    ETag (s3rver kept the destination's old one);
//  - deleting a key tolerates a racing delete or put in the same directory.

const crypto = require('crypto');
const fs = require('fs-extra');
const path = require('path');
const { Transform } = require('stream');
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');
const S3Object = require('s3rver/lib/models/object');
const S3Error = require('s3rver/lib/models/error');
const { concatStreams } = require('s3rver/lib/utils');

function parseArgs(argv) {
  const a = { port: 0, buckets: [] };
  for (let i = 2; i < argv.length; i++) {
    const v = argv[++i];
    switch (argv[i - 1]) {
      case '--data': a.data = v; break;
      case '--port': a.port = Number(v); break;
      case '--port-file': a.portFile = v; break;
      case '--pid-file': a.pidFile = v; break;
      case '--bucket': a.buckets.push(v); break;
      default: throw new Error('unknown argument ' + argv[i - 1]);
    }
  }
  if (!a.data) throw new Error('--data DIR is required');
  return a;
}

function writeAtomic(file, text) {
  fs.writeFileSync(file + '.tmp', text);
  fs.renameSync(file + '.tmp', file);
}

// Streams content into the object's file through a temporary name; the ETag
// (etagOf(md5 hex)) and metadata are written before the rename. An etagOf
// that does not take the MD5 (a declared length of 0) spares hashing it.
async function storeObject(store, bucket, key, content, metadata, etagOf) {
  const wantMd5 = etagOf.length > 0;
  const objectPath = store.getResourcePath(bucket, key, 'object');
  const tmp = `${objectPath}.${crypto.randomBytes(6).toString('hex')}.tmp`;
  for (let attempt = 0; ; attempt++) {
    await fs.mkdirp(path.dirname(objectPath));
    try {
      const [size, md5] = await new Promise((resolve, reject) => {
        const out = fs.createWriteStream(tmp);
        const h = wantMd5 ? crypto.createHash('md5') : null;
        let n = 0;
        const src = Buffer.isBuffer(content) ? null : content;
        out.on('error', reject).on('finish', () => resolve([n, h && h.digest('hex')]));
        if (!src) {
          if (h) h.update(content);
          n = content.length;
          out.end(content);
          return;
        }
        src.on('error', (e) => { out.destroy(); reject(e); });
        src.pipe(new Transform({
          transform(chunk, enc, cb) {
            if (h) h.update(chunk);
            n += chunk.length;
            cb(null, chunk);
          },
        })).pipe(out);
      });
      const etag = await etagOf(md5);
      await store.putMetadata(bucket, key, metadata, etag);
      await fs.rename(tmp, objectPath);
      return { size, md5: etag };
    } catch (e) {
      await fs.unlink(tmp).catch(() => {});
      // A racing delete may have removed the (then empty) directory.
      if (e.code === 'ENOENT' && attempt < 3 && Buffer.isBuffer(content)) continue;
      throw e;
    }
  }
}

function applyFixes() {
  const proto = FilesystemStore.prototype;

  proto.putObject = function putObject(object) {
    return storeObject(this, object.bucket, object.key, object.content, object.metadata, async (md5) => md5);
  };

  // CompleteMultipartUpload racing an abort of the same upload (a daemon
  // restarted while its Complete was on the way): the parts are opened
  // before anything is streamed, so a removal from then on cannot take them
  // away, and a removal before answers NoSuchUpload, as S3 does. s3rver's
  // own version crashed the process on a part stream's unhandled ENOENT.
  proto.putObjectMultipart = async function putObjectMultipart(bucket, uploadId, parts) {
    const uploadDir = path.join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId);
    const gone = () => new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    const sorted = [...parts].sort((a, b) => a.number - b.number);
    const fds = [];
    let key, metadata, md5s;
    try {
      [key, metadata] = await Promise.all([
        fs.readFile(path.join(uploadDir, 'key'), 'utf8'),
        fs.readFile(path.join(uploadDir, 'metadata')).then(JSON.parse),
      ]);
      md5s = await Promise.all(sorted.map((p) => fs.readFile(path.join(uploadDir, `${p.number}.md5`), 'utf8')));
      for (const p of sorted) fds.push(await fs.open(path.join(uploadDir, String(p.number)), 'r'));
    } catch (e) {
      await Promise.all(fds.map((fd) => fs.close(fd).catch(() => {})));
      throw e.code === 'ENOENT' ? gone() : e;
    }
    const streams = sorted.map((p, i) => fs.createReadStream(path.join(uploadDir, String(p.number)), { fd: fds[i] }));
    const object = new S3Object(bucket, key, null, metadata);
    const result = await storeObject(this, bucket, key, concatStreams(streams), object.metadata, async () => {
      const h = crypto.createHash('md5');
      for (const hex of md5s) h.update(Buffer.from(hex.trim(), 'hex'));
      return `${h.digest('hex')}-${sorted.length}`;
    });
    await fs.remove(uploadDir);
    return result;
  };

  // A part whose upload was aborted while its body was on the way (the
  // proxy's latency fault holds parts back): s3rver's own putPart re-created
  // the upload's directory, or crashed the process on the write stream's
  // unhandled ENOENT. S3 answers NoSuchUpload.
  proto.putPart = async function putPart(bucket, uploadId, partNumber, content) {
    const uploadDir = path.join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId);
    const partPath = path.join(uploadDir, String(partNumber));
    const gone = () => new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    if (!(await fs.pathExists(uploadDir))) {
      content.resume();
      throw gone();
    }
    const [size, md5] = await new Promise((resolve, reject) => {
      const out = fs.createWriteStream(partPath);
      const hash = crypto.createHash('md5');
      let n = 0;
      const fail = (e) => {
        content.unpipe();
        content.resume();
        reject(e && e.code === 'ENOENT' ? gone() : e);
      };
      out.on('error', fail);
      content.on('error', fail);
      out.on('finish', () => resolve([n, hash.digest('hex')]));
      content
        .pipe(new Transform({
          transform(chunk, enc, cb) {
            hash.update(chunk);
            n += chunk.length;
            cb(null, chunk);
          },
        }))
        .pipe(out);
    });
    try {
      await fs.writeFile(`${partPath}.md5`, md5);
    } catch (e) {
      throw e.code === 'ENOENT' ? gone() : e;
    }
    return { size, md5 };
  };

  const getObject = proto.getObject;
  proto.getObject = async function (bucket, key, options) {
    if (!options || (options.start === undefined && options.end === undefined)) {
      return getObject.call(this, bucket, key, options);
    }
    let metadata;
    try {
      metadata = await this.getMetadata(bucket, key);
    } catch (e) {
      if (e.code === 'ENOENT') return null;
      throw e;
    }
    const size = Number(metadata['content-length']);
    const start = options.start || 0;
    const end = Math.min(options.end === undefined ? Infinity : options.end, size - 1);
    const object = new S3Object(bucket, key, null, metadata);
    object.range = { start, end };
    if (size === 0 || start < 0 || start > end) return object; // not satisfiable
    try {
      object.content = await new Promise((resolve, reject) => {
        const s = fs.createReadStream(this.getResourcePath(bucket, key, 'object'), { start, end })
          .on('error', reject).on('open', () => resolve(s));
      });
    } catch (e) {
      if (e.code === 'ENOENT') return null;
      throw e;
    }
    return object;
  };

  proto.copyObject = async function (srcBucket, srcKey, destBucket, destKey, replacementMetadata) {
    const src = this.getResourcePath(srcBucket, srcKey, 'object');
    const dest = this.getResourcePath(destBucket, destKey, 'object');
    const srcMeta = await this.getMetadata(srcBucket, srcKey);
    const etag = JSON.parse(srcMeta.etag);
    const metadata = replacementMetadata ||
      JSON.parse(await fs.readFile(this.getResourcePath(srcBucket, srcKey, 'metadata.json'), 'utf8').catch(() => '{}'));
    if (src === dest) {
      await this.putMetadata(destBucket, destKey, metadata, etag);
    } else {
      await storeObject(this, destBucket, destKey, fs.createReadStream(src), metadata, async () => etag);
    }
    return this.getMetadata(destBucket, destKey);
  };

  proto.deleteObject = async function (bucket, key) {
    await Promise.all(['object', 'object.md5', 'metadata.json'].map((r) =>
      fs.unlink(this.getResourcePath(bucket, key, r)).catch((e) => {
        if (e.code !== 'ENOENT') throw e;
      })));
    const bucketPath = this.getBucketPath(bucket);
    const parts = key.split('/');
    parts.pop();
    while (parts.length) {
      try {
        await fs.rmdir(path.join(bucketPath, ...parts));
      } catch (e) {
        if (['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(e.code)) break;
        throw e;
      }
      parts.pop();
    }
  };
}

async function main() {
  const args = parseArgs(process.argv);
  applyFixes();
  fs.mkdirpSync(args.data);
  const server = new S3rver({
    address: '127.0.0.1',
    port: args.port,
    directory: args.data,
    silent: !process.env.LZFS_S3RVER_VERBOSE,
    configureBuckets: args.buckets.map((name) => ({ name })),
  });
  const addr = await server.run();
  // Benchmarks push large bodies; node's default whole-request timeout
  // (300 s) would cut slow ones.
  server.httpServer.requestTimeout = 0;
  // The proxy drops idle connections first (after 30 s); see proxy.js.
  server.httpServer.keepAliveTimeout = 600000;
  if (args.pidFile) writeAtomic(args.pidFile, `${process.pid}\n`);
  if (args.portFile) writeAtomic(args.portFile, `${addr.port}\n`);
  console.log(`s3rver ${require('s3rver/package.json').version} on 127.0.0.1:${addr.port}, data in ${args.data}`);
  const stop = (sig) => {
    console.log(`s3rver: ${sig}, stopping`);
    server.httpServer.closeAllConnections?.();
    server.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e) => {
  console.error('s3rver-main:', e.stack || e);
  process.exit(1);
});
