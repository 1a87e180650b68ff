/**
 * The linearizability checker on small known histories (linearizable and not, including the two
 * etcd defects of issue 13), the JSON form of histories, and a larger randomised history.
 */
import { expect } from 'chai';
import { fromJSON, toJSON, type Input, type Operation, type Output } from '../support/history.js';
import { assertLinearizable, checkHistory, linearizableKey, searchKey, step } from '../support/linearizability.js';

/** An operation of key `k` (default "k") by `client`, called at `call` and returning at `ret` (ms). */
function op(client: number, call: number, ret: number, input: Input, output: Output, key = 'k'): Operation {
  return { client, key, input, output, call, ret: 'unknown' in output ? Infinity : ret };
}
const reg = (pid: number, meta: Record<string, unknown> = {}): Input => ({ f: 'register', pid, meta });
const look: Input = { f: 'lookup' };
const unreg = (pid?: number): Input => (pid === undefined ? { f: 'unregister' } : { f: 'unregister', pid });
const ok: Output = { ok: true };
const held = (holder: number): Output => ({ ok: false, holder });
const found = (pid: number, meta: Record<string, unknown> = {}): Output => ({ found: true, pid, meta });
const none: Output = { found: false };
const removed = (r: boolean): Output => ({ removed: r });
const unknown: Output = { unknown: true };
const UNKNOWN_SHARE = Number(process.env.CHECKER_UNKNOWN ?? 0.002);

