/* test_s3xml.c - parsing of S3 response bodies (expat) and the
 * CompleteMultipartUpload request body. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3xml.h"

#define XMLDECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define NS " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static int parse_list(const char *xml, struct s3x_list *l, struct s3x_error *err)
{
	return s3x_list(xml, strlen(xml), l, err);
}

static void test_error(void **state)
{
	const char *xml = XMLDECL "<Error><Code>NoSuchKey</Code><Message>The resource you requested "
			  "does not exist</Message><Key>a &amp; b</Key><RequestId>4442587FB7D0A2F9</RequestId>"
			  "<HostId>xyz</HostId></Error>";
	struct s3x_error e;
	assert_int_equal(s3x_error(xml, strlen(xml), &e), 0);
	assert_string_equal(e.code, "NoSuchKey");
	assert_string_equal(e.message, "The resource you requested does not exist");
	assert_string_equal(e.request_id, "4442587FB7D0A2F9");
	assert_string_equal(e.key, "a & b");

	/* a long message is truncated, never overflows */
	char big[4096];
	int n = snprintf(big, sizeof big, "<Error><Code>SlowDown</Code><Message>");
	memset(big + n, 'm', 1000);
	snprintf(big + n + 1000, sizeof big - (size_t)n - 1000, "</Message></Error>");
	assert_int_equal(s3x_error(big, strlen(big), &e), 0);
	assert_string_equal(e.code, "SlowDown");
	assert_int_equal(strlen(e.message), sizeof e.message - 1);

	/* not an error document, or not XML at all */
	const char *other = "<ListBucketResult></ListBucketResult>";
	assert_int_equal(s3x_error(other, strlen(other), &e), -EPROTO);
	assert_int_equal(s3x_error("<html>502 Bad Gateway", 21, &e), -EPROTO);
	assert_true(strlen(e.message) > 0);
	assert_int_equal(s3x_error("", 0, &e), -EPROTO);
	const char *nocode = "<Error><Message>x</Message></Error>";
	assert_int_equal(s3x_error(nocode, strlen(nocode), &e), -EPROTO);
}

static void test_list_page(void **state)
{
	const char *xml =
		XMLDECL "<ListBucketResult" NS "><Name>b</Name><Prefix>dir/</Prefix>"
		"<KeyCount>4</KeyCount><MaxKeys>4</MaxKeys><Delimiter>/</Delimiter>"
		"<IsTruncated>true</IsTruncated>"
		"<Contents><Key>dir/a &amp; b.txt</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
		"<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
		"<StorageClass>STANDARD</StorageClass></Contents>"
		"<Contents><Key>dir/\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac</Key>"
		"<LastModified>2024-02-29T23:59:59Z</LastModified>"
		"<ETag>\"0123456789abcdef0123456789abcdef-12\"</ETag><Size>18446744073709551615</Size></Contents>"
		"<CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>"
		"<CommonPrefixes><Prefix>dir/x&lt;y/</Prefix></CommonPrefixes>"
		"<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
		"</ListBucketResult>";
	struct s3x_list l;
	struct s3x_error e;
	assert_int_equal(parse_list(xml, &l, &e), 0);
	assert_int_equal(l.n, 4);
	assert_true(l.truncated);
	assert_false(l.url_encoded);
	assert_string_equal(l.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	assert_string_equal(l.e[0].key, "dir/a & b.txt");
	assert_int_equal(l.e[0].size, 434234);
	assert_string_equal(l.e[0].etag, "fba9dede5f27731c9771645a39863328");
	assert_int_equal(l.e[0].last_modified, 1255369830);
	assert_false(l.e[0].is_prefix);
	assert_string_equal(l.e[1].key, "dir/\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac");
	assert_true(l.e[1].size == UINT64_MAX);
	assert_string_equal(l.e[1].etag, "0123456789abcdef0123456789abcdef-12");
	assert_int_equal(l.e[1].last_modified, 1709251199);
	assert_true(l.e[2].is_prefix);
	assert_string_equal(l.e[2].key, "dir/sub/");
	assert_true(l.e[3].is_prefix);
	assert_string_equal(l.e[3].key, "dir/x<y/");
	s3x_list_free(&l);

	/* the last page, empty */
	const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount>"
			   "</ListBucketResult>";
	assert_int_equal(parse_list(last, &l, &e), 0);
	assert_int_equal(l.n, 0);
	assert_false(l.truncated);
	assert_null(l.next_token);
	s3x_list_free(&l);
}

static void test_list_url_encoded(void **state)
{
	const char *xml =
		"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
		"<Contents><Key>a+b%2Bc%25d%0Ae%3F%23%C3%A9</Key><Size>1</Size><ETag>\"x\"</ETag></Contents>"
		"<CommonPrefixes><Prefix>p%2F+q/</Prefix></CommonPrefixes></ListBucketResult>";
	struct s3x_list l;
	struct s3x_error e;
	assert_int_equal(parse_list(xml, &l, &e), 0);
	assert_true(l.url_encoded);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.e[0].key, "a b+c%d\ne?#\xc3\xa9");
	assert_string_equal(l.e[1].key, "p/ q/");
	s3x_list_free(&l);

	const char *bad = "<ListBucketResult><EncodingType>url</EncodingType>"
			  "<Contents><Key>a%2</Key></Contents></ListBucketResult>";
	assert_int_equal(parse_list(bad, &l, &e), -EPROTO);
	const char *nul = "<ListBucketResult><EncodingType>url</EncodingType>"
			  "<Contents><Key>a%00b</Key></Contents></ListBucketResult>";
	assert_int_equal(parse_list(nul, &l, &e), -EPROTO);
	char s[] = "x%41+%7e";
	assert_int_equal(s3x_url_decode(s), 0);
	assert_string_equal(s, "xA ~");
}

