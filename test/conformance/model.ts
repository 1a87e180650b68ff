/**
 * Model-based property test (fast-check): random register / lookup / unregister / update (and
 * merge) / kill-process / sweep sequences run against a backend (through the service) and against
 * a reference `Map`; every answer must be the same. Processes are real and really killed.
 *
 * `list --where` is checked after every history against a plain scan of the model and of the
 * store's unfiltered listing: on indexed fields (`tier`, and `capabilities` with list values, of
 * the default index fields) and on an unindexed one (`role`), so a stale index shows.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { AlreadyRegisteredError, DeadProcessError, NotFoundError } from '../../src/backends/contract.js';
import type { ProcessRegistry } from '../../src/registry/service.js';
import { matchesWhere, mergePatch } from '../../src/registry/validate.js';
import { spawnSleepers, type Sleeper, type Tuple } from '../support/processes.js';
import { freshNamespace, useInstance, type Instance } from './suite.js';

/** Three processes per run, indexed by `Proc`: tuples, so every index is known to be there. */
type Proc = 0 | 1 | 2;
type Model = { entries: Map<string, { proc: Proc; meta: Record<string, unknown> }>; alive: Tuple<boolean, 3> };
type Real = { reg: ProcessRegistry; namespace: string; procs: Tuple<Sleeper, 3> };

const KEYS = ['a', 'b', 'c', 'd/e', 'f g'];
const key = fc.constantFrom(...KEYS);
const proc = fc.constantFrom<Proc>(0, 1, 2);
/** Few distinct values, so entries share them (and an index has something to be wrong about). */
const SCALARS = ['x', 'y', '1', 1, true] as const;
const scalar = fc.constantFrom(...SCALARS);
const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.constant(null));
const FIELDS = ['role', 'tier', 'capabilities'] as const;
const meta = fc
  .dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 3 })
  .map((d) => Object.fromEntries(Object.entries(d).filter(([, v]) => v !== null))); // a stored value is never null
const TEXTS = [...new Set(SCALARS.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))))];
const where = fc.array(fc.tuple(fc.constantFrom(...FIELDS), fc.constantFrom(...TEXTS)), { minLength: 1, maxLength: 2 });

/** What the model says a live lookup returns. */
function live(m: Model, k: string) {
  const e = m.entries.get(k);
  return e && m.alive[e.proc] ? e : undefined;
}

class Register implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly k: string,
    readonly p: Proc,
    readonly meta: Record<string, unknown>,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const res = await r.reg.register(this.k, r.procs[this.p].pid, this.meta, { namespace: r.namespace }).then(
      () => 'ok',
      (e) =>
        e instanceof AlreadyRegisteredError
          ? `held:${e.holder.pid}`
          : e instanceof DeadProcessError
            ? 'dead'
            : `error:${e}`,
    );
    const cur = live(m, this.k);
    let want: string;
    if (!m.alive[this.p]) want = 'dead';
    else if (cur && cur.proc !== this.p) want = `held:${r.procs[cur.proc].pid}`;
    else {
      want = 'ok';
      m.entries.set(this.k, { proc: this.p, meta: this.meta });
    }
    expect(res, this.toString()).to.equal(want);
  }
  toString = () => `register(${this.k}, p${this.p}, ${JSON.stringify(this.meta)})`;
}

class Lookup implements fc.AsyncCommand<Model, Real> {
  constructor(readonly k: string) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const got = await r.reg.lookup(this.k, { namespace: r.namespace });
    const want = live(m, this.k);
    expect(got ? { pid: got.pid, meta: got.meta } : undefined, this.toString()).to.deep.equal(
      want ? { pid: r.procs[want.proc].pid, meta: want.meta } : undefined,
    );
  }
  toString = () => `lookup(${this.k})`;
}

class Unregister implements fc.AsyncCommand<Model, Real> {
  constructor(readonly k: string) {}
  check = () => true;
  async run(m: Model, r: Real) {
    await r.reg.unregister(this.k, { namespace: r.namespace });
    m.entries.delete(this.k);
    expect(await r.reg.lookup(this.k, { namespace: r.namespace }), this.toString()).to.equal(undefined);
  }
  toString = () => `unregister(${this.k})`;
}

