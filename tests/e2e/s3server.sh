#!/usr/bin/env bash
# The strict test S3 (tests/s3) against independent clients: Debian's awscli,
# curl --aws-sigv4, and node's aws4 (tests/s3/test-*.js). Everything lzfs's
# tests assume of it is checked here.
. "$(dirname "$0")/lib.sh"
S3SRC=$LZFS_ROOT/tests/s3

command -v node >/dev/null || { not_ok "node is installed"; exit 1; }
[ -d "$S3SRC/node_modules/s3rver" ] || { not_ok "tests/s3 npm packages are installed (scripts/deps)"; exit 1; }

# Runs a node test program and re-emits its ok/not ok lines as ours.
node_tap() {
	local line
	while IFS= read -r line; do
		case "$line" in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) not_ok "${line#not ok - }" ;;
		*) echo "$line" ;;
		esac
	done < <(node "$@" 2>&1)
}

# HTTP status of one aws4-signed request (quicker than starting awscli).
s3status() { node "$S3SRC/s3req.js" "$S3_ENDPOINT" "$@" | head -n 1; }

# Signature verification against aws4, without a server.
node_tap "$S3SRC/test-sigv4.js"

s3_start
check_eq "start prints the endpoint it writes to DIR/endpoint" "$(cat "$S3_DIR/endpoint")" "$S3_ENDPOINT"
case "$S3_ENDPOINT" in http://127.0.0.1:[0-9]*) ok "endpoint is a loopback URL" ;; *) not_ok "endpoint is a loopback URL ($S3_ENDPOINT)" ;; esac
PORT=${S3_ENDPOINT##*:}
check "a second start in the same DIR is refused" bash -c "! '$S3SERVER' start '$S3_DIR' 2>/dev/null"
check "an invalid bucket name is refused" bash -c "! '$S3SERVER' start '$T_DIR/other' --bucket 'Bad_Name' 2>/dev/null"
check "server status: running" "$S3SERVER" status "$S3_DIR"
# A start that cannot finish in time fails and leaves nothing running.
out=$(LZFS_S3_START_TIMEOUT=0 "$S3SERVER" start "$T_DIR/late" 2>&1)
check_eq "a start that times out exits non-zero" 1 "$?"
case "$out" in *"did not come up"*) ok "... saying what did not come up" ;; *) not_ok "... saying what did not come up"; diag "$out" ;; esac
pid=$(cat "$T_DIR/late/s3rver.pid" 2>/dev/null || true)
check "... and kills what it started" bash -c "[ -z '$pid' ] || ! kill -0 '$pid' 2>/dev/null"
check "server status: not running" bash -c "! '$S3SERVER' status '$T_DIR/late'"

# --- awscli round trips (path style: awscli uses it for IP endpoints) -------
F=$T_DIR/files
mkdir -p "$F"
head -c 1234567 /dev/urandom >"$F/small"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$F/big"
check "aws s3 cp uploads a small file" awss3 s3 cp --only-show-errors "$F/small" "s3://$TEST_BUCKET/rt/small"
check "aws s3 cp uploads 20 MiB (multipart)" awss3 s3 cp --only-show-errors "$F/big" "s3://$TEST_BUCKET/rt/big"
ls_out=$(awss3 s3 ls "s3://$TEST_BUCKET/rt/")
check_eq "aws s3 ls lists both with sizes" "big 20971520,small 1234567," \
	"$(echo "$ls_out" | awk '{print $4, $3}' | sort | tr '\n' ',')"
check "aws s3 cp downloads the small file byte-identical" bash -c \
	"'$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp --only-show-errors s3://$TEST_BUCKET/rt/small '$F/small.back' && cmp '$F/small' '$F/small.back'"
check "aws s3 cp downloads 20 MiB byte-identical" bash -c \
	"'$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp --only-show-errors s3://$TEST_BUCKET/rt/big '$F/big.back' && cmp '$F/big' '$F/big.back'"