static void test_list_malformed(void **state)
{
	struct s3x_list l;
	struct s3x_error e;
	/* truncated in the middle of an entry */
	assert_int_equal(parse_list("<ListBucketResult><Contents><Key>a</Key><Si", &l, &e), -EPROTO);
	assert_non_null(strstr(e.message, "malformed XML"));
	assert_null(l.e);
	/* truncated after a complete element */
	assert_int_equal(parse_list("<ListBucketResult><Contents><Key>a</Key></Contents>", &l, &e),
			 -EPROTO);
	/* truncated page that says more follow but gives no token */
	assert_int_equal(parse_list("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
				    &l, &e), -EPROTO);
	assert_non_null(strstr(e.message, "NextContinuationToken"));
	/* a bad number */
	assert_int_equal(parse_list("<ListBucketResult><Contents><Key>a</Key><Size>12x</Size></Contents>"
				    "</ListBucketResult>", &l, &e), -EPROTO);
	assert_int_equal(parse_list("<ListBucketResult><Contents><Key>a</Key><Size>99999999999999999999</Size>"
				    "</Contents></ListBucketResult>", &l, &e), -EPROTO);
	/* an entry without a key */
	assert_int_equal(parse_list("<ListBucketResult><Contents><Size>1</Size></Contents>"
				    "</ListBucketResult>", &l, &e), -EPROTO);
	/* the wrong document */
	assert_int_equal(parse_list("<ListPartsResult></ListPartsResult>", &l, &e), -EPROTO);
	assert_non_null(strstr(e.message, "ListPartsResult"));
	/* binary garbage */
	const char garbage[] = "\x00\xff\xfe<<<&&&";
	assert_int_equal(s3x_list(garbage, sizeof garbage, &l, &e), -EPROTO);
	/* entity expansion attacks are refused with the DOCTYPE */
	const char *bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">"
			   "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
			   "<ListBucketResult><Contents><Key>&b;</Key></Contents></ListBucketResult>";
	assert_int_equal(parse_list(bomb, &l, &e), -EPROTO);
	assert_non_null(strstr(e.message, "DOCTYPE"));
	/* an element text beyond any sane key length */
	size_t n = 200 * 1024;
	char *huge = malloc(n + 100);
	assert_non_null(huge);
	strcpy(huge, "<ListBucketResult><Contents><Key>");
	size_t at = strlen(huge);
	memset(huge + at, 'k', n);
	strcpy(huge + at + n, "</Key></Contents></ListBucketResult>");
	assert_int_equal(parse_list(huge, &l, &e), -EPROTO);
	free(huge);
	/* an error document in place of a page */
	assert_int_equal(parse_list("<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
				    "</Error>", &l, &e), S3X_ERROR);
	assert_string_equal(e.code, "AccessDenied");
}

