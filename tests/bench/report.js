#!/usr/bin/env node
// Turns the raw results of tests/bench/run (peers.tsv, one row per run, and
// peers-meta.txt) into OUT/bench.md and the plots OUT/bench/peers-*.png.
//   node tests/bench/report.js RESULTS.tsv META.txt OUT
// Can be re-run on a partial results file. The prose around the tables
// (analysis, causes, proposals) lives in tests/bench/analysis.md and is
// copied in verbatim for a full run; a quick run says it is quick instead.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const [resultsFile, metaFile, outDir] = process.argv.slice(2);
if (!outDir) {
	console.error('usage: report.js RESULTS.tsv META.txt OUT');
	process.exit(2);
}
const plotDir = path.join(outDir, 'bench');
fs.mkdirSync(plotDir, { recursive: true });

const meta = {};
for (const line of fs.readFileSync(metaFile, 'utf8').split('\n')) {
	const i = line.indexOf('=');
	if (i > 0) meta[line.slice(0, i)] = line.slice(i + 1);
}
const quick = meta.mode === 'quick';

const lines = fs.readFileSync(resultsFile, 'utf8').split('\n').filter((l) => l.length);
const cols = lines.shift().split('\t');
const rows = lines.map((l) => {
	const f = l.split('\t');
	const r = {};
	cols.forEach((c, i) => (r[c] = f[i] === undefined ? '' : f[i]));
	return r;
});

const CLIENTS = ['lzfs', 'aws', 's3fs', 'rclone-writes', 'rclone-off', 'lzfs-spool'];
const LABEL = {
	lzfs: 'lzfs',
	aws: 'aws s3 cp',
	s3fs: 's3fs',
	'rclone-writes': 'rclone mount (writes)',
	'rclone-off': 'rclone mount (off)',
	'lzfs-spool': 'lzfs, spool copy present',
};
for (const r of rows) if (!CLIENTS.includes(r.client)) CLIENTS.push(r.client);
for (const c of CLIENTS) if (!LABEL[c]) LABEL[c] = c;
const WORKLOADS = ['big', 'eight', 'small', 'tree', 'read'];
const MiB = 1024 * 1024;

