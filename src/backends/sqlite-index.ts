/**
 * The SQLite backend's metadata index (docs/indexes.md) and its index-driven reads.
 *
 *   meta_index(ns, field, value, key) PRIMARY KEY (ns, field, value, key), WITHOUT ROWID
 *   meta_index_fields(field)          the indexed fields (default DEFAULT_INDEX_FIELDS)
 *
 * The index is kept by three triggers on `registrations` (insert, delete, update of meta), so every
 * write — register, replace, update, merge, unregister, a dead entry removed lazily, sweeps,
 * restore, bulk, clearNamespace, even a write from the `sqlite3` shell or an older procreg — changes
 * the index in its own statement, hence its own transaction. One row per indexed value: a list
 * value gives one row per distinct element. A value's text is what `--where` compares
 * (`scalarText`: strings as they are, numbers as their JSON text, `true`/`false`/`null`); objects,
 * nested lists and values over MAX_INDEX_VALUE bytes are not indexed, and queries for them scan.
 *
 * An existing store without the index gets it at its first writable open (in one transaction); a
 * read-only open never writes: it scans until a writer has built the index.
 */
import type DatabaseT from 'better-sqlite3';
import type { ListOptions, ListPlan, Registration } from './contract.js';
import { DEFAULT_INDEX_FIELDS, indexable, MAX_INDEX_VALUE, parseIndexFields } from './index-fields.js';
import { ensureProcCounts } from './sqlite-counts.js';

/** The text `--where` compares an element `j` of `json_each(r.meta, …)` by (numbers keep their JSON text through `->`). */
const TEXT = (r: string) =>
  `CASE j.type WHEN 'text' THEN j.value WHEN 'integer' THEN ${r}.meta -> j.fullkey WHEN 'real' THEN ${r}.meta -> j.fullkey ELSE j.type END`;

/**
 * FROM and WHERE of the indexed values of row `r` (NEW or OLD in a trigger, a table in the
 * rebuild): json_each on a scalar gives the scalar (key NULL), on a list its elements (integer
 * keys), on an object its members (text keys: not indexed). The `instr` test first skips, without
 * parsing, the fields the metadata text does not name (procreg writes it with JSON.stringify, which
 * leaves field names as they are: parseIndexFields refuses names it would escape).
 */
const TERMS = (r: string) => `meta_index_fields f, json_each(${r}.meta, '$."' || f.field || '"') j
  WHERE instr(${r}.meta, '"' || f.field || '"') > 0 AND (j.key IS NULL OR typeof(j.key) = 'integer') AND j.type NOT IN ('object', 'array')
    AND length(CAST(${TEXT(r)} AS BLOB)) <= ${MAX_INDEX_VALUE}`;

// DISTINCT: a list with a value twice (`tier: ["x", "x"]`) is one index entry. Not left to OR IGNORE:
// inside a trigger fired by register's upsert (INSERT … ON CONFLICT DO UPDATE) the outer statement's
// conflict policy applies, and the duplicate aborted the register (found by the model test).
const INSERT_TERMS = (r: string) =>
  `INSERT OR IGNORE INTO meta_index (ns, field, value, key) SELECT DISTINCT ${r}.namespace, f.field, ${TEXT(r)}, ${r}.key FROM ${TERMS(r)};`;
const DELETE_TERMS = (r: string, from = 'meta_index') =>
  `DELETE FROM ${from} WHERE ns = ${r}.namespace AND key = ${r}.key AND (field, value) IN (SELECT f.field, ${TEXT(r)} FROM ${TERMS(r)});`;

/** A restore's staged index (src/backends/sqlite-restore.ts): index the row of `table` given by (namespace, key) into `into`. */
export const indexRowSql = (table: string, into: string) =>
  `INSERT OR IGNORE INTO ${into} (ns, field, value, key) SELECT DISTINCT r.namespace, f.field, ${TEXT('r')}, r.key
    FROM ${table} r, ${TERMS('r')} AND r.namespace = ? AND r.key = ?`;
