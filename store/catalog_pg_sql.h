/* catalog_pg_sql.h - the PostgreSQL schema of the catalog and its write
 * functions; included by catalog_pg.c only.
 *
 * The same tables as the SQLite schema (catalog.c), plus objects.owner and
 * totals per owner. Paths and names compare byte-wise (COLLATE "C") so
 * that listings merge and subtree ranges ("a/" <= path < "a0") work the
 * same as on SQLite whatever the database's locale.
 *
 * Every write request is one call of a lzfs_w_* function. Each returns
 * (rc, id, ver, t, msg): rc 0 or a negative errno (expected failures never
 * raise, so they never abort the batch's transaction), the row id and
 * version made, t the request's change of the totals (n[0..6] then
 * bytes[0..4], as struct tally in catalog.c), and msg a reason to log.
 * No function uses an EXCEPTION block: each would open a subtransaction,
 * and past 64 of them in a transaction every snapshot in the cluster gets
 * slower. Races with other hosts are settled by the unique indexes: an
 * insert that conflicts waits for the other transaction, then sees its row
 * (READ COMMITTED takes a snapshot per statement) and tries again.
 */
#ifndef LZFS_CATALOG_PG_SQL_H
#define LZFS_CATALOG_PG_SQL_H

#define PG_SCHEMA_VERSION 2

/* The tables and the functions version 1 created; pg_fn_obj_add and
 * pg_fn_rename (below) complete a new schema. */