etag=$(awss3 s3api head-object --bucket "$TEST_BUCKET" --key rt/big --query ETag --output text | tr -d '"')
want=$(python3 -c "
import hashlib,sys
d=open('$F/big','rb').read(); n=8*1024*1024
ps=[d[i:i+n] for i in range(0,len(d),n)]
print(hashlib.md5(b''.join(hashlib.md5(p).digest() for p in ps)).hexdigest()+'-%d'%len(ps))")
check_eq "the multipart object's ETag is md5(part md5s)-N" "$want" "$etag"
check "aws s3 rm removes it" awss3 s3 rm --only-show-errors "s3://$TEST_BUCKET/rt/small"
check_eq "and it is gone from the listing" "" "$(awss3 s3 ls "s3://$TEST_BUCKET/rt/small")"

# --- strictness ---------------------------------------------------------------
out=$(AWS_SECRET_ACCESS_KEY=wrongsecret "$AWS" --endpoint-url "$S3_ENDPOINT" s3 ls "s3://$TEST_BUCKET/" 2>&1)
case "$out" in *SignatureDoesNotMatch*) ok "a wrong secret gets 403 SignatureDoesNotMatch" ;; *) not_ok "a wrong secret gets 403 SignatureDoesNotMatch"; diag "$out" ;; esac

head -c $((4 * 1024 * 1024)) /dev/urandom >"$F/p4m"
head -c 1000 /dev/urandom >"$F/p1k"
uid=$(awss3 s3api create-multipart-upload --bucket "$TEST_BUCKET" --key mpu/small --query UploadId --output text)
e1=$(awss3 s3api upload-part --bucket "$TEST_BUCKET" --key mpu/small --upload-id "$uid" --part-number 1 --body "$F/p4m" --query ETag --output text)
e2=$(awss3 s3api upload-part --bucket "$TEST_BUCKET" --key mpu/small --upload-id "$uid" --part-number 2 --body "$F/p1k" --query ETag --output text)
parts="{\"Parts\":[{\"PartNumber\":1,\"ETag\":$e1},{\"PartNumber\":2,\"ETag\":$e2}]}"
out=$(awss3 s3api complete-multipart-upload --bucket "$TEST_BUCKET" --key mpu/small --upload-id "$uid" --multipart-upload "$parts" 2>&1)
case "$out" in *EntityTooSmall*) ok "a 4 MiB non-last part is refused with EntityTooSmall" ;; *) not_ok "a 4 MiB non-last part is refused with EntityTooSmall"; diag "$out" ;; esac
lmu=$(awss3 s3api list-multipart-uploads --bucket "$TEST_BUCKET" --query 'Uploads[].UploadId' --output text)
case "$lmu" in *"$uid"*) ok "list-multipart-uploads shows the open upload" ;; *) not_ok "list-multipart-uploads shows the open upload"; diag "$lmu" ;; esac
np=$(awss3 s3api list-parts --bucket "$TEST_BUCKET" --key mpu/small --upload-id "$uid" --query 'length(Parts)' --output text)
check_eq "list-parts shows its two parts" 2 "$np"

# The tracking survives a proxy restart, and so do object checksums.
sigv4=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
sum=$(openssl dgst -sha256 -binary "$F/p1k" | base64)
code=$(curl -s -o /dev/null -w '%{http_code}' "${sigv4[@]}" -T "$F/p1k" -H "x-amz-checksum-sha256: $sum" \
	-H "x-amz-content-sha256: $(sha256sum <"$F/p1k" | cut -d' ' -f1)" "$S3_ENDPOINT/$TEST_BUCKET/ck/p1k")
