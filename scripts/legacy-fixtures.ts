/**
 * Legacy fixtures (design §5): small committed databases in fixtures/legacy/ with their expected
 * effective views, and large generated ones for benchmarks.
 *
 *   node dist/scripts/legacy-fixtures.js small [DIR]          rewrite fixtures/legacy/*.sqlite + *.expected.json
 *   node dist/scripts/legacy-fixtures.js large PATH [N]       a legacy file with N keys (default 1,000,000)
 *
 * Deterministic liveness (pids differ per machine): every fixture is read with the local node name
 * `legacy-local` (`--node legacy-local`, or `nodeName` in the library).
 * - "live" rows belong to OTHER nodes (`node-a`, `node-b`): the service trusts other nodes' rows,
 *   so they are alive on every machine;
 * - "dead" rows belong to `legacy-local` with pids above 4,194,304 (PID_MAX_LIMIT, the largest
 *   pid_max Linux allows), so no process can ever have them.
 * The expected views below are written by hand from the legacy rules, not computed by the code
 * under test.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LEGACY_SCHEMA } from '../src/backends/legacy.js';
import { loadBetterSqlite } from '../src/backends/sqlite.js';

export const FIXTURE_NODE = 'legacy-local';
/** Above PID_MAX_LIMIT (2^22): never a running process. */
export const DEAD_PID = 4_194_305;

type Reg = [ns: string, key: string, pid: number, node: string];
type Bak = [ns: string, key: string, pid: number, node: string, meta: Record<string, unknown>];
type Index = [ns: string, field: string, value: string, key: string, pid: number, node: string];
type Cache = [ns: string, key: string, pid: number, node: string];

export interface FixtureSpec {
  name: string;
  description: string;
  registry: Reg[];
  backup: Bak[];
  index?: Index[];
  cache?: Cache[];
  /** The effective view: what listing yields and migration moves, sorted by namespace then key. */
  view: Array<{ namespace: string; key: string; pid: number; node: string; meta: Record<string, unknown> }>;
  /** What a legacy lookup answers for chosen keys ("ns/key" → pid, or null for not-found). */
  lookups: Record<string, number | null>;
  /** Expected anomaly counts (legacyAnomalies). */
  anomalies: Record<string, number>;
}

const v = (namespace: string, key: string, pid: number, node: string, meta: Record<string, unknown> = {}) => ({
  namespace,
  key,
  pid,
  node,
  meta,
});