const median = (a) => {
	const s = [...a].sort((x, y) => x - y);
	const n = s.length;
	return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const num = (v) => (v === '' || v === undefined ? NaN : Number(v));

// Per workload and client: the runs, and median/min/max of each measure.
function stats(wl, client) {
	const runs = rows.filter((r) => r.workload === wl && r.client === client);
	if (!runs.length) return null;
	const ok = runs.filter((r) => r.status === 'ok');
	const m = (f) => {
		const v = ok.map(f).filter((x) => !Number.isNaN(x));
		return v.length ? { med: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length } : null;
	};
	const bytes = num(runs[0].bytes);
	const files = num(runs[0].files);
	return {
		runs,
		ok,
		bytes,
		files,
		status: ok.length ? 'ok' : runs[0].status,
		notes: [...new Set(runs.filter((r) => r.status !== 'ok').map((r) => `${r.status}: ${r.note}`))],
		close: m((r) => num(r.t_close)),
		durable: m((r) => num(r.t_durable)),
		c2d: m((r) => num(r.close_to_durable)),
		first: ok.filter((r) => r.first_ok === '1').length,
		mibs: m((r) => bytes / MiB / num(r.t_durable)),
		fps: m((r) => files / num(r.t_durable)),
		rss: m((r) => num(r.rss_kib) / 1024),
		cpu: m((r) => num(r.cpu_s)),
		srv: m((r) => num(r.server_cpu_s)),
	};
}

const fmt = (x, d) => {
	if (x === null || x === undefined || Number.isNaN(x)) return '';
	if (d === undefined) d = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
	return x.toFixed(d);
};
// "median (min–max)", or the single value for one run.
const cell = (s, d) => {
	if (!s) return '–';
	if (s.n === 1 || s.min === s.max) return fmt(s.med, d);
	return `${fmt(s.med, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`;
};
const ratio = (a, b) => (a && b && b.med > 0 ? fmt(a.med / b.med, 2) : '–');
// lzfs ÷ peer within each repetition (the runs of one repetition are minutes
// apart, the repetitions up to an hour, on a machine whose load drifts), then
// the median of those ratios, with their min–max.
function paired(wl, peer, field) {
	const get = (c) => Object.fromEntries(rows.filter((r) => r.workload === wl && r.client === c &&
		r.status === 'ok').map((r) => [r.rep, num(r[field])]));
	const a = get('lzfs'), b = get(peer);
	const v = Object.keys(a).filter((k) => k in b && b[k] > 0 && !Number.isNaN(a[k])).map((k) => a[k] / b[k]);
	if (!v.length) return '–';
	return cell({ med: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length }, 2);
}

const TITLE = {
	big: (b) => `One ${fmtSize(b)} file`,
	eight: (b, f) => `${f} concurrent files of ${fmtSize(b / f)} (${fmtSize(b)})`,
	small: (b, f) => `${f.toLocaleString('en-US')} files of 64 KiB (\`cp -r\` of one directory)`,
	tree: (b, f) => `A tree of ${f} files, ${fmtSize(b)} (\`cp -r\`)`,
	read: (b) => `Reading back a ${fmtSize(b)} object that is not cached locally`,
};
function fmtSize(b) {
	if (b >= 1024 * MiB) return `${fmt(b / 1024 / MiB, b % (1024 * MiB) ? 2 : 0)} GiB`;
	if (b >= MiB) return `${fmt(b / MiB, b % MiB ? 1 : 0)} MiB`;
	return `${fmt(b / 1024, 0)} KiB`;
}
const WHAT = {
	big: '`cp FILE MOUNT/` for the mounts, `aws s3 cp FILE s3://…` for awscli.',
	eight: '8 `cp` processes at once into the mount; `aws s3 cp --recursive` of the directory (awscli runs its 10 threads over the files).',
	small: 'One writer, one file after the other, as an instrument writes; files/s is files ÷ time until all are complete in S3.',
	tree: 'Directories with files of 4 KiB, 64 KiB, 512 KiB and 2 MiB in turn; `aws s3 cp --recursive` for awscli.',
	read: '`cp MOUNT/FILE LOCAL` from a freshly started mount (nothing cached in the daemon), `aws s3 cp s3://… LOCAL`; ' +
		'the copy is compared with the source after the timing. For lzfs the file was written through an lzfs mount whose ' +
		'retention removed its spool copy, then read through a fresh daemon on the same landing directory: from the ' +
		'catalog and S3, by ranged GETs in parallel (ingest/reader.c).',
};

const out = [];
const p = (s = '') => out.push(s);
p(quick ? '# Benchmark: lzfs and its peers — QUICK MODE' : '# Benchmark: lzfs and its peers');
p();
if (quick) {
	p('> **QUICK MODE** (`make bench QUICK=1`): small sizes, one repetition. A smoke test of the');
	p('> benchmark, not a result: the committed results are in docs/bench.md (`make bench`).');
	p();
}
p('Generated by `make bench` (tests/bench/run, tests/bench/report.js) — do not edit by hand;');
p('the analysis section comes from tests/bench/analysis.md. Raw data: [bench/peers.tsv](bench/peers.tsv),');
p('[bench/peers-meta.txt](bench/peers-meta.txt). Related benchmarks: the S3 client alone');
p('(`make bench-s3`, [bench/s3.md](bench/s3.md)) and the catalog (`make bench-catalog`,');
p('[bench/catalog.md](bench/catalog.md)).');
p();
// When each workload was measured (MERGE=1 runs re-measure some of them):
// start|finish|load|reps|lzfs revision|start of the run, from peers-meta.txt's
// measured.*.
const measured = {};
for (const [k, v] of Object.entries(meta)) {
	if (!k.startsWith('measured.')) continue;
	const [start, finish, load, reps, rev, run] = v.split('|');
	measured[k.slice(9)] = { start, finish, load, reps, rev, run };
}
const presentWls = WORKLOADS.filter((w) => rows.some((r) => r.workload === w));
const runKeys = new Set(presentWls.map((w) => (measured[w] ? measured[w].run : meta.started)));
const oneRun = runKeys.size <= 1;
p('## How this was measured');
p();
if (oneRun) {
	p(`- Run: ${meta.started} – ${meta.finished}, ${meta.reps} repetition(s) of every run; tables show`);
	p('  the median and, in parentheses, the minimum and maximum.');
	p(`- Machine: ${meta.machine}; load average ${meta.load}. Disk: ${meta.disk}.`);
	p(`- Versions: lzfs ${meta.lzfs}, ${meta.awscli}, s3fs ${meta.s3fs}, ${meta.rclone}, node ${meta.node},`);
} else {
	p('- The workloads were measured in separate runs (`MERGE=1`); every client of a workload ran in');
	p('  the same run. Tables show the median and, in parentheses, the minimum and maximum.');
	p();
	p('  | workload | measured | repetitions | load average (1, 5, 15 min) | lzfs |');
	p('  |---|---|---|---|---|');
	for (const w of presentWls) {
		const m = measured[w] || {};
		const first = rows.find((r) => r.workload === w);
		p(`  | ${TITLE[w](num(first.bytes), num(first.files))} | ${m.start || '?'} – ${m.finish || '?'} | ${m.reps || '?'} | ${m.load || '?'} | ${m.rev || '?'} |`);
	}
	p();
	p(`- Machine: ${meta.machine}. Disk: ${meta.disk}.`);
	p(`- Versions (latest run): ${meta.awscli}, s3fs ${meta.s3fs}, ${meta.rclone}, node ${meta.node},`);
}
p(`  s3rver ${meta.s3rver}, libfuse ${meta.libfuse}, ${meta.curl}.`);
p(`- Sizes: ${meta.sizes}.`);
p('- Server: the test S3 of tests/s3 (s3rver behind the node proxy that verifies every SigV4');
p('  signature and payload hash), on loopback, without fault injection, on the same 2 CPUs as the');
p('  clients. It is the bottleneck for every client: its CPU time is shown ("server CPU").');
p('- The machine is shared with other builds and tests running at the same time: **absolute numbers');
p('  are noisy; compare clients within this run** (the ratios), not with other runs. The order of');
p('  the clients rotates at each repetition.');
p('- Each run starts a fresh daemon on its own prefix, so its peak RSS (VmHWM) and CPU time');
p('  (user + system of all its threads, from /proc/PID/stat, from the start of the workload until the');
p('  data is complete in S3) are that run\'s. For `aws s3 cp` they are the awscli process\'s (`/usr/bin/time`). The source files');
p('  are in the page cache.');
if (meta.read_cache && presentWls.includes('read')) p(`- Reads: ${meta.read_cache}.`);
p('- **close**: seconds until the writer (`cp`, `aws`) returned. **durable**: seconds until the data');
p('  was complete in S3, checked with HEAD (one object) or ListObjectsV2 (many) by');
p('  `build/bench-probe`, polling every 20 ms (HEAD) or 200 ms (list) from the moment close returned.');
p('  **close→S3**: durable − close; "(1st HEAD)" says that the first HEAD or list sent after close()');
p('  already found the data complete, so the data was in S3 when close() returned and the time shown is');
p('  only the probe\'s start-up and round trip. Throughput is bytes (or files) ÷ durable.');
p('- Ratios are **lzfs ÷ peer** of a cost (time, memory, CPU): **below 1 means lzfs is better**. They');
p('  are taken within each repetition (lzfs and the peer ran minutes apart) and the median of the');
p('  repetitions is shown, so that a drift of the machine\'s load over the hour cancels out.');
p();
p('Settings:');
p();
for (const c of CLIENTS) if (meta[`settings.${c}`]) p(`- ${LABEL[c]}: \`${meta[`settings.${c}`]}\``);
if (meta['settings.lzfs-read'] && presentWls.includes('read')) p(`- lzfs, ${meta['settings.lzfs-read']}.`);
for (const c of CLIENTS) if (meta[`unavailable.${c}`]) p(`- **${LABEL[c]} could not run**: ${meta[`unavailable.${c}`]}`);
p();

// Summary: lzfs / peer for the time until durable, per workload.
const present = WORKLOADS.filter((w) => rows.some((r) => r.workload === w));
const peers = CLIENTS.filter((c) => c !== 'lzfs' && c !== 'lzfs-spool' && rows.some((r) => r.client === c));
p('## Summary');
p();
p('Time until the data is complete in S3 (for the read-back: until the local copy is complete),');
p('lzfs ÷ peer (below 1: lzfs is faster): the median of the ratios of each repetition, with their');
p('min–max.');
p();
p(`| workload | ${peers.map((c) => LABEL[c]).join(' | ')} |`);
p(`|---|${peers.map(() => '---').join('|')}|`);
for (const wl of present) {
	const l = stats(wl, 'lzfs');
	const first = rows.find((r) => r.workload === wl);
	p(`| ${TITLE[wl](num(first.bytes), num(first.files))} | ${peers
		.map((c) => (l && l.status === 'n/a' ? 'n/a' : paired(wl, c, 't_durable')))
		.join(' | ')} |`);
}
p();

// Issue #5's three questions, answered from the same runs.
{
	const lb = stats('big', 'lzfs'), ab = stats('big', 'aws'), ls = stats('small', 'lzfs');
	const items = [];
	if (lb && lb.status === 'ok' && ab && ab.status === 'ok')
		items.push(`\`cp\` of ${fmtSize(lb.bytes)} into the lzfs mount until close() returns: ${cell(lb.close)} s; ` +
			`\`aws s3 cp\` of the same file: ${cell(ab.close)} s (lzfs ÷ aws = ${paired('big', 'aws', 't_close')}).`);
	if (lb && lb.status === 'ok')
		items.push(`Close-to-durable latency of lzfs: 0 by design (durability=close); the first HEAD sent after ` +
			`close() found the complete object in ${lb.first} of ${lb.ok.length} runs ` +
			`(that HEAD was sent ${cell(lb.c2d, 3)} s after close(), the probe's start-up).`);
	if (ls && ls.status === 'ok')
		items.push(`Small files per second through lzfs (64 KiB, one \`cp -r\`, until all are in S3): ` +
			`${cell(ls.fps, 0)} files/s over ${ls.files.toLocaleString('en-US')} files.`);
	if (items.length) {
		p('Issue #5\'s questions, from the same runs:');
		p();
		for (const i of items) p(`- ${i}`);
		p();
	}
}

const plotRows = {};
for (const wl of present) {
	const list = CLIENTS.map((c) => [c, stats(wl, c)]).filter(([, s]) => s);
	const { bytes, files } = list[0][1];
	plotRows[wl] = Object.fromEntries(list);
	p(`## ${TITLE[wl](bytes, files)}`);
	p();
	p(WHAT[wl]);
	p();
	const manyFiles = wl === 'small' || wl === 'tree';
	const isRead = wl === 'read';
	const head = isRead ? ['client', 'time s', 'MiB/s', 'peak RSS MiB', 'CPU s', 'server CPU s'] :
		['client', 'close s', 'durable s', 'close→S3 s', ...(manyFiles ? ['files/s'] : []), 'MiB/s',
			'peak RSS MiB', 'CPU s', 'server CPU s'];
	p(`| ${head.join(' | ')} |`);
	p(`|${head.map(() => '---').join('|')}|`);
	for (const [c, s] of list) {
		if (s.status !== 'ok') {
			const why = s.notes.map((n) => n.replace(/^[^:]*: /, '').replace(/^n\/a /, ''))
				.join('; ').replace(/\|/g, '\\|');
			p(`| ${LABEL[c]} | **${s.status}**: ${why} |${' |'.repeat(head.length - 2)}`);
			continue;
		}
		if (isRead) {
			p(`| ${LABEL[c]} | ${cell(s.durable)} | ${cell(s.mibs, 1)} | ${cell(s.rss, 0)} | ${cell(s.cpu)} | ${cell(s.srv)} |`);
			continue;
		}
		const c2d = c === 'aws' ? '0 (returns when complete)' :
			`${cell(s.c2d, 3)}${s.first === s.ok.length ? ' (1st HEAD)' : ''}`;
		p(`| ${LABEL[c]} | ${cell(s.close)} | ${cell(s.durable)} | ${c2d} | ${manyFiles ? cell(s.fps, 0) + ' | ' : ''}${cell(s.mibs, 1)} | ${cell(s.rss, 0)} | ${cell(s.cpu)} | ${cell(s.srv)} |`);
	}
	const failed = list.filter(([, s]) => s.status === 'ok' && s.notes.length);
	for (const [c, s] of failed) p(`\n${LABEL[c]}: ${s.runs.length - s.ok.length} of ${s.runs.length} runs failed (${s.notes.join('; ')}).`);
	p();
	const l = plotRows[wl].lzfs;
	if (l && l.status === 'ok') {
		p('lzfs ÷ peer (below 1: lzfs is better), median of the per-repetition ratios (min–max):');
		p();
		p('| peer | close | durable | peak RSS | CPU | server CPU |');
		p('|---|---|---|---|---|---|');
		for (const [c, s] of list) {
			if (c === 'lzfs' || c === 'lzfs-spool' || s.status !== 'ok') continue;
			p(`| ${LABEL[c]} | ${paired(wl, c, 't_close')} | ${paired(wl, c, 't_durable')} | ${paired(wl, c, 'rss_kib')} | ${paired(wl, c, 'cpu_s')} | ${paired(wl, c, 'server_cpu_s')} |`);
		}
		p();
		p('close: time until close() returned; durable: until complete in S3; CPU: the daemon\'s (for');
		p('awscli, the client\'s); server CPU: what the test S3 spent serving the run.');
		p();
	}
}

// ------------------------------------------------------------------ plots
const plots = [];
function gnuplot(name, script, data) {
	const dat = path.join(plotDir, `${name}.dat`);
	fs.writeFileSync(dat, data);
	const png = path.join(plotDir, `${name}.png`);
	const full = `set terminal pngcairo size 960,540 font "sans,11"\nset output '${png}'\n` +
		`set datafile missing '?'\nset key below horizontal noenhanced\nset grid ytics\nset xtics noenhanced\n` +
		`set style data histogram\nset style histogram errorbars gap 2 lw 1\n` +
		`set style fill solid 0.8 border -1\nset boxwidth 0.9\nset yrange [0:*]\n` +
		(quick ? `set label 1 'QUICK MODE' at graph 0.5, graph 0.5 center font 'sans,40' tc rgb '#dddddd' back\n` : '') +
		script.replace(/DATA/g, `'${dat}'`);
	const r = spawnSync('gnuplot', [], { input: full, encoding: 'utf8' });
	fs.unlinkSync(dat);
	if (r.error || r.status !== 0) {
		console.error(`report: gnuplot ${name}: ${r.error ? r.error.message : r.stderr}`);
		return;
	}
	plots.push(name);
}
const gp = (s) => (s ? `${s.med} ${s.min} ${s.max}` : '? ? ?');
function clustered(name, title, ylabel, wls, measure, clients) {
	wls = wls.filter((w) => plotRows[w]);
	if (!wls.length) return;
	clients = clients.filter((c) => wls.some((w) => plotRows[w][c] && plotRows[w][c][measure]));
	if (!clients.length) return;
	const xt = { big: '1 file', eight: '8 files', small: 'small files', tree: 'tree', read: 'read back' };
	const data = wls.map((w) => `"${xt[w]}" ${clients.map((c) => gp(plotRows[w][c] && plotRows[w][c][measure])).join(' ')}`).join('\n') + '\n';
	const plotsCmd = clients.map((c, i) =>
		`DATA using ${2 + 3 * i}:${3 + 3 * i}:${4 + 3 * i}:xtic(1) title '${SHORT[c]}'`).join(', ');
	gnuplot(name, `set title '${title}'\nset ylabel '${ylabel}'\nplot ${plotsCmd}\n`, data);
}
const mountsAndAws = ['lzfs', 'aws', 's3fs', 'rclone-writes', 'rclone-off'];
const SHORT = { lzfs: 'lzfs', aws: 'aws s3 cp', s3fs: 's3fs', 'rclone-writes': 'rclone writes',
	'rclone-off': 'rclone off', 'lzfs-spool': 'lzfs (spool copy)' };
clustered('peers-throughput', 'Throughput: writes until complete in S3, read back until copied (higher is better; bars: min-max)',
	'MiB/s', ['big', 'eight', 'read'], 'mibs', mountsAndAws);
clustered('peers-files', 'Files per second until complete in S3 (higher is better; bars: min-max)',
	'files/s', ['small', 'tree'], 'fps', mountsAndAws);
clustered('peers-rss', 'Peak RSS of the daemon (awscli: the client) (lower is better)',
	'MiB', WORKLOADS, 'rss', mountsAndAws);
clustered('peers-cpu', 'CPU time of the daemon (awscli: the client) (lower is better)',
	'seconds', WORKLOADS, 'cpu', mountsAndAws);
if (plotRows.big) {
	// close vs durable for the one large file: what close() means.
	const cl = mountsAndAws.filter((c) => plotRows.big[c] && plotRows.big[c].durable);
	const data = cl.map((c) => `"${SHORT[c]}" ${gp(plotRows.big[c].close)} ${gp(plotRows.big[c].durable)}`).join('\n') + '\n';
	gnuplot('peers-close', `set title 'One large file: when close() returns and when the data is in S3'\n` +
		`set ylabel 'seconds from the start'\n` +
		`plot DATA using 2:3:4:xtic(1) title 'close() returned', DATA using 5:6:7 title 'complete in S3'\n`, data);
}

p('## Plots');
p();
for (const n of plots) p(`![${n}](bench/${n}.png)`);
p();

const analysis = path.join(__dirname, 'analysis.md');
if (!quick && fs.existsSync(analysis)) {
	p(fs.readFileSync(analysis, 'utf8').trimEnd());
	p();
}
const md = path.join(outDir, 'bench.md');
fs.writeFileSync(md, out.join('\n'));
console.error(`report: wrote ${md} and ${plots.length} plots in ${plotDir}`);