static const char pg_schema_v1[] =
    "CREATE TABLE lzfs_catalog(name text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE collections("
    " id bigserial PRIMARY KEY,"
    " path text COLLATE \"C\" NOT NULL UNIQUE,"
    " parent_id bigint REFERENCES collections(id),"
    " mode bigint NOT NULL, uid bigint NOT NULL, gid bigint NOT NULL,"
    " mtime_ns bigint NOT NULL, ctime_ns bigint NOT NULL);"
    "CREATE INDEX collections_parent ON collections(parent_id, path);"
    "CREATE TABLE objects("
    " id bigserial PRIMARY KEY,"
    " path text COLLATE \"C\" NOT NULL,"
    " version integer NOT NULL CHECK(version >= 1),"
    " coll_id bigint REFERENCES collections(id) ON DELETE SET NULL,"
    " bucket text NOT NULL, key text COLLATE \"C\" NOT NULL,"
    " size bigint NOT NULL DEFAULT 0,"
    " mode bigint NOT NULL, uid bigint NOT NULL, gid bigint NOT NULL,"
    " mtime_ns bigint NOT NULL, ctime_ns bigint NOT NULL,"
    " ingest_ns bigint NOT NULL DEFAULT 0,"
    " sha256 text NOT NULL DEFAULT '', etag text NOT NULL DEFAULT '',"
    " source text NOT NULL DEFAULT '',"
    " state smallint NOT NULL CHECK(state BETWEEN 0 AND 4),"
    " upload_id text, parts_done integer NOT NULL DEFAULT 0, last_error text,"
    " current smallint NOT NULL DEFAULT 0"
    "  CHECK(current IN (0, 1) AND NOT (current = 1 AND state = 4)),"
    " symlink text,"
    " owner text NOT NULL DEFAULT '',"
    " UNIQUE(path, version));"
    /* Exactly one current version per path, across every host. */
    "CREATE UNIQUE INDEX objects_current ON objects(path) WHERE current = 1;"
    /* Listing (coll_id, current = 1, by path) and the foreign key's
     * ON DELETE SET NULL when a collection goes. */
    "CREATE INDEX objects_coll ON objects(coll_id, current, path);"
    /* No index on key: no query looks rows up by key (SQLite's schema has
     * one; here it would cost a tenth of the catalog's size). */
    /* Small: the bulk of a catalog is ingested. */
    "CREATE INDEX objects_state ON objects(state, id) WHERE state <> 2;"
    "CREATE INDEX objects_unfinished ON objects(owner, id) WHERE state IN (0, 1) AND current = 1;"
    "CREATE TABLE parts("
    " obj_id bigint NOT NULL REFERENCES objects(id),"
    " number integer NOT NULL CHECK(number BETWEEN 1 AND 10000),"
    " etag text NOT NULL, size bigint NOT NULL,"
    " PRIMARY KEY(obj_id, number));"
    "CREATE TABLE meta("
    " id bigserial PRIMARY KEY,"
    " kind smallint NOT NULL CHECK(kind IN (0, 1)),"
    " target bigint NOT NULL,"
    " name text COLLATE \"C\" NOT NULL, value text NOT NULL, unit text,"
    " UNIQUE(kind, target, name));"
    "CREATE INDEX meta_name ON meta(name, value);"
    "CREATE TABLE events("
    " id bigserial PRIMARY KEY,"
    " time_ns bigint NOT NULL,"
    " obj_id bigint,"
    " path text COLLATE \"C\","
    " kind text NOT NULL,"
    " detail text);"
    "CREATE INDEX events_obj ON events(obj_id) WHERE obj_id IS NOT NULL;"
    "CREATE INDEX events_path ON events(path) WHERE obj_id IS NULL;"
    /* k as in catalog.c; one row per (owner, k), so hosts never wait on
     * each other's counters. */
    "CREATE TABLE totals(owner text NOT NULL, k integer NOT NULL CHECK(k BETWEEN 0 AND 6),"
    " n bigint NOT NULL DEFAULT 0, bytes bigint NOT NULL DEFAULT 0, PRIMARY KEY(owner, k));"
    "CREATE TABLE jobs("
    " name text PRIMARY KEY,"
    " source text NOT NULL, target text NOT NULL,"
    " args text NOT NULL DEFAULT '',"
    " interval bigint NOT NULL DEFAULT 0,"
    " state text NOT NULL,"
    " stop integer NOT NULL DEFAULT 0,"
    " created_ns bigint NOT NULL, started_ns bigint NOT NULL DEFAULT 0,"
    " finished_ns bigint NOT NULL DEFAULT 0, next_ns bigint NOT NULL DEFAULT 0,"
    " heartbeat_ns bigint NOT NULL DEFAULT 0, runner text,"
    " runs bigint NOT NULL DEFAULT 0,"
    " files_total bigint NOT NULL DEFAULT 0, files_done bigint NOT NULL DEFAULT 0,"
    " bytes_total bigint NOT NULL DEFAULT 0, bytes_done bigint NOT NULL DEFAULT 0,"
    " files_failed bigint NOT NULL DEFAULT 0, files_skipped bigint NOT NULL DEFAULT 0,"
    " last_error text, summary text);"
    "CREATE FUNCTION lzfs_no_change() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN RAISE EXCEPTION '% rows are never %', TG_TABLE_NAME, lower(TG_OP); END $$;"
    "CREATE TRIGGER objects_no_delete BEFORE DELETE ON objects"
    " FOR EACH ROW EXECUTE FUNCTION lzfs_no_change();"
    "CREATE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON events"
    " FOR EACH ROW EXECUTE FUNCTION lzfs_no_change();"

    /* t[1..7]: rows per class (n), t[8..12]: bytes (see tally() in catalog.c). */
    "CREATE FUNCTION lzfs_tally(t bigint[], st int, cur int, sz bigint, sgn int)"
    " RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN"
    "  IF cur = 1 THEN t[st + 1] := t[st + 1] + sgn; t[st + 8] := t[st + 8] + sgn * sz; END IF;"
    "  IF st = 4 THEN t[6] := t[6] + sgn; END IF;"
    "  RETURN t; END $$;"

    "CREATE FUNCTION lzfs_parent(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $$"
    " SELECT CASE WHEN strpos(p, '/') = 0 THEN '' ELSE"
    "  left(p, length(p) - strpos(reverse(p), '/')) END $$;"

    /* mkdir -p. rc: 0, -EPROTO (no root), -ENOTDIR (an object there). */
    "CREATE FUNCTION lzfs_coll_ensure(p text, m bigint, u bigint, g bigint, now bigint,"
    " OUT rc int, OUT cid bigint) LANGUAGE plpgsql AS $$"
    " DECLARE prc int; pid bigint; BEGIN"
    "  rc := 0;"
    "  SELECT id INTO cid FROM collections WHERE path = p;"
    "  IF cid IS NOT NULL THEN RETURN; END IF;"
    "  IF p = '' THEN rc := -71; RETURN; END IF;"
    "  IF EXISTS(SELECT 1 FROM objects WHERE path = p AND current = 1) THEN"
    "   rc := -20; RETURN; END IF;"
    "  SELECT f.rc, f.cid INTO prc, pid FROM lzfs_coll_ensure(lzfs_parent(p), m, u, g, now) f;"
    "  IF prc <> 0 THEN rc := prc; RETURN; END IF;"
    "  INSERT INTO collections(path, parent_id, mode, uid, gid, mtime_ns, ctime_ns)"
    "   VALUES(p, pid, CASE WHEN m & 61440 <> 0 THEN m ELSE m | 16384 END, u, g, now, now)"
    "   ON CONFLICT (path) DO NOTHING RETURNING id INTO cid;"
    "  IF cid IS NULL THEN" /* another host made it meanwhile */
    "   SELECT id INTO cid FROM collections WHERE path = p; RETURN; END IF;"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(now, NULL, p, 'mkdir', NULL);"
    " END $$;"

    /* The highest live version of p becomes current (its current one went). */
    "CREATE FUNCTION lzfs_promote(p text, gone bigint, now bigint, t bigint[])"
    " RETURNS bigint[] LANGUAGE plpgsql AS $$"
    " DECLARE cand bigint; pid bigint; pv int; pst int; psz bigint; BEGIN"
    /* The candidate may be deleted by another host meanwhile: the UPDATE
     * rechecks it once its lock is free, and then the next one is tried. */
    "  LOOP"
    "   SELECT id INTO cand FROM objects WHERE path = p AND state <> 4"
    "    ORDER BY version DESC LIMIT 1;"
    "   IF cand IS NULL THEN RETURN t; END IF;"
    "   UPDATE objects SET current = 1 WHERE id = cand AND current = 0 AND state <> 4"
    "    RETURNING id, version, state, size INTO pid, pv, pst, psz;"
    "   EXIT WHEN pid IS NOT NULL;"
    "   IF EXISTS(SELECT 1 FROM objects WHERE path = p AND current = 1) THEN RETURN t; END IF;"
    "  END LOOP;"
    "  t := lzfs_tally(t, pst, 0, psz, -1); t := lzfs_tally(t, pst, 1, psz, 1);"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(now, pid, p, 'current',"
    "   format('version %s is current again (object %s gone)', pv, gone));"
    "  RETURN t; END $$;"

    "CREATE FUNCTION lzfs_w_coll_ensure(p text, m bigint, u bigint, g bigint, now bigint,"
    " OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
    " LANGUAGE plpgsql AS $$ BEGIN"
    "  SELECT f.rc, f.cid INTO rc, id FROM lzfs_coll_ensure(p, m, u, g, now) f;"
    "  IF rc = -20 THEN msg := 'cannot create collection ' || p || ': an object has that path';"
    "  END IF; END $$;"

    "CREATE FUNCTION lzfs_w_coll_remove(p text, now bigint,"
    " OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
    " LANGUAGE plpgsql AS $$ DECLARE cid bigint; BEGIN"
    "  rc := 0;"
    "  SELECT c.id INTO cid FROM collections c WHERE c.path = p FOR UPDATE;"
    "  IF cid IS NULL THEN rc := -2; RETURN; END IF;"
    "  IF EXISTS(SELECT 1 FROM collections WHERE parent_id = cid)"
    "   OR EXISTS(SELECT 1 FROM objects WHERE coll_id = cid AND current = 1) THEN"
    "   rc := -39; RETURN; END IF;"
    "  DELETE FROM meta WHERE kind = 1 AND target = cid;"
    "  DELETE FROM collections WHERE collections.id = cid;"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(now, NULL, p, 'rmdir', NULL);"
    " END $$;"

    /* to: the new state; s1: upload id, sha256, error or reason; s2: etag. */
    "CREATE FUNCTION lzfs_w_transition(oid bigint, tost int, s1 text, s2 text, n1 bigint,"
    " now bigint, OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
    " LANGUAGE plpgsql AS $$"
    " DECLARE r record; kind text; detail text; ok boolean; BEGIN"
    "  rc := 0; t := '{0,0,0,0,0,0,0,0,0,0,0,0}';"
    "  SELECT o.state, o.path, o.current, o.version, o.size INTO r FROM objects o"
    "   WHERE o.id = oid FOR UPDATE;"
    "  IF NOT FOUND THEN rc := -2; msg := 'no object with id ' || oid; RETURN; END IF;"
    "  ok := CASE r.state WHEN 0 THEN tost IN (1, 3, 4) WHEN 1 THEN tost IN (0, 2, 3, 4)"
    "   WHEN 2 THEN tost = 4 WHEN 3 THEN tost IN (0, 4) ELSE false END;"
    "  IF NOT ok THEN rc := -22;"
    "   msg := format('object %s (%s v%s): illegal transition %s -> %s refused', oid, r.path,"
    "    r.version, (ARRAY['pending','uploading','ingested','failed','deleted'])[r.state + 1],"
    "    (ARRAY['pending','uploading','ingested','failed','deleted'])[tost + 1]);"
    "   RETURN; END IF;"
    "  IF tost = 1 THEN"
    "   UPDATE objects SET state = 1, upload_id = s1, parts_done = 0 WHERE objects.id = oid;"
    "   kind := 'uploading'; detail := coalesce(s1, 'single put');"
    "  ELSIF tost = 2 THEN"
    "   UPDATE objects SET state = 2, size = n1, sha256 = coalesce(s1, ''),"
    "    etag = coalesce(s2, ''), ingest_ns = now, upload_id = NULL, last_error = NULL"
    "    WHERE objects.id = oid;"
    "   kind := 'ingested';"
    "   detail := format('%s bytes, etag %s', n1, CASE WHEN coalesce(s2, '') <> '' THEN s2"
    "    ELSE '-' END);"
    "  ELSIF tost = 3 THEN"
    "   UPDATE objects SET state = 3, last_error = coalesce(s1, 'unknown error')"
    "    WHERE objects.id = oid;"
    "   kind := 'failed'; detail := coalesce(s1, 'unknown error');"
    "  ELSIF tost = 0 THEN"
    "   UPDATE objects SET state = 0, upload_id = NULL, parts_done = 0, last_error = NULL"
    "    WHERE objects.id = oid;"
    "   kind := CASE WHEN r.state = 1 THEN 'restart' ELSE 'retry' END; detail := s1;"
    "  ELSE"
    "   UPDATE objects SET state = 4, current = 0 WHERE objects.id = oid;"
    "   kind := 'deleted'; detail := s1;"
    "  END IF;"
    "  t := lzfs_tally(t, r.state, r.current, r.size, -1);"
    "  t := lzfs_tally(t, tost, CASE WHEN tost = 4 THEN 0 ELSE r.current END,"
    "   CASE WHEN tost = 2 THEN n1 ELSE r.size END, 1);"
    "  IF tost IN (0, 2, 4) THEN DELETE FROM parts WHERE obj_id = oid; END IF;"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(now, oid, NULL, kind, detail);"
    "  IF tost = 4 AND r.current = 1 THEN t := lzfs_promote(r.path, oid, now, t); END IF;"
    " END $$;"

    "CREATE FUNCTION lzfs_w_part_done(oid bigint, num int, et text, sz bigint,"
    " OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
    " LANGUAGE plpgsql AS $$ DECLARE st int; BEGIN"
    "  rc := 0;"
    "  SELECT o.state INTO st FROM objects o WHERE o.id = oid FOR UPDATE;"
    "  IF st IS NULL THEN rc := -2; msg := 'no object with id ' || oid; RETURN; END IF;"
    "  IF st <> 1 THEN rc := -22; msg := format('object %s: part %s reported while %s; refused',"
    "   oid, num, (ARRAY['pending','uploading','ingested','failed','deleted'])[st + 1]);"
    "   RETURN; END IF;"
    "  INSERT INTO parts(obj_id, number, etag, size) VALUES(oid, num, et, sz)"
    "   ON CONFLICT (obj_id, number) DO UPDATE SET etag = excluded.etag, size = excluded.size;"
    "  UPDATE objects SET parts_done = (SELECT count(*) FROM parts WHERE obj_id = oid)"
    "   WHERE objects.id = oid;"
    " END $$;"

    "CREATE FUNCTION lzfs_w_set_attr(oid bigint, m bigint, u bigint, g bigint, mt bigint,"
    " detail text, now bigint,"
    " OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
    " LANGUAGE plpgsql AS $$ BEGIN"
    "  rc := 0;"
    "  UPDATE objects SET mode = m, uid = u, gid = g, mtime_ns = mt WHERE objects.id = oid;"
    "  IF NOT FOUND THEN rc := -2; msg := 'no object with id ' || oid; RETURN; END IF;"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(now, oid, NULL, 'attr', detail);"
    " END $$;"

    "CREATE FUNCTION lzfs_w_meta(p text, nm text, val text, un text, setting boolean, now bigint,"
    " OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
    " LANGUAGE plpgsql AS $$ DECLARE kd int := 0; tid bigint; detail text; BEGIN"
    "  rc := 0;"
    "  IF p <> '' THEN SELECT o.id INTO tid FROM objects o WHERE o.path = p AND o.current = 1;"
    "  END IF;"
    "  IF tid IS NULL THEN kd := 1; SELECT c.id INTO tid FROM collections c WHERE c.path = p;"
    "  END IF;"
    "  IF tid IS NULL THEN rc := -2; RETURN; END IF;"
    "  IF setting THEN"
    "   INSERT INTO meta(kind, target, name, value, unit) VALUES(kd, tid, nm, val, un)"
    "    ON CONFLICT (kind, target, name) DO UPDATE SET value = excluded.value,"
    "    unit = excluded.unit;"
    "   detail := nm || ' = ' || val || CASE WHEN un IS NOT NULL THEN ' ' || un ELSE '' END;"
    "  ELSE"
    "   DELETE FROM meta WHERE kind = kd AND target = tid AND name = nm;"
    "   IF NOT FOUND THEN rc := -2; RETURN; END IF;"
    "   detail := nm;"
    "  END IF;"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(now,"
    "   CASE WHEN kd = 0 THEN tid END, CASE WHEN kd = 1 THEN p END,"
    "   CASE WHEN setting THEN 'meta-set' ELSE 'meta-rm' END, detail);"
    " END $$;"

    "CREATE FUNCTION lzfs_w_event(oid bigint, p text, kd text, detail text, now bigint,"
    " OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
    " LANGUAGE plpgsql AS $$ BEGIN"
    "  rc := 0;"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail)"
    "   VALUES(now, CASE WHEN oid > 0 THEN oid END, p, kd, detail);"
    " END $$;";

/* Schema version 2: the functions that keep one host's in-flight version of
 * a path from being overwritten in S3 by another host (docs/design.md,
 * "Several landing hosts"). An add or a rename onto a path with a row in
 * state pending or uploading of ANOTHER owner is refused with -EBUSY
 * (16) and the other owner named in msg: that owner is uploading to the
 * path's key, and a second upload would replace its bytes under its row.
 * The same owner may add versions as before (one host settles its own
 * versions in order). Created with the schema, and by the migration from
 * version 1 (CREATE OR REPLACE). */
#define PG_BUSY_PROBE                                                                          \
	"   max(CASE WHEN o.state IN (0, 1) AND o.owner <> own THEN o.id END)"
#define PG_BUSY_MSG                                                                            \
	"   SELECT format('%s is being written by %s (object %s, version %s, %s); refused until "  \
	"that version is ingested or failed', o.path, CASE WHEN o.owner = '' THEN '?' ELSE "   \
	"o.owner END, o.id, o.version, CASE WHEN o.state = 0 THEN 'pending' ELSE 'uploading' " \
	"END) INTO msg FROM objects o WHERE o.id = busy;"

/* The hot path, so written for few statements: one probe (is p a
 * collection, the parent's id, the highest version, the current row,
 * another owner's unfinished row), the insert, the events in one
 * statement. par is p's parent (the caller splits the path). */
static const char pg_fn_obj_add[] =
    "CREATE OR REPLACE FUNCTION lzfs_w_obj_add(p text, par text, bkt text, k text, sz bigint,"
    " m bigint, u bigint, g bigint, mt bigint, src text, sym text, ing boolean, sha text,"
    " et text, own text, now bigint, OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[],"
    " OUT msg text) LANGUAGE plpgsql AS $$"
    " DECLARE isc bigint; cid bigint; crc int; maxv int; prev bigint; st int; psz bigint;"
    "  busy bigint; demoted boolean := false;"
    "  tries int := 0; oid bigint; ns int := CASE WHEN ing THEN 2 ELSE 0 END; BEGIN"
    "  rc := 0; t := '{0,0,0,0,0,0,0,0,0,0,0,0}';"
    "  SELECT (SELECT c.id FROM collections c WHERE c.path = p),"
    "   (SELECT c.id FROM collections c WHERE c.path = par),"
    "   max(o.version), max(CASE WHEN o.current = 1 THEN o.id END),"
    PG_BUSY_PROBE
    "   INTO isc, cid, maxv, prev, busy FROM objects o WHERE o.path = p;"
    "  IF isc IS NOT NULL THEN rc := -21; RETURN; END IF;"
    "  IF busy IS NOT NULL THEN rc := -16;"
    PG_BUSY_MSG
    "   RETURN; END IF;"
    "  IF cid IS NULL THEN"
    "   SELECT f.rc, f.cid INTO crc, cid FROM lzfs_coll_ensure(par, 16877, u, g, now) f;"
    "   IF crc <> 0 THEN rc := crc; RETURN; END IF;"
    "  END IF;"
    "  LOOP"
    "   IF tries > 0 THEN"
    "    SELECT max(o.version), max(CASE WHEN o.current = 1 THEN o.id END),"
    PG_BUSY_PROBE
    "     INTO maxv, prev, busy FROM objects o WHERE o.path = p;"
    /* Another host's version got in first and is still unfinished. Returned
     * when nothing was changed yet; after a demotion, raised so that the
     * whole batch runs again (and then returns -EBUSY at the first probe). */
    "    IF busy IS NOT NULL THEN"
    "     IF demoted THEN RAISE EXCEPTION 'lost a race registering %', p"
    "      USING ERRCODE = '40001'; END IF;"
    "     rc := -16;"
    PG_BUSY_MSG
    "     RETURN; END IF;"
    "   END IF;"
    "   IF prev IS NOT NULL THEN"
    /* A current row leaves its state's count (never state 4: not current). */
    "    UPDATE objects o SET current = 0 WHERE o.id = prev AND o.current = 1"
    "     RETURNING o.state, o.size INTO st, psz;"
    "    IF FOUND THEN t[st + 1] := t[st + 1] - 1; t[st + 8] := t[st + 8] - psz;"
    "     demoted := true; END IF;"
    "   END IF;"
    "   ver := coalesce(maxv, 0) + 1;"
    "   INSERT INTO objects(path, version, coll_id, bucket, key, size, mode, uid, gid,"
    "    mtime_ns, ctime_ns, source, state, symlink, current, sha256, etag, ingest_ns, owner)"
    "    VALUES(p, ver, cid, bkt, k, sz, m, u, g, mt, now, src, ns, sym, 1,"
    "    CASE WHEN ing THEN sha ELSE '' END, CASE WHEN ing THEN et ELSE '' END,"
    "    CASE WHEN ing THEN now ELSE 0 END, own)"
    "    ON CONFLICT DO NOTHING RETURNING objects.id INTO oid;"
    "   EXIT WHEN oid IS NOT NULL;"
    /* Another host registered the path first: now committed and visible.
     * Raised, not returned: the demotion above must not commit alone. */
    "   tries := tries + 1;"
    "   IF tries >= 50 THEN RAISE EXCEPTION 'lost 50 races registering %', p"
    "    USING ERRCODE = '40001'; END IF;"
    "  END LOOP;"
    "  id := oid;"
    "  t[ns + 1] := t[ns + 1] + 1; t[ns + 8] := t[ns + 8] + sz; t[7] := t[7] + 1;"
    "  IF prev IS NOT NULL THEN"
    "   INSERT INTO meta(kind, target, name, value, unit)"
    "    SELECT 0, oid, x.name, x.value, x.unit FROM meta x WHERE x.kind = 0 AND x.target = prev;"
    "  END IF;"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail) SELECT now, oid, e.p, e.k, e.d"
    "   FROM (VALUES (1, p, 'add', 'version ' || ver || ', ' || sz || ' bytes' ||"
    "    CASE WHEN src <> '' THEN ', source ' || src ELSE '' END),"
    "    (2, NULL, 'ingested', sz || ' bytes, etag ' || CASE WHEN et <> '' THEN et ELSE '-' END))"
    "   AS e(n, p, k, d) WHERE e.n = 1 OR ing ORDER BY e.n;"
    " END $$;";

