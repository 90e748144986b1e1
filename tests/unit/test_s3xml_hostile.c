/* test_s3xml_hostile.c - S3 answers that are cut short, nested without
 * end, oddly encoded or empty where a value is needed: the parsers refuse
 * them with a reason and never take them for success. (test_s3xml.c has
 * the well-formed documents; tests/fuzz/fuzz_s3xml.c explores the rest.) */
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

#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

static const char initiate[] = DECL "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
			       "<UploadId>abc</UploadId></InitiateMultipartUploadResult>";
static const char complete[] = DECL "<CompleteMultipartUploadResult><Location>l</Location>"
			       "<Bucket>b</Bucket><Key>k</Key><ETag>\"e-2\"</ETag>"
			       "</CompleteMultipartUploadResult>";
static const char copy[] = "<CopyObjectResult><ETag>\"9b2c\"</ETag></CopyObjectResult>";
static const char parts[] = DECL "<ListPartsResult><IsTruncated>false</IsTruncated><Part>"
			    "<PartNumber>1</PartNumber><ETag>\"a\"</ETag><Size>5</Size></Part>"
			    "</ListPartsResult>";
static const char list[] = DECL "<ListBucketResult><IsTruncated>false</IsTruncated><Contents>"
			   "<Key>a</Key><Size>1</Size></Contents></ListBucketResult>";
static const char error[] = DECL "<Error><Code>SlowDown</Code><Message>m</Message></Error>";

/* Parses the first len bytes of doc as document type t. */
static int parse(int t, const char *doc, size_t len, struct s3x_error *e)
{
	char etag[S3_ETAG_MAX];
	int rc = -1;
	switch (t) {
	case 0: {
		char *id = NULL;
		rc = s3x_initiate(doc, len, &id, e);
		free(id);
		break;
	}
	case 1: rc = s3x_complete(doc, len, etag, e); break;
	case 2: rc = s3x_copy(doc, len, etag, e); break;
	case 3: {
		struct s3x_parts p;
		rc = s3x_parts(doc, len, &p, e);
		if (rc == 0)
			s3x_parts_free(&p);
		break;
	}
	case 4: {
		struct s3x_list l;
		rc = s3x_list(doc, len, &l, e);
		if (rc == 0)
			s3x_list_free(&l);
		break;
	}
	case 5: rc = s3x_error(doc, len, e); break;
	}
	return rc;
}

/* Every proper prefix of a valid answer (an answer cut anywhere) is
 * refused with a message; only the whole document parses. */
static void test_every_truncation(void **state)
{
	const char *docs[] = {initiate, complete, copy, parts, list, error};
	for (int t = 0; t < 6; t++) {
		size_t n = strlen(docs[t]);
		struct s3x_error e;
		assert_int_equal(parse(t, docs[t], n, &e), 0);
		for (size_t cut = 0; cut < n; cut++) {
			int rc = parse(t, docs[t], cut, &e);
			if (rc != -EPROTO)
				fail_msg("document %d cut at %zu of %zu: rc %d", t, cut, n, rc);
			assert_true(e.message[0] != '\0');
		}
	}
}

static void test_nesting_and_names(void **state)
{
	struct s3x_error e;
	struct s3x_list l;
	/* 100000 levels: expat is not recursive, the driver stops tracking past 16 */
	size_t depth = 100000;
	char *doc = malloc(depth * 7 + 100);
	assert_non_null(doc);
	char *p = doc + sprintf(doc, "<ListBucketResult>");
	for (size_t i = 0; i < depth; i++, p += 3)
		memcpy(p, "<a>", 3);
	for (size_t i = 0; i < depth; i++, p += 4)
		memcpy(p, "</a>", 4);
	strcpy(p, "</ListBucketResult>");
	int rc = s3x_list(doc, strlen(doc), &l, &e);
	assert_true(rc == 0 || rc == -EPROTO);
	if (rc == 0)
		s3x_list_free(&l);
	free(doc);
	/* an element name of 5000 bytes (names are kept to 63): still parsed */
	char name[5001];
	memset(name, 'K', 5000);
	name[5000] = '\0';
	char *big = malloc(11000);
	assert_non_null(big);
	snprintf(big, 11000, "<ListBucketResult><Contents><Key>a</Key><%s>x</%s></Contents>"
		 "</ListBucketResult>", name, name);
	assert_int_equal(s3x_list(big, strlen(big), &l, &e), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.e[0].key, "a");
	s3x_list_free(&l);
	free(big);
}

