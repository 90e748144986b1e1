/* mpulog.c - see mpulog.h. The file is small (one line per upload in
 * flight), so removals rewrite it whole: write a temporary file, fsync,
 * rename. Lines are "ID KEY\n" with both fields percent-encoded, since keys
 * may hold any byte but NUL. */
#include "mpulog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct ent {
	struct ent *next;
	char *key, *id;
	const void *owner;
};

struct mpl {
	char *file;
	pthread_mutex_t mu;
	struct ent *head;
	int n;
};

static char *enc(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = malloc(strlen(s) * 3 + 1), *p = o;
	if (!o)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c > 0x20 && c < 0x7f && c != '%') {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return o;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static char *dec(const char *s, size_t len)
{
	char *o = malloc(len + 1), *p = o;
	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
			*p++ = (char)(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
			i += 2;
		} else {
			*p++ = s[i];
		}
	}
	*p = '\0';
	return o;
}

static int add_mem(struct mpl *m, const char *key, const char *id, const void *owner)
{
	struct ent *e = calloc(1, sizeof *e);
	if (!e || !(e->key = strdup(key)) || !(e->id = strdup(id))) {
		if (e)
			free(e->key);
		free(e);
		return -ENOMEM;
	}
	e->owner = owner;
	e->next = m->head;
	m->head = e;
	m->n++;
	return 0;
}

static int write_line(int fd, const char *key, const char *id)
{
	char *k = enc(key), *i = enc(id), *line = NULL;
	int rc = 0;
	if (!k || !i || asprintf(&line, "%s %s\n", i, k) < 0)
		rc = -ENOMEM;
	else if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		rc = -errno ? -errno : -EIO;
	free(line);
	free(k);
	free(i);
	return rc;
}

int mpl_open(const char *file, struct mpl **out)
{
	struct mpl *m = calloc(1, sizeof *m);
	if (!m || !(m->file = strdup(file))) {
		free(m);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->mu, NULL);
	FILE *f = fopen(file, "re");
	if (f) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;
		while ((len = getline(&line, &cap, f)) > 0) {
			char *sp = memchr(line, ' ', (size_t)len);
			if (!sp || line[len - 1] != '\n')
				continue; /* a torn last line from a crash */
			char *id = dec(line, (size_t)(sp - line));
			char *key = dec(sp + 1, (size_t)(line + len - 1 - (sp + 1)));
			if (id && key && *id && *key)
				add_mem(m, key, id, NULL);
			free(id);
			free(key);
		}
		free(line);
		fclose(f);
	} else if (errno != ENOENT) {
		int e = errno;
		log_err("upload journal %s: %s", file, strerror(e));
		free(m->file);
		free(m);
		return -e;
	}
	*out = m;
	return 0;
}

void mpl_close(struct mpl *m)
{
	if (!m)
		return;
	while (m->head) {
		struct ent *e = m->head;
		m->head = e->next;
		free(e->key);
		free(e->id);
		free(e);
	}
	pthread_mutex_destroy(&m->mu);
	free(m->file);
	free(m);
}

int mpl_add(struct mpl *m, const char *key, const char *upload_id, const void *owner)
{
	pthread_mutex_lock(&m->mu);
	int rc = add_mem(m, key, upload_id, owner);
	if (rc == 0) {
		int fd = open(m->file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		rc = fd < 0 ? -errno : write_line(fd, key, upload_id);
		if (fd >= 0)
			close(fd);
		if (rc < 0)
			log_warn("upload journal %s: cannot record upload %s of %s (%s)", m->file,
				 upload_id, key, strerror(-rc));
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

/* Called with m->mu held. */
static int rewrite(struct mpl *m)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp", m->file) < 0)
		return -ENOMEM;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = fd < 0 ? -errno : 0;
	for (struct ent *e = m->head; rc == 0 && e; e = e->next)
		rc = write_line(fd, e->key, e->id);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && rename(tmp, m->file) < 0)
		rc = -errno;
	if (rc < 0) {
		log_warn("upload journal %s: rewrite failed (%s)", m->file, strerror(-rc));
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

static int remove_locked(struct mpl *m, const char *upload_id)
{
	for (struct ent **pp = &m->head; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, upload_id) == 0) {
			struct ent *e = *pp;
			*pp = e->next;
			free(e->key);
			free(e->id);
			free(e);
			m->n--;
			return 1;
		}
	}
	return 0;
}

int mpl_remove(struct mpl *m, const char *upload_id)
{
	pthread_mutex_lock(&m->mu);
	int rc = remove_locked(m, upload_id) ? rewrite(m) : 0;
	pthread_mutex_unlock(&m->mu);
	return rc;
}

int mpl_has(struct mpl *m, const char *upload_id)
{
	pthread_mutex_lock(&m->mu);
	int found = 0;
	for (struct ent *e = m->head; e && !found; e = e->next)
		found = strcmp(e->id, upload_id) == 0;
	pthread_mutex_unlock(&m->mu);
	return found;
}

int mpl_settle(struct mpl *m, const void *owner,
	       int (*cb)(const char *key, const char *upload_id, void *arg), void *arg)
{
	/* Snapshot the owner's entries, then call out without the lock: cb
	 * talks to S3. */
	struct ent *todo = NULL;
	pthread_mutex_lock(&m->mu);
	for (struct ent *e = m->head; e; e = e->next) {
		if (e->owner != owner)
			continue;
		e->owner = NULL;
		struct ent *c = calloc(1, sizeof *c);
		if (!c || !(c->key = strdup(e->key)) || !(c->id = strdup(e->id))) {
			if (c)
				free(c->key);
			free(c);
			continue;
		}
		c->next = todo;
		todo = c;
	}
	pthread_mutex_unlock(&m->mu);
	int changed = 0;
	while (todo) {
		struct ent *c = todo;
		todo = c->next;
		if (cb(c->key, c->id, arg)) {
			pthread_mutex_lock(&m->mu);
			changed |= remove_locked(m, c->id);
			pthread_mutex_unlock(&m->mu);
		}
		free(c->key);
		free(c->id);
		free(c);
	}
	if (changed) {
		pthread_mutex_lock(&m->mu);
		rewrite(m);
		pthread_mutex_unlock(&m->mu);
	}
	return 0;
}

int mpl_count(struct mpl *m)
{
	pthread_mutex_lock(&m->mu);
	int n = m->n;
	pthread_mutex_unlock(&m->mu);
	return n;
}