describe('linearizability checker', function () {
  it('accepts a sequential history that follows the model', () => {
    const h = [
      op(1, 0, 1, look, none),
      op(1, 2, 3, reg(10, { v: 1 }), ok),
      op(2, 4, 5, reg(11), held(10)),
      op(2, 6, 7, look, found(10, { v: 1 })),
      op(1, 8, 9, reg(10, { v: 2 }), ok), // same pid again: metadata replaced
      op(2, 10, 11, look, found(10, { v: 2 })),
      op(2, 12, 13, unreg(11), removed(false)),
      op(1, 14, 15, unreg(10), removed(true)),
      op(1, 16, 17, unreg(), removed(false)),
      op(2, 18, 19, look, none),
    ];
    expect(checkHistory(h).ok).to.equal(true);
  });

  it('orders overlapping operations either way, but not against real time', () => {
    // Two overlapping registers: one wins, the other names it.
    expect(linearizableKey([op(1, 0, 10, reg(1), ok), op(2, 1, 9, reg(2), held(1))])).to.equal(true);
    expect(linearizableKey([op(1, 0, 10, reg(1), held(2)), op(2, 1, 9, reg(2), ok)])).to.equal(true);
    // Both cannot win.
    expect(linearizableKey([op(1, 0, 10, reg(1), ok), op(2, 1, 9, reg(2), ok)])).to.equal(false);
    // A lookup that sees a register must not precede it in real time.
    expect(linearizableKey([op(1, 0, 1, look, found(1)), op(2, 2, 3, reg(1), ok)])).to.equal(false);
    expect(linearizableKey([op(1, 0, 3, look, found(1)), op(2, 2, 4, reg(1), ok)])).to.equal(true);
  });

  it('merges and replaces metadata; meta on a free key finds nothing', () => {
    const h = [
      op(1, 0, 1, reg(5, { a: 1, b: { c: 1 } }), ok),
      op(1, 2, 3, { f: 'meta', meta: { b: { d: 2 }, a: null }, merge: true }, found(5, { b: { c: 1, d: 2 } })),
      op(2, 4, 5, look, found(5, { b: { d: 2, c: 1 } })),
      op(1, 6, 7, { f: 'meta', meta: { z: 1 }, merge: false }, found(5, { z: 1 })),
      op(1, 8, 9, unreg(), removed(true)),
      op(1, 10, 11, { f: 'meta', meta: { z: 2 }, merge: false }, none),
    ];
    expect(checkHistory(h).ok).to.equal(true);
    expect(step({ pid: 5, meta: '{}' }, { input: { f: 'meta', meta: { a: 1 }, merge: true }, output: none })).to.equal(
      undefined,
    );
  });

  it('defect 1 (stale cache): lookup → nothing, register(Y) ok, unregister(pid Y) → false is NOT linearizable', () => {
    const h = [
      op(1, 0, 1, look, none),
      op(1, 2, 3, reg(20), ok),
      op(1, 4, 4.2, unreg(20), removed(false)),
      op(2, 5, 6, look, found(20)),
    ];
    const r = checkHistory(h);
    expect(r.ok).to.equal(false);
    const v = r.violations[0];
    expect(v?.witness.map((o) => o.input.f)).to.deep.equal(['register', 'unregister']);
    expect(v?.text).to.match(/register\(pid 20, \{\}\) → ok/);
    expect(v?.text).to.match(/unregister\(if pid 20\) → removed false/);
    expect(v?.text).to.match(/\+4\.000 → +\+4\.200 ms/);
  });

  it('defect 2 (retried ambiguous write): a committed register answered conflict naming the holder it displaced is NOT linearizable', () => {
    // 20825 held the key and unregistered; 20826's register commits (a later lookup sees it), yet it
    // was answered "conflict (holder 20825)" after a retry.
    const h = [
      op(1, 0, 1, reg(20825), ok),
      op(1, 2, 3, unreg(20825), removed(true)),
      op(2, 4, 20, reg(20826), held(20825)),
      op(3, 21, 22, look, found(20826)),
    ];
    const r = checkHistory(h);
    expect(r.ok).to.equal(false);
    expect(r.violations[0]?.witness.length).to.be.at.most(4);
    // …and answering "conflict" naming the caller itself is just as wrong.
    expect(linearizableKey([op(2, 4, 20, reg(20826), held(20826))])).to.equal(false);
    // A committed delete retried into "false": nobody else removed the entry, yet it is gone.
    expect(
      linearizableKey([op(1, 0, 1, reg(7), ok), op(1, 2, 10, unreg(), removed(false)), op(2, 11, 12, look, none)]),
    ).to.equal(false);
  });

  it('an operation of unknown outcome may have taken effect, at any later time, or never', () => {
    expect(linearizableKey([op(1, 0, 1, reg(3), unknown), op(2, 5, 6, look, found(3))])).to.equal(true);
    expect(linearizableKey([op(1, 0, 1, reg(3), unknown), op(2, 5, 6, look, none)])).to.equal(true);
    // Late: not seen at 5–6, seen at 7–8.
    expect(
      linearizableKey([op(1, 0, 1, reg(3), unknown), op(2, 5, 6, look, none), op(2, 7, 8, look, found(3))]),
    ).to.equal(true);
    // But it takes effect once: seen, then gone with nobody removing it, is a violation.
    expect(
      linearizableKey([op(1, 0, 1, reg(3), unknown), op(2, 5, 6, look, found(3)), op(2, 7, 8, look, none)]),
    ).to.equal(false);
    // Not before its call.
    expect(linearizableKey([op(2, 0, 1, look, found(3)), op(1, 2, 3, reg(3), unknown)])).to.equal(false);
  });

  it('checks each key on its own (P-compositionality) and names the failing key', () => {
    const h = [
      op(1, 0, 1, reg(1), ok, 'a'),
      op(2, 0, 1, reg(2), ok, 'b'),
      op(1, 2, 3, look, found(1), 'a'),
      op(2, 2, 3, look, found(1), 'b'),
    ];
    const r = checkHistory(h);
    expect(r.keys).to.equal(2);
    expect(r.violations.map((v) => v.key)).to.deep.equal(['b']);
  });

  it('histories travel as JSON, unknown returns included', () => {
    const h = [op(1, 0.5, 1.25, reg(1, { x: [1] }), ok), op(2, 2, 0, unreg(), unknown)];
    const back = fromJSON(toJSON(h));
    expect(back).to.deep.equal(h);
    expect(back[1]?.ret).to.equal(Infinity);
  });

  describe('search budget', () => {
    /** `n` fully overlapping registers of one pid with different metadata, then a read nobody wrote. */
    const heavy = (n: number): Operation[] => [
      ...Array.from({ length: n }, (_, i) => op(i, 0, 100, reg(1, { n: i }), ok)),
      op(99, 200, 201, look, found(2)),
    ];

    it('memoisation: n overlapping operations explore about 2^n configurations, not n! orderings', () => {
      // 12 identical overlapping registers, then a read no order explains: the search must exhaust
      // every configuration before it can say so. 12! = 479,001,600 orderings without the cache.
      const h = [...Array.from({ length: 12 }, (_, i) => op(i, 0, 100, reg(1), ok)), op(99, 200, 201, look, found(2))];
      const r = searchKey(h);
      expect(r.verdict).to.equal('violation');
      expect(r.memo, 'configurations kept').to.be.at.most(2 ** 12);
      expect(r.steps, 'search steps').to.be.below(200_000);
    });

    it('a search that runs out of steps ends "undecided" at once, with its step count', () => {
      const t0 = Date.now();
      const r = searchKey(heavy(16), null, { maxSteps: 10_000 });
      expect(r.verdict).to.equal('undecided');
      expect(r.steps).to.equal(10_001);
      expect(Date.now() - t0).to.be.below(5_000);
    });

    it('a search past its deadline ends "undecided" (a synchronous search cannot hang a test)', () => {
      const t0 = Date.now();
      const r = searchKey(heavy(16), null, { deadline: Date.now() + 300 });
      expect(r.verdict).to.equal('undecided');
      expect(Date.now() - t0).to.be.below(5_000);
    });

    it('checkHistory reports an undecided key (name, size, unknown outcomes, steps) as not ok; assertLinearizable fails with it', () => {
      const h = [
        ...heavy(16).map((o) => ({ ...o, key: 'busy' })),
        op(1, 0, 1, reg(3), ok, 'calm'),
        op(2, 2, 3, look, found(3), 'calm'),
        op(3, 4, 5, unreg(3), unknown, 'busy'),
      ];
      const r = checkHistory(h, { maxSteps: 5_000 });
      expect(r.ok).to.equal(false);
      expect(r.violations).to.deep.equal([]);
      expect(r.undecided.map((u) => [u.key, u.total, u.unknown, u.steps])).to.deep.equal([['busy', 18, 1, 5_001]]);
      expect(() => assertLinearizable(h, 'scenario X', { maxSteps: 5_000 })).to.throw(
        /scenario X: history undecided \(20 operations, 2 keys, 1 of unknown outcome\)\nkey "busy": undecided \(budget exhausted after 5001 steps; 18 operations, 1 of unknown outcome\)/,
      );
      // With the default budget a smaller one is decided: not linearizable, with a witness.
      const d = checkHistory(heavy(8));
      expect(d.undecided).to.deep.equal([]);
      expect(d.violations.map((v) => v.witness.length)).to.deep.equal([1]);
    });
  });

  it('checks a randomised concurrent history of 6,000 operations quickly, and finds one corrupted answer', function () {
    this.timeout(60_000);
    // Simulate 10 clients on 3 keys against the model, each operation taking effect at a random
    // point inside its interval; outcomes sometimes reported unknown.
    let seed = 12345;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    type Ev = { at: number; run: () => void };
    const h: Operation[] = [];
    const state = new Map<string, { pid: number; meta: Record<string, unknown> } | null>();
    const clientsFree = Array.from({ length: 10 }, () => 0);
    const evs: Ev[] = [];
    for (let n = 0; n < 6000; n++) {
      const c = n % 10;
      const call = (clientsFree[c] ?? 0) + rnd() * 2;
      const ret = call + 0.1 + rnd() * 5;
      clientsFree[c] = ret;
      const key = ['x', 'y', 'z'][Math.floor(rnd() * 3)] ?? 'x';
      const pid = 100 + Math.floor(rnd() * 4);
      const r = rnd();
      const input: Input =
        r < 0.3
          ? reg(pid, { n })
          : r < 0.6
            ? look
            : r < 0.75
              ? unreg()
              : r < 0.9
                ? unreg(pid)
                : { f: 'meta', meta: { m: n }, merge: rnd() < 0.5 };
      const o: Operation = { client: c, key, input, output: unknown, call, ret };
      h.push(o);
      const at = call + rnd() * (ret - call);
      evs.push({
        at,
        run: () => {
          const s = state.get(key) ?? null;
          let out: Output;
          if (input.f === 'register') {
            if (s === null || s.pid === input.pid) {
              state.set(key, { pid: input.pid, meta: input.meta });
              out = ok;
            } else out = held(s.pid);
          } else if (input.f === 'lookup') out = s ? found(s.pid, s.meta) : none;
          else if (input.f === 'unregister') {
            const hit = s !== null && (input.pid === undefined || s.pid === input.pid);
            if (hit) state.set(key, null);
            out = removed(hit);
          } else if (s === null) out = none;
          else {
            const meta = input.merge ? { ...s.meta, ...input.meta } : input.meta;
            state.set(key, { pid: s.pid, meta });
            out = found(s.pid, meta);
          }
          o.output = rnd() < UNKNOWN_SHARE ? unknown : out;
          if ('unknown' in o.output) o.ret = Infinity;
        },
      });
    }
    for (const e of evs.sort((a, b) => a.at - b.at)) e.run();
    const t0 = Date.now();
    expect(checkHistory(h).ok).to.equal(true);
    expect(Date.now() - t0, 'checked within 20 s').to.be.below(20_000);
    // Corrupt one late lookup that found something: claim a different holder.
    const victim = [...h].reverse().find((o) => o.input.f === 'lookup' && 'found' in o.output && o.output.found);
    expect(victim).to.not.equal(undefined);
    if (victim && 'found' in victim.output && victim.output.found) victim.output = found(victim.output.pid + 50);
    const r = checkHistory(h);
    expect(r.ok).to.equal(false);
    expect(r.violations[0]?.witness.length).to.be.below(40);
  });
});