check_eq "PUT with x-amz-checksum-sha256 (curl)" 200 "$code"
check "restart-proxy comes back on the same endpoint" bash -c "[ \"\$('$S3SERVER' restart-proxy '$S3_DIR')\" = '$S3_ENDPOINT' ]"
lmu=$(awss3 s3api list-multipart-uploads --bucket "$TEST_BUCKET" --query 'Uploads[].UploadId' --output text)
case "$lmu" in *"$uid"*) ok "the open upload is still listed after a proxy restart" ;; *) not_ok "the open upload is still listed after a proxy restart"; diag "$lmu" ;; esac
hdrs=$(curl -s -I "${sigv4[@]}" -H "x-amz-checksum-mode: ENABLED" \
	-H "x-amz-content-sha256: $(sha256sum </dev/null | cut -d' ' -f1)" "$S3_ENDPOINT/$TEST_BUCKET/ck/p1k" | tr -d '\r')
check "the object's checksum is still returned after the restart" grep -qix "x-amz-checksum-sha256: $sum" <<<"$hdrs"
check "server uploads lists it as JSON" bash -c "'$S3SERVER' uploads '$S3_DIR' | jq -e '.[] | select(.upload_id == \"$uid\") | .parts | length == 2' >/dev/null"
check "abort-multipart-upload" awss3 s3api abort-multipart-upload --bucket "$TEST_BUCKET" --key mpu/small --upload-id "$uid"
lmu=$(awss3 s3api list-multipart-uploads --bucket "$TEST_BUCKET" --query 'Uploads[].UploadId' --output text)
case "$lmu" in *"$uid"*) not_ok "the upload is gone after abort"; diag "$lmu" ;; *) ok "the upload is gone after abort" ;; esac

# A body that does not match its signed SHA-256 never reaches storage.
code=$(curl -s -o "$T_DIR/mismatch.xml" -w '%{http_code}' "${sigv4[@]}" -T "$F/p1k" \
	-H "x-amz-content-sha256: $(printf other | sha256sum | cut -d' ' -f1)" "$S3_ENDPOINT/$TEST_BUCKET/bad/sha")
check_eq "a body not matching x-amz-content-sha256 gets 400" 400 "$code"
check "... with XAmzContentSHA256Mismatch" grep -q '<Code>XAmzContentSHA256Mismatch</Code>' "$T_DIR/mismatch.xml"
check_eq "... and is not stored" 404 "$(s3status HEAD "$TEST_BUCKET" bad/sha)"
code=$(curl -s -o /dev/null -w '%{http_code}' "${sigv4[@]}" -T "$F/p1k" \
	-H "x-amz-content-sha256: $(sha256sum <"$F/p1k" | cut -d' ' -f1)" "$S3_ENDPOINT/$TEST_BUCKET/good/sha")
check_eq "curl --aws-sigv4 PUT with the right hash: 200" 200 "$code"

code=$(printf hello | curl -s -o /dev/null -w '%{http_code}' "${sigv4[@]}" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
	-H "Transfer-Encoding: chunked" -T - "$S3_ENDPOINT/$TEST_BUCKET/chunked")
check_eq "a chunked upload gets 501 NotImplemented, as on S3" 501 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "${sigv4[@]}" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
	"$S3_ENDPOINT/$TEST_BUCKET/nolength")
check_eq "a PUT without Content-Length gets 411 MissingContentLength" 411 "$code"

# Virtual-host addressing: BUCKET.localhost.
empty=$(sha256sum </dev/null | cut -d' ' -f1)
check "virtual-host GET via a Host header returns the object" bash -c \
	"curl -sf ${sigv4[*]@Q} -H 'x-amz-content-sha256: $empty' -H 'Host: $TEST_BUCKET.localhost:$PORT' '$S3_ENDPOINT/good/sha' | cmp - '$F/p1k'"
check "virtual-host GET via --resolve returns the object" bash -c \
	"curl -sf ${sigv4[*]@Q} -H 'x-amz-content-sha256: $empty' --resolve '$TEST_BUCKET.localhost:$PORT:127.0.0.1' 'http://$TEST_BUCKET.localhost:$PORT/good/sha' | cmp - '$F/p1k'"
code=$(curl -s -o /dev/null -w '%{http_code}' "${sigv4[@]}" -H "x-amz-content-sha256: $empty" \
	-H "Host: $TEST_BUCKET.localhost:$PORT" "$S3_ENDPOINT/good/sha" --user "$AWS_ACCESS_KEY_ID:wrong")