static void test_encodings_and_bytes(void **state)
{
	struct s3x_list l;
	struct s3x_error e;
	/* a declared Latin-1 document: expat hands over UTF-8 */
	const char latin1[] = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><ListBucketResult>"
			      "<Contents><Key>caf\xe9</Key><Size>1</Size></Contents></ListBucketResult>";
	assert_int_equal(s3x_list(latin1, strlen(latin1), &l, &e), 0);
	assert_string_equal(l.e[0].key, "caf\xc3\xa9");
	s3x_list_free(&l);
	/* a UTF-8 byte order mark before the declaration */
	const char bom[] = "\xef\xbb\xbf" DECL "<CopyObjectResult><ETag>\"b\"</ETag></CopyObjectResult>";
	char etag[S3_ETAG_MAX];
	assert_int_equal(s3x_copy(bom, strlen(bom), etag, &e), 0);
	assert_string_equal(etag, "b");
	/* invalid UTF-8, a NUL byte, a NUL character reference, an undefined entity */
	const char *bad[] = {
		"<ListBucketResult><Contents><Key>\xff\xfe</Key></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a&#0;b</Key></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>&foo;</Key></Contents></ListBucketResult>",
		"<ListBucketResult></ListBucketResult><ListBucketResult></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>junk",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = s3x_list(bad[i], strlen(bad[i]), &l, &e);
		if (rc != -EPROTO)
			fail_msg("bad document %zu: rc %d", i, rc);
		assert_non_null(strstr(e.message, "malformed XML"));
	}
	const char nul[] = "<ListBucketResult><Contents><Key>a\0b</Key></Contents></ListBucketResult>";
	assert_int_equal(s3x_list(nul, sizeof nul - 1, &l, &e), -EPROTO);
	/* an external entity without a DOCTYPE cannot be declared: refused */
	const char sys[] = "<?xml version=\"1.0\"?><!DOCTYPE x SYSTEM \"file:///etc/passwd\">"
			   "<CopyObjectResult><ETag>&x;</ETag></CopyObjectResult>";
	assert_int_equal(s3x_copy(sys, strlen(sys), etag, &e), -EPROTO);
	assert_non_null(strstr(e.message, "DOCTYPE"));
}

/* A value S3 always sends, sent empty, is not a success. */
static void test_empty_values(void **state)
{
	struct s3x_error e;
	char etag[S3_ETAG_MAX];
	const char c1[] = "<CompleteMultipartUploadResult><ETag></ETag></CompleteMultipartUploadResult>";
	assert_int_equal(s3x_complete(c1, strlen(c1), etag, &e), -EPROTO);
	assert_non_null(strstr(e.message, "ETag"));
	const char c2[] = "<CompleteMultipartUploadResult><ETag>\"\"</ETag></CompleteMultipartUploadResult>";
	assert_int_equal(s3x_complete(c2, strlen(c2), etag, &e), -EPROTO);
	const char c3[] = "<CopyObjectResult><ETag/></CopyObjectResult>";
	assert_int_equal(s3x_copy(c3, strlen(c3), etag, &e), -EPROTO);
	const char p1[] = "<ListPartsResult><Part><PartNumber>1</PartNumber><ETag></ETag><Size>1</Size>"
			  "</Part></ListPartsResult>";
	struct s3x_parts p;
	assert_int_equal(s3x_parts(p1, strlen(p1), &p, &e), -EPROTO);
	/* a part number outside 1..10000 */
	const char p2[] = "<ListPartsResult><Part><PartNumber>10001</PartNumber><ETag>a</ETag></Part>"
			  "</ListPartsResult>";
	assert_int_equal(s3x_parts(p2, strlen(p2), &p, &e), -EPROTO);
	/* an error document with an empty Code */
	const char e1[] = "<Error><Code></Code><Message>m</Message></Error>";
	assert_int_equal(s3x_error(e1, strlen(e1), &e), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_nesting_and_names),
		cmocka_unit_test(test_encodings_and_bytes),
		cmocka_unit_test(test_empty_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
