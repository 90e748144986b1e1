# Helpers for the scan and rescan tests (sourced after lib.sh): S3 reads
# and writes by curl's SigV4 (one fork, where awscli costs a second of
# Python start-up per call). Keys are percent-encoded here.
B=${B:-$TEST_BUCKET}

# s3cat KEY / s3head KEY: an object's bytes / response headers.
urlenc() {
	local LC_ALL=C s=$1 out="" c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case "$c" in
		[A-Za-z0-9._~/-]) out+=$c ;;
		*) printf -v c '%%%02X' "'$c"; out+=$c ;;
		esac
	done
	printf '%s' "$out"
}
s3curl() {
	curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
		"$@"
}
s3cat() { s3curl "$S3_ENDPOINT/$B/$(urlenc "$1")"; }
s3head() { s3curl -I "$S3_ENDPOINT/$B/$(urlenc "$1")"; }
# s3keys PREFIX: the keys under PREFIX, one a line (first 1000).
s3keys() {
	local q
	q=$(urlenc "$1")
	s3curl "$S3_ENDPOINT/$B?list-type=2&prefix=${q//\//%2F}" | grep -o '<Key>[^<]*</Key>' |
		sed -e 's/<Key>\(.*\)<\/Key>/\1/' -e 's/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&apos;/'"'"'/g; s/&amp;/\&/g'
}
# s3count PREFIX: how many keys (a key may hold a newline: count the tags).
s3count() {
	local q
	q=$(urlenc "$1")
	s3curl "$S3_ENDPOINT/$B?list-type=2&prefix=${q//\//%2F}" | grep -o '<Key>' | wc -l
}
# s3put FILE KEY
s3put() {
	curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: $(sha256sum <"$1" | cut -d' ' -f1)" -T "$1" \
		"$S3_ENDPOINT/$B/$(urlenc "$2")" >/dev/null
}

# s3same KEY FILE: the object's bytes are the file's.
s3same() { s3cat "$1" | cmp -s "$2" -; }
