/* lzfsctl - inspect and annotate the lzfs catalog.
 *
 * Global options come before the command; each command parses its own.
 * Commands live in ingest/ctl_*.c and are listed in `commands` below.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "ctl.h"
#include "log.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv, const struct ctl_opts *o);
	const char *summary; /* NULL: not listed in --help */
};

static const struct command commands[] = {
	{"ls", ctl_ls, "[-l] [-h] [--versions] [PATH]   list a collection"},
	{"stat", ctl_stat, "[--version N] PATH              one object or collection in full"},
	{"find", ctl_find, "[OPTIONS] [PATH]                search by name, state, size, time, metadata"},
	{"meta", ctl_meta, "set|rm|ls PATH ...              user metadata"},
	{"events", ctl_events, "[--limit N] [PATH]            the audit log"},
	{"status", ctl_status, "                              counts per state, bytes, oldest pending"},
	{"check", ctl_check, "                               verify the catalog file"},
	{"scan", ctl_scan, "[OPTIONS] SOURCE_DIR s3://BUCKET[/PREFIX]   ingest a tree (or register)"},
	{"job", ctl_job, "start|list|stop|watch|rm ...     scan jobs run by the daemon"},
	{"get", ctl_get, "[--version N] PATH DEST          download an object from S3, checked"},
	{"verify", ctl_verify, "[--jobs N] PATH...|--all         re-read objects from S3, compare SHA-256"},
	{"debug-add", ctl_debug_add, NULL},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lzfsctl [-c CATALOG] [--json] [-v] COMMAND [ARGS]\n"
		   "\n"
		   "Inspects the lzfs catalog. Commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (commands[i].summary)
			fprintf(f, "  %-10s%s\n", commands[i].name, commands[i].summary);
	fprintf(f, "  (debug-add PATH KEY SIZE STATE registers a test object; for tests only)\n"
		   "\n"
		   "Options:\n"
		   "  -c, --catalog FILE  the catalog (default: $LZFS_CATALOG, else\n"
		   "                      " CTL_DEFAULT_CATALOG ")\n"
		   "  --json              machine-readable output: one JSON value; names that are\n"
		   "                      not valid UTF-8 carry their bytes as \\udcXX escapes\n"
		   "  -v, --verbose       also the catalog's warnings\n"
		   "  --help              this text; COMMAND --help for a command's options\n"
		   "\n"
		   "Paths are relative to the mount root. Human output escapes control bytes\n"
		   "and invalid UTF-8 in names (\\n, \\t, \\\\, \\xHH).\n"
		   "Read commands open the catalog read-only and may run while lzfs writes it.\n"
		   "\n"
		   "Exit status: 0 success; 1 not found or no match; 2 usage error;\n"
		   "3 catalog error (missing, not a catalog, corrupt, locked);\n"
		   "get/verify: 4 an object in S3 differs from the catalog or is missing,\n"
		   "5 S3 could not be read.\n");
}

int main(int argc, char **argv)
{
	struct ctl_opts o = {0};
	o.catalog = getenv("LZFS_CATALOG");
	if (!o.catalog || !*o.catalog)
		o.catalog = CTL_DEFAULT_CATALOG;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--catalog") == 0) {
			if (++i == argc) {
				fprintf(stderr, "lzfsctl: %s needs a file\n", a);
				return CTL_USAGE;
			}
			o.catalog = argv[i];
		} else if (strncmp(a, "--catalog=", 10) == 0) {
			o.catalog = a + 10;
		} else if (strcmp(a, "--json") == 0) {
			o.json = 1;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			o.verbose = 1;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return CTL_OK;
		} else {
			fprintf(stderr, "lzfsctl: unknown option %s\n", a);
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (i == argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	static char shown[1024];
	o.catalog_name = cat_redact(o.catalog, shown, sizeof shown);
	/* The catalog's own messages name the file and the reason. */
	log_init("lzfsctl", o.verbose ? LZ_DEBUG : LZ_ERR, 0);
	if (strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return CTL_OK;
	}
	for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
		if (strcmp(argv[i], commands[k].name) == 0) {
			int rc = commands[k].run(argc - i, argv + i, &o);
			if (fflush(stdout) != 0) {
				perror("lzfsctl: stdout");
				return CTL_ERROR;
			}
			return rc;
		}
	fprintf(stderr, "lzfsctl: unknown command '%s' (lzfsctl --help lists them)\n", argv[i]);
	return CTL_USAGE;
}
