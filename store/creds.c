/* creds.c - s3_creds_load() and s3_creds_clear() from s3.h.
 *
 * The credentials file is the AWS INI format, parsed by inih. It must be a
 * regular file that only its owner can read: a secret key readable by
 * others is refused rather than used.
 */
#include "s3.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ini.h>

struct ini_state {
	const char *profile;
	int found_profile;
	char *access_key;
	char *secret_key;
	char *session_token;
	int oom;
};

static void wipe_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static int set_field(char **field, const char *value, struct ini_state *st)
{
	wipe_free(*field);
	*field = strdup(value);
	if (!*field)
		st->oom = 1;
	return 1;
}

/* Sections are "[name]" in the credentials file and "[profile name]" in the
 * config file; accept both. */
static int section_matches(const char *section, const char *profile)
{
	if (strcmp(section, profile) == 0)
		return 1;
	return strncmp(section, "profile ", 8) == 0 && strcmp(section + 8, profile) == 0;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct ini_state *st = user;
	if (!section_matches(section, st->profile))
		return 1;
	st->found_profile = 1;
	if (strcmp(name, "aws_access_key_id") == 0)
		return set_field(&st->access_key, value, st);
	if (strcmp(name, "aws_secret_access_key") == 0)
		return set_field(&st->secret_key, value, st);
	if (strcmp(name, "aws_session_token") == 0 || strcmp(name, "aws_security_token") == 0)
		return set_field(&st->session_token, value, st);
	return 1;
}

static void state_clear(struct ini_state *st)
{
	wipe_free(st->access_key);
	wipe_free(st->secret_key);
	wipe_free(st->session_token);
	st->access_key = st->secret_key = st->session_token = NULL;
}

static int load_file(const char *file, const char *profile, struct s3_creds *out)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		log_err("credentials file %s: %s", file, strerror(e));
		return -e;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		log_err("credentials file %s: %s", file, strerror(e));
		close(fd);
		return -e;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_err("credentials file %s is not a regular file", file);
		close(fd);
		return -EINVAL;
	}
	/* Whoever can rewrite the file chooses the keys, and with them the
	 * bucket the data goes to: only its reader or root may own it. */
	if (sb.st_uid != geteuid() && sb.st_uid != 0) {
		log_err("credentials file %s is owned by uid %u: it must be owned by uid %u or root",
			file, (unsigned)sb.st_uid, (unsigned)geteuid());
		close(fd);
		return -EPERM;
	}
	if (sb.st_mode & 077) {
		log_err("credentials file %s has mode %04o: it must be 0600 (readable by its owner only)",
			file, (unsigned)(sb.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	/* Read into our own buffer so the secret can be wiped afterwards (a
	 * FILE's buffer would be freed with the secret in it). */
	enum { MAX_FILE = 1 << 20 };
	if (sb.st_size > MAX_FILE) {
		log_err("credentials file %s is larger than 1 MiB", file);
		close(fd);
		return -EFBIG;
	}
	size_t cap = (size_t)sb.st_size + 1, len = 0;
	char *text = malloc(cap);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			log_err("credentials file %s: %s", file, strerror(e));
			explicit_bzero(text, len);
			free(text);
			close(fd);
			return -e;
		}
		if (n == 0 || (len += (size_t)n) == cap - 1)
			break;
	}
	close(fd);
	text[len] = '\0';
	struct ini_state st = {.profile = profile};
	int line = ini_parse_string(text, on_ini, &st);
	explicit_bzero(text, len);
	free(text);
	int rc = 0;
	if (st.oom) {
		rc = -ENOMEM;
	} else if (line < 0) {
		log_err("credentials file %s: cannot parse it (inih error %d)", file, line);
		rc = -EIO;
	} else if (line > 0) {
		log_err("credentials file %s: syntax error at line %d", file, line);
		rc = -EINVAL;
	} else if (!st.found_profile) {
		log_err("credentials file %s has no profile [%s]", file, profile);
		rc = -EINVAL;
	} else if (!st.access_key || !*st.access_key) {
		log_err("credentials file %s: profile [%s] has no aws_access_key_id", file, profile);
		rc = -EINVAL;
	} else if (!st.secret_key || !*st.secret_key) {
		log_err("credentials file %s: profile [%s] has no aws_secret_access_key", file, profile);
		rc = -EINVAL;
	}
	if (rc) {
		state_clear(&st);
		return rc;
	}
	if (st.session_token && !*st.session_token) {
		free(st.session_token);
		st.session_token = NULL;
	}
	out->access_key = st.access_key;
	out->secret_key = st.secret_key;
	out->session_token = st.session_token;
	return 0;
}

static int load_env(struct s3_creds *out)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN");
	if (!ak || !*ak || !sk || !*sk) {
		log_err("no credentials: give a credentials file or set AWS_ACCESS_KEY_ID and "
			"AWS_SECRET_ACCESS_KEY (%s is missing)",
			!ak || !*ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY");
		return -EINVAL;
	}
	out->access_key = strdup(ak);
	out->secret_key = strdup(sk);
	out->session_token = tok && *tok ? strdup(tok) : NULL;
	if (!out->access_key || !out->secret_key || (tok && *tok && !out->session_token)) {
		s3_creds_clear(out);
		return -ENOMEM;
	}
	return 0;
}

int s3_creds_load(const char *file, const char *profile, struct s3_creds *out)
{
	memset(out, 0, sizeof *out);
	if (file)
		return load_file(file, profile && *profile ? profile : "default", out);
	return load_env(out);
}

void s3_creds_clear(struct s3_creds *c)
{
	if (!c)
		return;
	wipe_free(c->access_key);
	wipe_free(c->secret_key);
	wipe_free(c->session_token);
	c->access_key = c->secret_key = c->session_token = NULL;
}
