/**
 * Operation stats: exact counts, errors by code, HDR percentiles over a sample that times every
 * call at first and one in `sampleEvery` after, nothing recorded with `stats: false`.
 */
import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { OperationStats } from '../../src/registry/stats.js';
import { ProcessRegistry } from '../../src/registry/service.js';
import { present } from '../support/expect.js';

describe('operation stats', () => {
  it('counts every call exactly; times the first calls all, then one in sampleEvery', () => {
    const s = new OperationStats(true, 64, 100);
    for (let i = 0; i < 100; i++) s.trackSync('op', () => i);
    const first = s.snapshot().operations.op;
    present(first, 'op is counted');
    expect([first.count, first.latencyMs.samples]).to.deep.equal([100, 100]);
    for (let i = 0; i < 6400; i++) s.trackSync('op', () => i);
    const op = s.snapshot().operations.op;
    present(op, 'op is counted');
    expect(op.count).to.equal(6500);
    expect(op.latencyMs.samples).to.equal(100 + 6400 / 64);
  });

  it('percentiles come from the histogram: a 3 ms operation reads as ≥ 3 ms, a fast one as far less', () => {
    const s = new OperationStats(true, 1, 0);
    const spin = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    for (let i = 0; i < 20; i++) s.trackSync('slow', () => spin(3));
    for (let i = 0; i < 2000; i++) s.trackSync('fast', () => i);
    const { slow, fast } = s.snapshot().operations;
    present(slow, 'slow is counted');
    present(fast, 'fast is counted');
    // Percentiles are the top of their HDR bucket (3 significant digits): max may read 0.1 % below p99.
    const l = slow.latencyMs;
    expect(l.p50 >= 3 && l.p90 >= l.p50 && l.p99 >= l.p90 && l.max >= l.p99 * 0.999, JSON.stringify(l)).to.be.ok;
    expect(fast.latencyMs.p50 < slow.latencyMs.p50, JSON.stringify(fast.latencyMs)).to.be.ok;
    expect(fast.latencyMs.samples, 'buffered samples are all folded in at snapshot').to.equal(2000);
  });

  it('through the service: errors by code; nothing at all with stats: false', async () => {
    const on = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
    await on.register('a', process.pid);
    for (let i = 0; i < 10; i++) on.lookupSync('a');
    await on.lookup('missing');
    expect(() => on.lookupSync('')).to.throw(/key/);
    const { lookup, register } = on.statsSnapshot().operations;
    present(lookup, 'lookup is counted');
    present(register, 'register is counted');
    expect(lookup.count).to.equal(12);
    expect(lookup.errors).to.equal(1);
    expect(lookup.errorCodes).to.deep.equal({ INVALID_INPUT: 1 });
    expect(register.count).to.equal(1);
    await on.close();

    const off = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0, stats: false });
    await off.register('a', process.pid);
    off.lookupSync('a');
    expect(off.statsSnapshot().operations).to.deep.equal({});
    await off.close();
  });
});

describe('registry stats over a long-lived registry (the REPL hook)', () => {
  it("shows the optimization layer's cache: hits, misses, hit rate", async () => {
    const { Config } = await import('@oclif/core');
    const { RegistryCommand } = await import('../../src/cli/base.js');
    const { default: Stats } = await import('../../src/commands/stats.js');
    const config = await Config.load(fileURLToPath(new URL('../../..', import.meta.url)));
    const reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
    await reg.register('cached', process.pid);
    for (let i = 0; i < 4; i++) await reg.cachedLookup('cached');
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = (chunk: string) => (out.push(String(chunk)), true);
    RegistryCommand.session = {
      registry: reg,
      resolved: { backend: 'memory:', backendOpts: {}, source: 'test' },
      json: true,
    };
    try {
      const r = (await Stats.run(['--json'], config)) as {
        operations: Record<string, { count: number }>;
        optimization: { cache: { hits: number; misses: number; hitRate: number } };
      };
      expect(r.optimization.cache.misses).to.equal(1);
      expect(r.optimization.cache.hits).to.equal(3);
      expect(r.optimization.cache.hitRate).to.equal(0.75);
      expect(r.operations.register?.count).to.equal(1);
    } finally {
      RegistryCommand.session = undefined;
      process.stdout.write = write;
      await reg.close();
    }
    expect(out.join(''), 'printed as JSON too').to.match(/"hitRate": 0\.75/);
  });
});