/** …and remove row `r` (a trigger's OLD) from it. */
export const deleteIndexTerms = DELETE_TERMS;

const TABLES = `
  CREATE TABLE IF NOT EXISTS meta_index_fields (field TEXT PRIMARY KEY) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS meta_index (
    ns TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (ns, field, value, key)
  ) WITHOUT ROWID;`;

/**
 * Does row `r`'s metadata text name one of `fields`? TERMS' own first test, on literals: a trigger
 * whose WHEN is false costs almost nothing, while running its body for every row (json_each over
 * the field list, a DISTINCT) tripled a batched insert's time. False exactly when TERMS is empty.
 */
const NAMES_FIELD = (r: string, fields: readonly string[]) =>
  fields.length
    ? `(${[...fields]
        .sort()
        .map((f) => `instr(${r}.meta, '"${f.replaceAll("'", "''")}"') > 0`)
        .join(' OR ')})`
    : '0';

/** The three triggers for `fields`, made again (a change of fields, or triggers from an older procreg). */
const TRIGGERS = (fields: readonly string[]) => `
  DROP TRIGGER IF EXISTS meta_index_insert; DROP TRIGGER IF EXISTS meta_index_delete; DROP TRIGGER IF EXISTS meta_index_update;
  ${INSERT_TRIGGER(fields)};
  CREATE TRIGGER meta_index_delete AFTER DELETE ON registrations WHEN ${NAMES_FIELD('OLD', fields)} BEGIN
    ${DELETE_TERMS('OLD')}
  END;
  CREATE TRIGGER meta_index_update AFTER UPDATE OF meta, namespace, key ON registrations
    WHEN (OLD.meta IS NOT NEW.meta OR OLD.namespace IS NOT NEW.namespace OR OLD.key IS NOT NEW.key)
      AND (${NAMES_FIELD('OLD', fields)} OR ${NAMES_FIELD('NEW', fields)}) BEGIN
    ${DELETE_TERMS('OLD')}
    ${INSERT_TERMS('NEW')}
  END;`;
const INSERT_TRIGGER = (fields: readonly string[]) =>
  `CREATE TRIGGER meta_index_insert AFTER INSERT ON registrations WHEN ${NAMES_FIELD('NEW', fields)} BEGIN
    ${INSERT_TERMS('NEW')}
  END`;

const REBUILD = `DELETE FROM meta_index;
  INSERT OR IGNORE INTO meta_index (ns, field, value, key)
    SELECT r.namespace, f.field, ${TEXT('r')}, r.key FROM registrations r, ${TERMS('r')} AND r.meta <> '{}';`;

const COLS = 'r.namespace, r.key, r.pid, r.node, r.meta, r.registered_at, r.updated_at, r.pid_start';

/** The index's tables, and its triggers for the stored fields, without a rebuild (a restore swapped a built index in). */
export function ensureIndexSchema(db: DatabaseT.Database): void {
  db.exec(TABLES);
  db.exec(TRIGGERS(storedFields(db) ?? DEFAULT_INDEX_FIELDS));
}

/** The insert trigger as stored: its text tells which fields the triggers were made for. */
function insertTriggerSql(db: DatabaseT.Database): string | undefined {
  return db
    .prepare("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'meta_index_insert'")
    .pluck()
    .get() as string | undefined;
}

/** The index of one open database: its fields, its statements, its reads. */
export class MetaIndex {
  private known: ReadonlySet<string> | undefined;
  private readonly st: Record<string, DatabaseT.Statement> = {};

  private constructor(private readonly db: DatabaseT.Database) {}

  /** The fields the store indexes (empty: no index yet, every `--where` scans); read at first use, so a lookup never pays for it. */
  get fields(): ReadonlySet<string> {
    return (this.known ??= new Set(storedFields(this.db) ?? []));
  }

  /**
   * The index of `db`, created or brought to `wanted` fields when `writable` (one IMMEDIATE
   * transaction; re-checked under the lock, so concurrent openers build it once). Read-only: the
   * fields the store has, or none.
   */
  static open(db: DatabaseT.Database, opts: { writable: boolean; fields?: unknown }): MetaIndex {
    const wanted = parseIndexFields(opts.fields);
    const stored = () => storedFields(db);
    const stale = () => {
      const have = stored();
      const triggers = db
        .prepare(
          "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'meta\\_index\\_%' ESCAPE '\\'",
        )
        .pluck()
        .get() as number;
      // No table, a trigger missing (a table swapped in under it: rebuild) or other fields asked for.
      return !have || triggers < 3 || (wanted !== undefined && !sameSet(have, wanted));
    };
    // Triggers made for other fields (by an older procreg, whose triggers ran for every row): made
    // again; rebuilt too unless they were the older generic ones, which indexed every field exactly.
    const retrigger = () => {
      const sql = insertTriggerSql(db);
      const have = stored();
      if (!have || sql === undefined || sql === INSERT_TRIGGER(have)) return undefined;
      return sql.includes("WHEN NEW.meta <> '{}'") ? 'triggers' : 'rebuild';
    };
    if (opts.writable && (stale() || retrigger()))
      db.transaction(() => {
        if (!stale()) {
          const how = retrigger();
          if (!how) return; // another process did it while we waited for the lock
          db.exec(TRIGGERS(stored()!));
          if (how === 'rebuild') db.exec(REBUILD);
          return;
        }
        const target = wanted ?? stored() ?? DEFAULT_INDEX_FIELDS;
        db.exec(TABLES);
        db.prepare('DELETE FROM meta_index_fields').run();
        const ins = db.prepare('INSERT INTO meta_index_fields (field) VALUES (?)');
        for (const f of target) ins.run(f);
        db.exec(TRIGGERS(target));
        db.exec(REBUILD);
      }).immediate();
    // The per-process counts (sqlite-counts.ts) are derived from `registrations` as the index is,
    // and go with its triggers the same way (a restore's swap opens the index again inside it).
    if (opts.writable) ensureProcCounts(db);
    return new MetaIndex(db);
  }

  private stmt(name: string, sql: string): DatabaseT.Statement {
    return (this.st[name] ??= this.db.prepare(sql));
  }

  /** The `where` term the index answers (the first indexable one), or undefined: scan. */
  pick(where: ListOptions['where']): [string, string] | undefined {
    return where?.find(([f, v]) => indexable(this.fields, f, v));
  }

  /** Rows of `field = value` in `namespace`, ordered by key, after `after`, at most `limit`. */
  rows(namespace: string, [field, value]: [string, string], after: string | undefined, limit: number): unknown[] {
    const base = `SELECT ${COLS} FROM meta_index i CROSS JOIN registrations r ON r.namespace = i.ns AND r.key = i.key
      WHERE i.ns = ? AND i.field = ? AND i.value = ?`;
    return after === undefined
      ? this.stmt('first', `${base} ORDER BY i.key LIMIT ?`).all(namespace, field, value, limit)
      : this.stmt('next', `${base} AND i.key > ? ORDER BY i.key LIMIT ?`).all(namespace, field, value, after, limit);
  }

  /** Bytes the index takes on disk (the dbstat virtual table when compiled in; else undefined). */
  bytes(): number | undefined {
    try {
      return this.db
        .prepare("SELECT sum(pgsize) FROM dbstat WHERE name IN ('meta_index', 'sqlite_autoindex_meta_index_1')")
        .pluck()
        .get() as number;
    } catch {
      return undefined;
    }
  }
}

/** The fields recorded in the store, or undefined when it has no index table. */
function storedFields(db: DatabaseT.Database): string[] | undefined {
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta_index_fields'").get();
  if (!has) return undefined;
  return db.prepare('SELECT field FROM meta_index_fields').pluck().all() as string[];
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const s = new Set(a);
  return s.size === new Set(b).size && b.every((x) => s.has(x));
}

/**
 * Live registrations of a namespace (or of all) without judging every row: `count(*)` is a b-tree
 * count; the distinct processes of `node` (the only ones this process judges: other nodes' entries
 * count as alive, as the service's `isAlive` says) come from seeks in the (node, pid, pid_start)
 * index, each judged once; only the dead ones' rows are counted, each a range of that index (whose
 * entries end with the primary key, so the namespace narrows the range too).
 */
export function countLive(
  db: DatabaseT.Database,
  namespace: string | undefined,
  node: string,
  isAlive: (probe: Registration) => boolean,
): number {
  const probe: Registration = { namespace: '', key: '', pid: 0, node, meta: {}, registeredAt: 0, updatedAt: 0 };
  return db
    .transaction(() => {
      const total = (
        namespace === undefined
          ? db.prepare('SELECT count(*) FROM registrations').pluck().get()
          : db.prepare('SELECT count(*) FROM registrations WHERE namespace = ?').pluck().get(namespace)
      ) as number;
      const first = db.prepare(
        'SELECT pid, pid_start FROM registrations WHERE node = ? ORDER BY node, pid, pid_start LIMIT 1',
      );
      const nextPid = db.prepare(
        'SELECT pid, pid_start FROM registrations WHERE node = ? AND pid > ? ORDER BY node, pid, pid_start LIMIT 1',
      );
      const nextStart = db.prepare(
        'SELECT pid_start FROM registrations WHERE node = ? AND pid = ? AND pid_start > ? ORDER BY node, pid, pid_start LIMIT 1',
      );
      const countProc =
        namespace === undefined
          ? db.prepare('SELECT count(*) FROM registrations WHERE node = ? AND pid = ? AND pid_start IS ?')
          : db.prepare(
              'SELECT count(*) FROM registrations WHERE node = ? AND pid = ? AND pid_start IS ? AND namespace = ?',
            );
      let dead = 0;
      for (
        let row = first.raw().get(node) as [number, number | null] | undefined;
        row;
        row = nextPid.raw().get(node, row[0]) as typeof row
      ) {
        const pid = row[0];
        // The pid's starts in order (NULL first, so after NULL look past MIN_SAFE_INTEGER).
        for (
          let start: number | null | undefined = row[1];
          start !== undefined;
          start = nextStart.pluck().get(node, pid, start ?? Number.MIN_SAFE_INTEGER) as number | undefined
        ) {
          probe.pid = pid;
          probe.pidStart = start;
          if (isAlive(probe)) continue;
          const args = namespace === undefined ? [node, pid, start] : [node, pid, start, namespace];
          dead += countProc.pluck().get(...args) as number;
        }
      }
      return total - dead;
    })
    .deferred();
}

/**
 * One page of `field = value` (the term the index answers) through the index, the other `where`
 * terms checked on each row: ordered by key, `next` set on a full page as `list` does.
 */
export function listIndexed<R>(
  index: MetaIndex,
  namespace: string,
  opts: ListOptions,
  term: [string, string],
  fromRow: (row: R) => Registration,
  matches: (e: Registration) => boolean,
): { items: Registration[]; next?: string; plan: ListPlan } {
  const limit = Math.max(1, opts.limit ?? 1000);
  const items: Registration[] = [];
  const plan: ListPlan = { method: 'index', field: term[0], scanned: 0 };
  let cursor = opts.after;
  const chunk = (opts.where?.length ?? 0) > 1 ? Math.max(limit, 512) : limit + 1;
  for (;;) {
    const rows = index.rows(namespace, term, cursor, chunk) as R[];
    plan.scanned += rows.length;
    for (const row of rows) {
      const e = fromRow(row);
      cursor = e.key;
      if (!matches(e)) continue;
      if (items.length === limit) return { items, next: items[limit - 1]!.key, plan };
      items.push(e);
    }
    if (rows.length < chunk) return { items, plan };
  }
}