/* own: the renaming host; a rename onto a path another host is writing
 * would move bytes onto the key it is uploading to. */
static const char pg_fn_rename[] =
    "CREATE OR REPLACE FUNCTION lzfs_w_rename(oid bigint, dst text, nkey text, now bigint,"
    " own text, OUT rc int, OUT id bigint, OUT ver int, OUT t bigint[], OUT msg text)"
    " LANGUAGE plpgsql AS $$"
    " DECLARE r record; detail text; cid bigint; crc int; maxv int; prev bigint; st int;"
    "  psz bigint; busy bigint; BEGIN"
    "  rc := 0; t := '{0,0,0,0,0,0,0,0,0,0,0,0}';"
    "  SELECT o.state, o.path, o.current, o.version, o.size INTO r FROM objects o"
    "   WHERE o.id = oid FOR UPDATE;"
    "  IF NOT FOUND THEN rc := -2; msg := 'no object with id ' || oid; RETURN; END IF;"
    "  IF r.state = 4 THEN rc := -22;"
    "   msg := format('object %s (%s): cannot rename a deleted version', oid, r.path); RETURN;"
    "  END IF;"
    "  detail := r.path || ' -> ' || dst || CASE WHEN nkey IS NOT NULL THEN ', key ' || nkey"
    "   ELSE '' END;"
    "  IF r.path = dst THEN"
    "   UPDATE objects SET key = coalesce(nkey, key) WHERE objects.id = oid;"
    "   INSERT INTO events(time_ns, obj_id, path, kind, detail)"
    "    VALUES(now, oid, dst, 'rename', detail);"
    "   RETURN; END IF;"
    "  IF EXISTS(SELECT 1 FROM collections c WHERE c.path = dst) THEN rc := -21; RETURN; END IF;"
    "  SELECT max(o.id) INTO busy FROM objects o WHERE o.path = dst AND o.state IN (0, 1)"
    "   AND o.owner <> own;"
    "  IF busy IS NOT NULL THEN rc := -16;"
    PG_BUSY_MSG
    "   RETURN; END IF;"
    "  SELECT f.rc, f.cid INTO crc, cid FROM lzfs_coll_ensure(lzfs_parent(dst), 16877, 0, 0, now) f;"
    "  IF crc <> 0 THEN rc := crc; RETURN; END IF;"
    "  SELECT max(o.version), max(CASE WHEN o.current = 1 THEN o.id END) INTO maxv, prev"
    "   FROM objects o WHERE o.path = dst;"
    "  IF prev IS NOT NULL THEN"
    "   UPDATE objects o SET current = 0 WHERE o.id = prev AND o.current = 1"
    "    RETURNING o.state, o.size INTO st, psz;"
    "   IF FOUND THEN t := lzfs_tally(t, st, 1, psz, -1); t := lzfs_tally(t, st, 0, psz, 1);"
    "   END IF;"
    "   INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(now, prev, dst,"
    "    'superseded', format('replaced by object %s (rename)', oid));"
    "  END IF;"
    "  ver := coalesce(maxv, 0) + 1;"
    "  UPDATE objects SET path = dst, version = ver, key = coalesce(nkey, key), coll_id = cid,"
    "   current = 1 WHERE objects.id = oid;"
    "  t := lzfs_tally(t, r.state, r.current, r.size, -1);"
    "  t := lzfs_tally(t, r.state, 1, r.size, 1);"
    "  INSERT INTO events(time_ns, obj_id, path, kind, detail) VALUES(now, oid, dst, 'rename',"
    "   detail);"
    "  IF r.current = 1 THEN t := lzfs_promote(r.path, oid, now, t); END IF;"
    " END $$;";

/* From version 1: the two functions above (rename gained `own`). */
static const char pg_migrate_v2[] =
    "DROP FUNCTION IF EXISTS lzfs_w_rename(bigint, text, text, bigint);";

#endif
