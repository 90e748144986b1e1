/* test_hash.c - hash module against published vectors (FIPS 180-2, RFC 1321,
 * RFC 4231, RFC 4648) and the streaming / fd paths against one-shot. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"

static void test_vectors(void **state)
{
	unsigned char d[32];
	char hex[65];
	assert_int_equal(hash_sha256("abc", 3, d), 0);
	hash_hex(d, 32, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(hash_sha256("", 0, d), 0);
	hash_hex(d, 32, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(hash_md5("", 0, d), 0);
	hash_hex(d, 16, hex);
	assert_string_equal(hex, "d41d8cd98f00b204e9800998ecf8427e");
	assert_int_equal(hash_md5("abc", 3, d), 0);
	hash_hex(d, 16, hex);
	assert_string_equal(hex, "900150983cd24fb0d6963f7d28e17f72");
	const char *msg = "what do ya want for nothing?";
	assert_int_equal(hash_hmac_sha256("Jefe", 4, msg, strlen(msg), d), 0);
	hash_hex(d, 32, hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_base64_hex(void **state)
{
	char out[16];
	hash_base64((const unsigned char *)"foobar", 6, out);
	assert_string_equal(out, "Zm9vYmFy");
	hash_base64((const unsigned char *)"fo", 2, out);
	assert_string_equal(out, "Zm8=");
	hash_base64((const unsigned char *)"f", 1, out);
	assert_string_equal(out, "Zg==");
	unsigned char d[3];
	assert_int_equal(hash_unhex("00fFa0", d, 3), 0);
	assert_int_equal(d[0], 0);
	assert_int_equal(d[1], 0xff);
	assert_int_equal(d[2], 0xa0);
	assert_int_equal(hash_unhex("0g0000", d, 3), -EINVAL);
	assert_int_equal(hash_unhex("00ff", d, 3), -EINVAL);
}

static void test_streaming_and_fd(void **state)
{
	size_t n = 3 * 1024 * 1024 + 17;
	unsigned char *buf = malloc(n);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 13);
	unsigned char one[32], two[32], three[32], peek[32];
	assert_int_equal(hash_sha256(buf + 5, n - 5, one), 0);

	struct hash_ctx *h;
	assert_int_equal(hash_new(HASH_SHA256, &h), 0);
	assert_int_equal(hash_update(h, buf + 5, 1000), 0);
	assert_int_equal(hash_update(h, buf + 1005, n - 1005), 0);
	assert_int_equal(hash_peek(h, peek), 0);
	assert_int_equal(hash_final(h, two), 0);
	assert_memory_equal(one, two, 32);
	assert_memory_equal(one, peek, 32);
	/* final resets: the context hashes a new message */
	assert_int_equal(hash_update(h, "abc", 3), 0);
	assert_int_equal(hash_final(h, two), 0);
	assert_int_equal(hash_sha256("abc", 3, three), 0);
	assert_memory_equal(two, three, 32);
	hash_free(h);

	char path[] = "/tmp/test_hash.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	assert_int_equal(hash_fd(HASH_SHA256, fd, 5, n - 5, two), 0);
	assert_memory_equal(one, two, 32);
	assert_int_equal(hash_fd(HASH_MD5, fd, 0, n, two), 0);
	assert_int_equal(hash_md5(buf, n, three), 0);
	assert_memory_equal(two, three, 16);
	assert_int_equal(hash_fd(HASH_SHA256, fd, 0, 0, two), 0);
	assert_int_equal(hash_sha256("", 0, three), 0);
	assert_memory_equal(two, three, 32);
	/* past the end of the file */
	assert_int_equal(hash_fd(HASH_SHA256, fd, 10, n, two), -EIO);
	close(fd);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_base64_hex),
		cmocka_unit_test(test_streaming_and_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