export const fixtures: FixtureSpec[] = [
  {
    name: 'clean',
    description: 'both tables agree, derived rows exact, two namespaces',
    registry: [
      ['default', 'api', 101, 'node-a'],
      ['default', 'db', 102, 'node-a'],
      ['default', 'web', 103, 'node-b'],
      ['jobs', 'mailer', 201, 'node-b'],
      ['jobs', 'resizer', 202, 'node-b'],
    ],
    backup: [
      ['default', 'api', 101, 'node-a', { type: 'http', region: 'eu' }],
      ['default', 'db', 102, 'node-a', { type: 'store' }],
      ['default', 'web', 103, 'node-b', {}],
      ['jobs', 'mailer', 201, 'node-b', { capabilities: ['smtp', 'tls'] }],
      ['jobs', 'resizer', 202, 'node-b', { tier: 2 }],
    ],
    index: [
      ['default', 'type', 'http', 'api', 101, 'node-a'],
      ['default', 'region', 'eu', 'api', 101, 'node-a'],
      ['jobs', 'capabilities', 'smtp', 'mailer', 201, 'node-b'],
    ],
    cache: [['default', 'api', 101, 'node-a']],
    view: [
      v('default', 'api', 101, 'node-a', { type: 'http', region: 'eu' }),
      v('default', 'db', 102, 'node-a', { type: 'store' }),
      v('default', 'web', 103, 'node-b'),
      v('jobs', 'mailer', 201, 'node-b', { capabilities: ['smtp', 'tls'] }),
      v('jobs', 'resizer', 202, 'node-b', { tier: 2 }),
    ],
    lookups: { 'default/api': 101, 'jobs/mailer': 201, 'default/none': null },
    anomalies: {
      effective: 5,
      onlyInRegistry: 0,
      onlyInBackup: 0,
      pidMismatch: 0,
      deadRegistryRows: 0,
      deadBackupRows: 0,
      lookupListingDisagree: 0,
      staleIndexRows: 0,
      staleCacheRows: 0,
    },
  },
  {
    name: 'diverged',
    description: 'same key with different pids, keys only in one table, three namespaces',
    registry: [
      ['default', 'same', 10, 'node-a'],
      ['default', 'mismatch', 100, 'node-a'],
      ['default', 'only-reg', 300, 'node-b'],
      ['jobs', 'x', 310, 'node-b'],
      ['svc:eu', 'gw', 320, 'node-a'],
    ],
    backup: [
      ['default', 'same', 10, 'node-a', { k: 'same' }],
      ['default', 'mismatch', 200, 'node-a', { v: 2 }],
      ['default', 'only-bak', 400, 'node-b', { role: 'w' }],
      ['jobs', 'y', 410, 'node-b', { nested: { b: 1, a: [1, 2] } }],
      ['svc:eu', 'gw', 320, 'node-b', { moved: true }],
    ],
    view: [
      v('default', 'mismatch', 200, 'node-a', { v: 2 }),
      v('default', 'only-bak', 400, 'node-b', { role: 'w' }),
      v('default', 'only-reg', 300, 'node-b'),
      v('default', 'same', 10, 'node-a', { k: 'same' }),
      v('jobs', 'x', 310, 'node-b'),
      v('jobs', 'y', 410, 'node-b', { nested: { b: 1, a: [1, 2] } }),
      v('svc:eu', 'gw', 320, 'node-b', { moved: true }),
    ],
    // The registry row wins a lookup (with meta {}), the backup row wins the listing.
    lookups: {
      'default/mismatch': 100,
      'default/only-reg': 300,
      'default/only-bak': 400,
      'svc:eu/gw': 320,
      'jobs/y': 410,
    },
    anomalies: {
      effective: 7,
      onlyInRegistry: 2,
      onlyInBackup: 2,
      pidMismatch: 2,
      deadRegistryRows: 0,
      deadBackupRows: 0,
      lookupListingDisagree: 2,
      staleIndexRows: 0,
      staleCacheRows: 0,
    },
  },
  {
    name: 'dead',
    description: 'dead rows in either table (local node, impossible pids)',
    registry: [
      ['default', 'alive', 11, 'node-a'],
      ['default', 'dead-both', DEAD_PID, FIXTURE_NODE],
      ['default', 'dead-reg-live-bak', DEAD_PID + 1, FIXTURE_NODE],
      ['default', 'live-reg-dead-bak', 600, 'node-a'],
      ['default', 'dead-reg-only', DEAD_PID + 2, FIXTURE_NODE],
      ['ops', 'dead', DEAD_PID + 3, FIXTURE_NODE],
    ],
    backup: [
      ['default', 'alive', 11, 'node-a', { ok: true }],
      ['default', 'dead-both', DEAD_PID, FIXTURE_NODE, {}],
      ['default', 'dead-reg-live-bak', 500, 'node-a', { from: 'backup' }],
      ['default', 'live-reg-dead-bak', DEAD_PID + 4, FIXTURE_NODE, { from: 'backup' }],
      ['default', 'dead-bak-only', DEAD_PID + 5, FIXTURE_NODE, {}],
      ['ops', 'live', 12, 'node-b', { n: 1 }],
    ],
    view: [
      v('default', 'alive', 11, 'node-a', { ok: true }),
      v('default', 'dead-reg-live-bak', 500, 'node-a', { from: 'backup' }),
      v('default', 'live-reg-dead-bak', 600, 'node-a'),
      v('ops', 'live', 12, 'node-b', { n: 1 }),
    ],
    lookups: {
      'default/alive': 11,
      'default/dead-both': null,
      'default/dead-reg-live-bak': null,
      'default/live-reg-dead-bak': 600,
      'default/dead-bak-only': null,
      'ops/dead': null,
    },
    anomalies: {
      effective: 4,
      onlyInRegistry: 2,
      onlyInBackup: 2,
      pidMismatch: 2,
      deadRegistryRows: 4,
      deadBackupRows: 3,
      lookupListingDisagree: 1,
      staleIndexRows: 0,
      staleCacheRows: 0,
    },
  },
  {
    name: 'stale',
    description: 'stale metadata-index and cache rows (derived data, never migrated)',
    registry: [
      ['default', 'a', 21, 'node-a'],
      ['default', 'b', 22, 'node-a'],
    ],
    backup: [
      ['default', 'a', 21, 'node-a', { type: 'worker', capabilities: ['x', 'y'] }],
      ['default', 'b', 22, 'node-a', { type: 'api' }],
    ],
    index: [
      ['default', 'type', 'worker', 'a', 21, 'node-a'], // exact
      ['default', 'capabilities', 'y', 'a', 21, 'node-a'], // exact (list element)
      ['default', 'type', 'worker', 'b', 22, 'node-a'], // stale: b is type=api now
      ['default', 'type', 'api', 'b', 19, 'node-a'], // stale: old pid
      ['default', 'type', 'api', 'gone', 30, 'node-a'], // stale: key unregistered
    ],
    cache: [
      ['default', 'a', 21, 'node-a'], // exact
      ['default', 'b', 18, 'node-a'], // stale: old pid
      ['default', 'gone', 30, 'node-a'], // stale: key unregistered
    ],
    view: [
      v('default', 'a', 21, 'node-a', { type: 'worker', capabilities: ['x', 'y'] }),
      v('default', 'b', 22, 'node-a', { type: 'api' }),
    ],
    lookups: { 'default/a': 21, 'default/gone': null },
    anomalies: {
      effective: 2,
      onlyInRegistry: 0,
      onlyInBackup: 0,
      pidMismatch: 0,
      deadRegistryRows: 0,
      deadBackupRows: 0,
      lookupListingDisagree: 0,
      staleIndexRows: 3,
      staleCacheRows: 2,
    },
  },
];