class Update implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly k: string,
    readonly meta: Record<string, unknown>,
    readonly merge: boolean,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const res = await r.reg.updateMetadata(this.k, this.meta, { namespace: r.namespace, merge: this.merge }).then(
      (e) => `ok:${JSON.stringify(e.meta)}`,
      (e) => (e instanceof NotFoundError ? 'notfound' : `error:${e}`),
    );
    const cur = live(m, this.k);
    if (cur) cur.meta = this.merge ? (mergePatch(cur.meta, this.meta) as Record<string, unknown>) : this.meta;
    expect(res, this.toString()).to.equal(cur ? `ok:${JSON.stringify(cur.meta)}` : 'notfound');
  }
  toString = () => `update(${this.k}, ${JSON.stringify(this.meta)}${this.merge ? ', merge' : ''})`;
}

class Kill implements fc.AsyncCommand<Model, Real> {
  constructor(readonly p: Proc) {}
  check = (m: Readonly<Model>) => m.alive[this.p];
  async run(m: Model, r: Real) {
    await r.procs[this.p].kill();
    m.alive[this.p] = false;
  }
  toString = () => `kill(p${this.p})`;
}

class List implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real) {
    const got = (await r.reg.list({ namespace: r.namespace })).items.map((e) => `${e.key}=${e.pid}`);
    const want = [...m.entries.keys()]
      .sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
      .flatMap((k) => {
        const e = live(m, k);
        return e ? [`${k}=${r.procs[e.proc].pid}`] : [];
      });
    expect(got, 'list').to.deep.equal(want);
    expect(await r.reg.count({ namespace: r.namespace }), 'count').to.equal(want.length);
  }
  toString = () => 'list()';
}

/** A sweep: dead processes' entries removed from the store (and from any index) at once. */
class Sweep implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(_m: Model, r: Real) {
    await r.reg.cleanup();
  }
  toString = () => 'cleanup()';
}

/** `list --where` against a plain scan: of the model, and of the store's own unfiltered listing. */
class ListWhere implements fc.AsyncCommand<Model, Real> {
  constructor(readonly where: Array<[string, string]>) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const got = (await r.reg.list({ namespace: r.namespace, where: this.where })).items.map((e) => `${e.key}=${e.pid}`);
    const want = [...m.entries.keys()]
      .sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
      .flatMap((k) => {
        const e = live(m, k);
        return e && matchesWhere(e.meta, this.where) ? [`${k}=${r.procs[e.proc].pid}`] : [];
      });
    expect(got, this.toString()).to.deep.equal(want);
    const scan = (await r.reg.list({ namespace: r.namespace })).items
      .filter((e) => matchesWhere(e.meta, this.where))
      .map((e) => `${e.key}=${e.pid}`);
    expect(got, `${this.toString()} against a scan of the store`).to.deep.equal(scan);
  }
  toString = () => `list(--where ${this.where.map(([f, v]) => `${f}=${v}`).join(' --where ')})`;
}

const commands = [
  fc.tuple(key, proc, meta).map(([k, p, m]) => new Register(k, p, m)),
  key.map((k) => new Lookup(k)),
  key.map((k) => new Unregister(k)),
  fc.tuple(key, meta, fc.boolean()).map(([k, m, merge]) => new Update(k, m, merge)),
  proc.map((p) => new Kill(p)),
  fc.constant(new List()),
  fc.constant(new Sweep()),
  where.map((w) => new ListWhere(w)),
];

export function modelSuite(
  name: string,
  factory: () => Promise<Instance>,
  opts: { numRuns?: number; timeout?: number } = {},
): void {
  describe(`model: ${name}`, function () {
    this.timeout(opts.timeout ?? 240_000);
    const get = useInstance(factory);
    it('answers like a reference Map under random operation sequences', async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 25 }), async (cmds) => {
          const procs = await spawnSleepers(3);
          try {
            const real: Real = { reg: get(), namespace: freshNamespace(), procs };
            const model: Model = { entries: new Map(), alive: [true, true, true] };
            await fc.asyncModelRun(() => ({ model, real }), cmds);
            // Then every single-term `list --where` against the plain scans, whatever the history did.
            for (const f of FIELDS) for (const v of TEXTS) await new ListWhere([[f, v]]).run(model, real);
          } finally {
            await Promise.all(procs.map((p) => p.kill()));
          }
        }),
        { numRuns: opts.numRuns ?? Number(process.env.MODEL_RUNS ?? 40) },
      );
    });
  });
}
