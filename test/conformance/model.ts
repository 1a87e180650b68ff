/**
 * Model-based property test (fast-check): random register / lookup / unregister / update /
 * kill-process sequences run against a backend (through the service) and against a reference
 * `Map`; every answer must be the same. Processes are real and really killed.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { AlreadyRegisteredError, DeadProcessError, NotFoundError } from '../../src/backends/contract.js';
import type { ProcessRegistry } from '../../src/registry/service.js';
import { spawnSleepers, type Sleeper, type Tuple } from '../support/processes.js';
import { freshNamespace, useInstance, type Instance } from './suite.js';

/** Three processes per run, indexed by `Proc`: tuples, so every index is known to be there. */
type Proc = 0 | 1 | 2;
type Model = { entries: Map<string, { proc: Proc; meta: Record<string, unknown> }>; alive: Tuple<boolean, 3> };
type Real = { reg: ProcessRegistry; namespace: string; procs: Tuple<Sleeper, 3> };

const KEYS = ['a', 'b', 'c', 'd/e', 'f g'];
const key = fc.constantFrom(...KEYS);
const proc = fc.constantFrom<Proc>(0, 1, 2);
const meta = fc
  .dictionary(fc.constantFrom('role', 'n', 'tag'), fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.boolean()), {
    maxKeys: 3,
  })
  .map((d) => ({ ...d })); // plain objects, as JSON gives back

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
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const res = await r.reg.updateMetadata(this.k, this.meta, { namespace: r.namespace }).then(
      (e) => `ok:${JSON.stringify(e.meta)}`,
      (e) => (e instanceof NotFoundError ? 'notfound' : `error:${e}`),
    );
    const cur = live(m, this.k);
    if (cur) cur.meta = this.meta;
    expect(res, this.toString()).to.equal(cur ? `ok:${JSON.stringify(this.meta)}` : 'notfound');
  }
  toString = () => `update(${this.k}, ${JSON.stringify(this.meta)})`;
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

const commands = [
  fc.tuple(key, proc, meta).map(([k, p, m]) => new Register(k, p, m)),
  key.map((k) => new Lookup(k)),
  key.map((k) => new Unregister(k)),
  fc.tuple(key, meta).map(([k, m]) => new Update(k, m)),
  proc.map((p) => new Kill(p)),
  fc.constant(new List()),
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
            const setup = (): { model: Model; real: Real } => ({
              model: { entries: new Map(), alive: [true, true, true] },
              real,
            });
            await fc.asyncModelRun(setup, cmds);
          } finally {
            await Promise.all(procs.map((p) => p.kill()));
          }
        }),
        { numRuns: opts.numRuns ?? Number(process.env.MODEL_RUNS ?? 40) },
      );
    });
  });
}
