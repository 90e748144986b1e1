/* test_sigv4.c - the signer against AWS's published S3 SigV4 examples
 * ("Signature Calculations for the Authorization Header: Transferring
 * Payload in a Single Chunk", examples GET Object, PUT Object, GET Bucket
 * Lifecycle, Get Bucket (List Objects)), and canonicalization of odd keys
 * and queries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "sigv4.h"

#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DATE "20130524T000000Z"
#define HOST "examplebucket.s3.amazonaws.com"

static const struct sigv4_signer aws = {
	.access_key = "AKIAIOSFODNN7EXAMPLE",
	.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
	.service = "s3",
};

static void check_sig(const struct sigv4_request *r, const char *signed_headers,
		      const char *sts_hash, const char *signature)
{
	char *creq, *sts, *auth;
	assert_int_equal(sigv4_canonical_request(r, &creq), 0);
	assert_int_equal(sigv4_string_to_sign(&aws, DATE, creq, &sts), 0);
	const char *want_prefix = "AWS4-HMAC-SHA256\n" DATE "\n20130524/us-east-1/s3/aws4_request\n";
	assert_int_equal(strncmp(sts, want_prefix, strlen(want_prefix)), 0);
	assert_string_equal(sts + strlen(want_prefix), sts_hash);
	assert_int_equal(sigv4_authorization(&aws, r, DATE, &auth), 0);
	char want[512];
	snprintf(want, sizeof want,
		 "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
		 "SignedHeaders=%s, Signature=%s", signed_headers, signature);
	assert_string_equal(auth, want);
	free(creq);
	free(sts);
	free(auth);
}

static void test_get_object_range(void **state)
{
	const struct sigv4_header h[] = {
		{"x-amz-date", DATE},
		{"range", "bytes=0-9"},
		{"host", HOST},
		{"x-amz-content-sha256", EMPTY},
	};
	struct sigv4_request r = {"GET", "/test.txt", NULL, 0, h, 4, EMPTY};
	char *creq;
	assert_int_equal(sigv4_canonical_request(&r, &creq), 0);
	assert_string_equal(creq, "GET\n/test.txt\n\n"
				  "host:" HOST "\n"
				  "range:bytes=0-9\n"
				  "x-amz-content-sha256:" EMPTY "\n"
				  "x-amz-date:" DATE "\n\n"
				  "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY);
	free(creq);
	check_sig(&r, "host;range;x-amz-content-sha256;x-amz-date",
		  "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
		  "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void test_put_object(void **state)
{
	const char *body = "Welcome to Amazon S3.";
	unsigned char d[32];
	char sha[65];
	assert_int_equal(hash_sha256(body, strlen(body), d), 0);
	hash_hex(d, 32, sha);
	assert_string_equal(sha, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	char *path = sigv4_uri_encode("/test$file.text", 15, 1);
	assert_string_equal(path, "/test%24file.text");
	const struct sigv4_header h[] = {
		{"host", HOST},
		{"date", "Fri, 24 May 2013 00:00:00 GMT"},
		{"x-amz-date", DATE},
		{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
		{"x-amz-content-sha256", sha},
	};
	struct sigv4_request r = {"PUT", path, NULL, 0, h, 5, sha};
	char *creq;
	assert_int_equal(sigv4_canonical_request(&r, &creq), 0);
	assert_string_equal(creq, "PUT\n/test%24file.text\n\n"
				  "date:Fri, 24 May 2013 00:00:00 GMT\n"
				  "host:" HOST "\n"
				  "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
				  "x-amz-date:" DATE "\n"
				  "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
				  "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
				  "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
	free(creq);
	check_sig(&r, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
		  "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
		  "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
	free(path);
}

static const struct sigv4_header plain[] = {
	{"host", HOST},
	{"x-amz-content-sha256", EMPTY},
	{"x-amz-date", DATE},
};

static void test_get_lifecycle(void **state)
{
	const struct sigv4_param q[] = {{"lifecycle", NULL}};
	struct sigv4_request r = {"GET", "/", q, 1, plain, 3, EMPTY};
	char *creq;
	assert_int_equal(sigv4_canonical_request(&r, &creq), 0);
	assert_string_equal(creq, "GET\n/\nlifecycle=\n"
				  "host:" HOST "\n"
				  "x-amz-content-sha256:" EMPTY "\n"
				  "x-amz-date:" DATE "\n\n"
				  "host;x-amz-content-sha256;x-amz-date\n" EMPTY);
	free(creq);
	check_sig(&r, "host;x-amz-content-sha256;x-amz-date",
		  "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
		  "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void test_list_objects(void **state)
{
	/* given out of order: the signer sorts */
	const struct sigv4_param q[] = {{"prefix", "J"}, {"max-keys", "2"}};
	struct sigv4_request r = {"GET", "/", q, 2, plain, 3, EMPTY};
	char *query = sigv4_query(q, 2);
	assert_string_equal(query, "max-keys=2&prefix=J");
	free(query);
	check_sig(&r, "host;x-amz-content-sha256;x-amz-date",
		  "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
		  "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void test_odd_key_canonical_request(void **state)
{
	const char *key = "/b/dir/a b+c%d?e#f=g&h\ni~j/\xc3\xa9t\xc3\xa9";
	char *path = sigv4_uri_encode(key, strlen(key), 1);
	assert_string_equal(path, "/b/dir/a%20b%2Bc%25d%3Fe%23f%3Dg%26h%0Ai~j/%C3%A9t%C3%A9");
	const struct sigv4_header h[] = {
		{"x-amz-date", DATE},
		{"host", "127.0.0.1:9000"},
		{"content-type", "  text/plain;   charset=utf-8  "},
		{"x-amz-content-sha256", EMPTY},
		{"x-amz-meta-a", "1"},
		{"x-amz-meta-a", "2"},
	};
	const struct sigv4_param q[] = {{"uploadId", "a/b+c==x y"}, {"partNumber", "10"}};
	struct sigv4_request r = {"PUT", path, q, 2, h, 6, EMPTY};
	char *creq;
	assert_int_equal(sigv4_canonical_request(&r, &creq), 0);
	assert_string_equal(creq, "PUT\n"
				  "/b/dir/a%20b%2Bc%25d%3Fe%23f%3Dg%26h%0Ai~j/%C3%A9t%C3%A9\n"
				  "partNumber=10&uploadId=a%2Fb%2Bc%3D%3Dx%20y\n"
				  "content-type:text/plain; charset=utf-8\n"
				  "host:127.0.0.1:9000\n"
				  "x-amz-content-sha256:" EMPTY "\n"
				  "x-amz-date:" DATE "\n"
				  "x-amz-meta-a:1,2\n\n"
				  "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-a\n" EMPTY);
	char *sts;
	assert_int_equal(sigv4_string_to_sign(&aws, DATE, creq, &sts), 0);
	unsigned char d[32];
	char hex[65];
	hash_sha256(creq, strlen(creq), d);
	hash_hex(d, 32, hex);
	assert_non_null(strstr(sts, hex));
	free(sts);
	free(creq);
	free(path);
}

static void test_query_sorting(void **state)
{
	/* Sorted by encoded name (byte order: uppercase first), then value. */
	const struct sigv4_param q[] = {
		{"prefix", "dir/sub x"},
		{"list-type", "2"},
		{"continuation-token", "1/a+b=="},
		{"Zeta", ""},
		{"a b", "v"},
		{"dup", "2"},
		{"dup", "10"},
	};
	char *s = sigv4_query(q, 7);
	assert_string_equal(s, "Zeta=&a%20b=v&continuation-token=1%2Fa%2Bb%3D%3D&dup=10&dup=2&"
			       "list-type=2&prefix=dir%2Fsub%20x");
	free(s);
	s = sigv4_query(NULL, 0);
	assert_string_equal(s, "");
	free(s);
}

static void test_changes_change_signature(void **state)
{
	/* Every signed part matters: a different payload, header or key gives a
	 * different signature. */
	const struct sigv4_header h[] = {{"host", HOST}, {"x-amz-date", DATE}};
	struct sigv4_request r = {"GET", "/a", NULL, 0, h, 2, EMPTY};
	char *a, *b;
	assert_int_equal(sigv4_authorization(&aws, &r, DATE, &a), 0);
	r.path = "/b";
	assert_int_equal(sigv4_authorization(&aws, &r, DATE, &b), 0);
	assert_string_not_equal(a, b);
	free(b);
	r.path = "/a";
	r.payload_sha256 = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
	assert_int_equal(sigv4_authorization(&aws, &r, DATE, &b), 0);
	assert_string_not_equal(a, b);
	free(b);
	struct sigv4_signer other = aws;
	other.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEX";
	r.payload_sha256 = EMPTY;
	assert_int_equal(sigv4_authorization(&other, &r, DATE, &b), 0);
	assert_string_not_equal(a, b);
	/* the secret never appears in the header */
	assert_null(strstr(b, "EXAMPLEKEX"));
	free(b);
	free(a);
	char date[17];
	sigv4_amz_date(1369353600, date);
	assert_string_equal(date, DATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_object_range),
		cmocka_unit_test(test_put_object),
		cmocka_unit_test(test_get_lifecycle),
		cmocka_unit_test(test_list_objects),
		cmocka_unit_test(test_odd_key_canonical_request),
		cmocka_unit_test(test_query_sorting),
		cmocka_unit_test(test_changes_change_signature),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