static void test_initiate(void **state)
{
	const char *xml = XMLDECL "<InitiateMultipartUploadResult" NS "><Bucket>b</Bucket>"
			  "<Key>a &amp; b</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
			  "</UploadId></InitiateMultipartUploadResult>";
	char *id = NULL;
	struct s3x_error e;
	assert_int_equal(s3x_initiate(xml, strlen(xml), &id, &e), 0);
	assert_string_equal(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
	free(id);
	const char *noid = "<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>";
	assert_int_equal(s3x_initiate(noid, strlen(noid), &id, &e), -EPROTO);
	const char *empty = "<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>";
	assert_int_equal(s3x_initiate(empty, strlen(empty), &id, &e), -EPROTO);
}

static void test_complete_and_copy(void **state)
{
	/* S3 may send whitespace before the document while it works */
	const char *xml = "   \n  " XMLDECL "<CompleteMultipartUploadResult" NS "><Location>http://x/b/k</Location>"
			  "<Bucket>b</Bucket><Key>k</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
			  "</CompleteMultipartUploadResult>";
	char etag[S3_ETAG_MAX];
	struct s3x_error e;
	assert_int_equal(s3x_complete(xml, strlen(xml), etag, &e), 0);
	assert_string_equal(etag, "3858f62230ac3c915f300c664312c11f-9");

	/* a 200 whose body is an error */
	const char *err200 = "  " XMLDECL "\n<Error><Code>InternalError</Code><Message>We encountered an "
			     "internal error. Please try again.</Message><RequestId>656c76696e6727732072657175657374"
			     "</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>";
	assert_int_equal(s3x_complete(err200, strlen(err200), etag, &e), S3X_ERROR);
	assert_string_equal(e.code, "InternalError");
	assert_string_equal(e.request_id, "656c76696e6727732072657175657374");
	/* an answer cut short is never taken for success */
	assert_int_equal(s3x_complete(xml, strlen(xml) - 20, etag, &e), -EPROTO);

	const char *copy = "<CopyObjectResult><LastModified>2009-10-28T22:32:00Z</LastModified>"
			   "<ETag>\"9b2cf535f27731c974343645a3985328\"</ETag></CopyObjectResult>";
	assert_int_equal(s3x_copy(copy, strlen(copy), etag, &e), 0);
	assert_string_equal(etag, "9b2cf535f27731c974343645a3985328");
	const char *part = "<CopyPartResult><ETag>\"b\"</ETag></CopyPartResult>";
	assert_int_equal(s3x_copy(part, strlen(part), etag, &e), 0);
	assert_string_equal(etag, "b");
	const char *long_etag = "<CopyPartResult><ETag>\"0123456789012345678901234567890123456789"
				"01234567890123456789012345678901234567890123456789\"</ETag></CopyPartResult>";
	assert_int_equal(s3x_copy(long_etag, strlen(long_etag), etag, &e), -EPROTO);
}

static void test_list_parts(void **state)
{
	const char *xml = XMLDECL "<ListPartsResult" NS "><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId>"
			  "<PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker>"
			  "<MaxPartsPart>2</MaxPartsPart><IsTruncated>true</IsTruncated>"
			  "<Part><PartNumber>2</PartNumber><LastModified>2010-11-10T20:48:34.000Z</LastModified>"
			  "<ETag>\"7778aef83f66abc1fa1e8477f296d394\"</ETag><Size>10485760</Size></Part>"
			  "<Part><PartNumber>3</PartNumber><ETag>&quot;aaaa18db4cc2f85cedef654fccc4a4x8&quot;</ETag>"
			  "<Size>10485761</Size></Part></ListPartsResult>";
	struct s3x_parts p;
	struct s3x_error e;
	assert_int_equal(s3x_parts(xml, strlen(xml), &p, &e), 0);
	assert_int_equal(p.n, 2);
	assert_true(p.truncated);
	assert_int_equal(p.next_marker, 3);
	assert_int_equal(p.p[0].number, 2);
	assert_string_equal(p.p[0].etag, "7778aef83f66abc1fa1e8477f296d394");
	assert_int_equal(p.p[0].size, 10485760);
	assert_int_equal(p.p[1].number, 3);
	assert_string_equal(p.p[1].etag, "aaaa18db4cc2f85cedef654fccc4a4x8");
	assert_int_equal(p.p[1].size, 10485761);
	s3x_parts_free(&p);

	const char *bad = "<ListPartsResult><Part><PartNumber>10001</PartNumber></Part></ListPartsResult>";
	assert_int_equal(s3x_parts(bad, strlen(bad), &p, &e), -EPROTO);
	const char *nomark = "<ListPartsResult><IsTruncated>true</IsTruncated></ListPartsResult>";
	assert_int_equal(s3x_parts(nomark, strlen(nomark), &p, &e), -EPROTO);
	const char *err = "<Error><Code>NoSuchUpload</Code></Error>";
	assert_int_equal(s3x_parts(err, strlen(err), &p, &e), S3X_ERROR);
	assert_string_equal(e.code, "NoSuchUpload");
}

static void test_complete_body(void **state)
{
	struct s3_part parts[2] = {{.number = 1, .etag = "a54357aff0632cce46d942af68356b38"},
				   {.number = 2, .etag = "0c78aef83f66abc1fa1e8477f296d394"}};
	size_t len;
	char *body = s3x_complete_body(parts, 2, &len);
	assert_non_null(body);
	assert_int_equal(len, strlen(body));
	assert_string_equal(body, XMLDECL "<CompleteMultipartUpload" NS ">"
				  "<Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part>"
				  "<Part><PartNumber>2</PartNumber><ETag>\"0c78aef83f66abc1fa1e8477f296d394\"</ETag></Part>"
				  "</CompleteMultipartUpload>");
	free(body);
	char out[S3_ETAG_MAX];
	assert_int_equal(s3x_etag_unquote("W/\"abc\"", 7, out), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(s3x_etag_unquote("abc", 3, out), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(s3x_iso8601("2009-10-12T17:50:30.000Z"), 1255369830);
	assert_int_equal(s3x_iso8601("2009-10-12T17:50:30Z"), 1255369830);
	assert_int_equal(s3x_iso8601("yesterday"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_list_page),
		cmocka_unit_test(test_list_url_encoded),
		cmocka_unit_test(test_list_malformed),
		cmocka_unit_test(test_initiate),
		cmocka_unit_test(test_complete_and_copy),
		cmocka_unit_test(test_list_parts),
		cmocka_unit_test(test_complete_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