check_eq "virtual-host request with a wrong secret: 403" 403 "$code"

# --- faults ---------------------------------------------------------------------
check "server stats resets" bash -c "curl -sf -X DELETE '$S3_ENDPOINT/__lzfs__/stats' >/dev/null"
check "fault spec is accepted" s3_fault '{"error_rate":1.0,"error_status":503,"ops":["PutObject"]}'
out=$(AWS_MAX_ATTEMPTS=1 "$AWS" --endpoint-url "$S3_ENDPOINT" s3api put-object --bucket "$TEST_BUCKET" --key f/x --body "$F/p1k" 2>&1)
case "$out" in *SlowDown*503*|*503*SlowDown*|*"(SlowDown)"*) ok "error_rate 1.0 for PutObject gives 503 SlowDown" ;; *) not_ok "error_rate 1.0 for PutObject gives 503 SlowDown"; diag "$out" ;; esac
check_eq "... while other operations work" 200 "$(s3status HEAD "$TEST_BUCKET" good/sha)"
check_eq "... and nothing was stored" 404 "$(s3status HEAD "$TEST_BUCKET" f/x)"
check_eq "server fault prints the spec" 1 "$("$S3SERVER" fault "$S3_DIR" '{"error_rate":1,"ops":["GetObject"],"count":1}' | jq .error_rate)"
check "server fault off clears it" bash -c "[ \"\$('$S3SERVER' fault '$S3_DIR' off | jq -c .)\" = '{}' ]"
check "PutObject works again" awss3 s3api put-object --bucket "$TEST_BUCKET" --key f/x --body "$F/p1k"
check "faults.log records the injected 503" grep -q ' PutObject lzfs-test/f/x error 503 SlowDown$' "$S3_DIR/faults.log"
stats=$("$S3SERVER" stats "$S3_DIR")
check_eq "stats count the faults" 1 "$(echo "$stats" | jq '.faults_by_op.PutObject.error')"
check_eq "stats count PutObject requests" 2 "$(echo "$stats" | jq '.requests.PutObject')"
check_eq "stats count HeadObject requests" 2 "$(echo "$stats" | jq '.requests.HeadObject')"

check "down_secs is accepted" s3_fault '{"down_secs":2}'
sleep 0.2
rc=0; curl -s -o /dev/null --max-time 2 "$S3_ENDPOINT/__lzfs__/health" || rc=$?
check_eq "while down, connections are refused (curl exit 7)" 7 "$rc"
up=0
for _ in $(seq 1 40); do
	if curl -sf -o /dev/null "$S3_ENDPOINT/__lzfs__/health"; then up=1; break; fi
	sleep 0.1
done
check_eq "the proxy is back by itself" 1 "$up"
check_eq "and serves S3 again" 200 "$(s3status HEAD "$TEST_BUCKET" f/x)"
check "faults.log records the outage" grep -q 'down 2s' "$S3_DIR/faults.log"

# --- S3 semantics in depth (aws4-signed requests) ---------------------------------
node_tap "$S3SRC/test-proxy.js" "$S3_ENDPOINT"

# --- stop ------------------------------------------------------------------------
pids="$(cat "$S3_DIR/proxy.pid") $(cat "$S3_DIR/s3rver.pid")"
check "server stop" "$S3SERVER" stop "$S3_DIR"
alive=0
for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
check_eq "stop waited for both processes to exit" 0 "$alive"
rc=0; curl -s -o /dev/null "$S3_ENDPOINT/__lzfs__/health" || rc=$?
check_eq "nothing listens on the endpoint any more" 7 "$rc"
ep2=$("$S3SERVER" start "$S3_DIR")
check "a restart in the same DIR keeps the objects" bash -c \
	"'$AWS' --endpoint-url '$ep2' s3 cp --only-show-errors s3://$TEST_BUCKET/rt/big - | cmp - '$F/big'"
"$S3SERVER" stop "$S3_DIR"
exit 0