/** Write one fixture database (replacing the file). */
export function writeFixture(path: string, spec: Pick<FixtureSpec, 'registry' | 'backup' | 'index' | 'cache'>): void {
  rmSync(path, { force: true });
  const Database = loadBetterSqlite();
  const db = new Database(path);
  try {
    db.exec(LEGACY_SCHEMA);
    db.transaction(() => {
      const r = db.prepare('INSERT INTO registry VALUES (?, ?, ?, ?)');
      for (const row of spec.registry) r.run(...row);
      const b = db.prepare('INSERT INTO process_registry_backup VALUES (?, ?, ?, ?, ?)');
      for (const [ns, key, pid, node, meta] of spec.backup) b.run(ns, key, pid, node, JSON.stringify(meta));
      const i = db.prepare('INSERT INTO process_registry_metadata_index VALUES (?, ?, ?, ?, ?, ?, ?)');
      for (const [ns, field, value, key, pid, node] of spec.index ?? []) i.run(ns, field, value, key, pid, node, '{}');
      const c = db.prepare('INSERT INTO process_registry_cache VALUES (?, ?, ?, ?, ?)');
      for (const [ns, key, pid, node] of spec.cache ?? []) c.run(ns, key, pid, node, 1_700_000_000_000);
    })();
  } finally {
    db.close();
  }
}

export function writeSmallFixtures(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const f of fixtures) {
    writeFixture(join(dir, `${f.name}.sqlite`), f);
    const { registry: _r, backup: _b, index: _i, cache: _c, ...expected } = f;
    writeFileSync(
      join(dir, `${f.name}.expected.json`),
      `${JSON.stringify({ node: FIXTURE_NODE, ...expected }, null, 2)}\n`,
    );
  }
}

/**
 * A large legacy file: `n` keys over 4 namespaces, all live (other nodes), with the usual
 * legacy untidiness: 1 % only in `registry`, 1 % only in the backup, 0.5 % with different pids.
 * Inserted in key order, batched transactions: bounded memory.
 */
export function writeLargeLegacy(path: string, n: number): void {
  rmSync(path, { force: true });
  const Database = loadBetterSqlite();
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = OFF');
    db.exec(LEGACY_SCHEMA);
    const r = db.prepare('INSERT INTO registry VALUES (?, ?, ?, ?)');
    const b = db.prepare('INSERT INTO process_registry_backup VALUES (?, ?, ?, ?, ?)');
    const batch = 20_000;
    for (let start = 0; start < n; start += batch) {
      db.transaction(() => {
        for (let i = start; i < Math.min(n, start + batch); i++) {
          const ns = `ns${i % 4}`;
          const key = `svc-${String(i).padStart(8, '0')}`;
          const pid = 1000 + (i % 30000);
          const node = i % 2 ? 'node-a' : 'node-b';
          const mod = i % 200;
          if (mod !== 1 && mod !== 2) b.run(ns, key, pid, node, JSON.stringify({ type: i % 3 ? 'worker' : 'api', i }));
          if (mod !== 3 && mod !== 4) r.run(ns, key, mod === 5 ? pid + 1 : pid, node);
        }
      })();
    }
  } finally {
    db.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [cmd, a, b] = process.argv.slice(2);
  if (cmd === 'small') {
    const dir = a ?? resolve(fileURLToPath(new URL('../../fixtures/legacy/', import.meta.url)));
    writeSmallFixtures(dir);
    process.stdout.write(`wrote ${fixtures.length} fixtures to ${dir}\n`);
  } else if (cmd === 'large' && a) {
    const n = b ? Number(b) : 1_000_000;
    writeLargeLegacy(a, n);
    process.stdout.write(`wrote ${n} legacy keys to ${a}\n`);
  } else {
    process.stderr.write('usage: legacy-fixtures small [DIR] | large PATH [N]\n');
    process.exitCode = 2;
  }
}
