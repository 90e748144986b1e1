#!/usr/bin/env python3
"""GET or HEAD one object whose key is given as raw bytes (hex), signed
with SigV4 here (python's hmac/hashlib): an S3 client independent of lzfs
and awscli, for keys that are not valid UTF-8 or carry control bytes.

  s3get.py ENDPOINT BUCKET KEYHEX OUTFILE     exit 0 and the body in OUTFILE,
                                              1 on 404, 2 on other errors
Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""
import datetime
import hashlib
import hmac
import http.client
import os
import sys
import urllib.parse

UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def enc(b, keep_slash):
    out = []
    for c in b:
        if c in UNRESERVED or (keep_slash and c == ord("/")):
            out.append(chr(c))
        else:
            out.append("%%%02X" % c)
    return "".join(out)


def sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def main():
    endpoint, bucket, keyhex, outfile = sys.argv[1:5]
    key = bytes.fromhex(keyhex)
    u = urllib.parse.urlparse(endpoint)
    path = "/" + enc(bucket.encode(), False) + "/" + enc(key, True)
    now = datetime.datetime.utcnow()
    amz = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    region = "us-east-1"
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": u.netloc, "x-amz-content-sha256": empty, "x-amz-date": amz}
    signed = ";".join(sorted(headers))
    canon = "\n".join(["GET", path, "", "".join("%s:%s\n" % (h, headers[h]) for h in sorted(headers)),
                       signed, empty])
    scope = "%s/%s/s3/aws4_request" % (day, region)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canon.encode()).hexdigest()])
    k = sign(("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode(), day)
    for part in (region, "s3", "aws4_request"):
        k = sign(k, part)
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                                % (os.environ["AWS_ACCESS_KEY_ID"], scope, signed, sig))
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read()
    if r.status == 404:
        return 1
    if r.status != 200:
        sys.stderr.write("HTTP %d: %s\n" % (r.status, body[:300]))
        return 2
    with open(outfile, "wb") as f:
        f.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
