/**
 * `GET /metrics` against Prometheus's own checker: `promtool check metrics` (Debian package
 * `prometheus`, installed by .ci/run) must find nothing, and operation latency must be a real
 * histogram whose buckets add up.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import type { RegistryNode } from '../../src/node/server.js';
import { LATENCY_BUCKETS } from '../../src/node/metrics.js';
import { startNode } from '../support/node.js';

async function scrape(node: RegistryNode): Promise<string> {
  const r = await fetch(`${node.url}/metrics`);
  expect(r.status).to.equal(200);
  expect(r.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
  return r.text();
}

/** promtool's findings (lint included) for an exposition; exit code 0 and no output when clean. */
function promtool(text: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool not runnable (apt-get install prometheus): ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

/** The samples of one metric family line by line: `name{labels} value`. */
function samples(text: string, name: string): Array<{ labels: string; value: number }> {
  const out: Array<{ labels: string; value: number }> = [];
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm')))
    out.push({ labels: m[1] ?? '', value: Number(m[2]) });
  return out;
}

describe('node: /metrics passes promtool', function () {
  this.timeout(60_000);
  let node: RegistryNode;
  before(async () => {
    node = await startNode('memory:');
  });
  after(() => node?.close());

  it('promtool check metrics finds no problem after real traffic, errors included', async () => {
    const put = (key: string, pid: number) =>
      fetch(`${node.url}/v1/registrations/default/${key}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ pid }),
      });
    expect((await put('m1', process.pid)).status).to.equal(201);
    expect((await put('m2', 0)).status).to.equal(400);
    for (let i = 0; i < 5; i++) await fetch(`${node.url}/v1/registrations/default/m1`);
    expect((await fetch(`${node.url}/v1/registrations/default/absent`)).status).to.equal(404);
    await fetch(`${node.url}/v1/registrations/default`);
    const text = await scrape(node);
    const r = promtool(text);
    expect(r.out, 'promtool findings').to.equal('');
    expect(r.status).to.equal(0);
    // The gauges prom-client names like counters are gone; the by-type gauges stay.
    expect(text).to.not.match(/^nodejs_active_\w+_total/m);
    expect(text).to.match(/^# TYPE nodejs_active_handles gauge$/m);
    expect(text).to.not.match(/quantile=/);
  });

  it('operation latency is a histogram: cumulative buckets, +Inf = _count = timed calls', async () => {
    const text = await scrape(node);
    expect(text).to.match(/^# TYPE procreg_operation_duration_seconds histogram$/m);
    const buckets = samples(text, 'procreg_operation_duration_seconds_bucket').filter((s) =>
      s.labels.includes('operation="lookup"'),
    );
    expect(buckets.map((b) => /le="([^"]+)"/.exec(b.labels)?.[1])).to.deep.equal([
      ...LATENCY_BUCKETS.map(String),
      '+Inf',
    ]);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).to.be.at.least(buckets[i - 1]!.value);
    // Six lookups so far (five hits, one miss), each timed: the first 1024 calls all are.
    const count = samples(text, 'procreg_operation_duration_seconds_count').find((s) =>
      s.labels.includes('operation="lookup"'),
    );
    expect(count?.value).to.equal(6);
    expect(buckets.at(-1)!.value).to.equal(6);
    expect(buckets.at(-2)!.value, 'a lookup on memory: takes far less than 10 s').to.equal(6);
    const sum = samples(text, 'procreg_operation_duration_seconds_sum').find((s) =>
      s.labels.includes('operation="lookup"'),
    );
    expect(sum!.value)
      .to.be.greaterThan(0)
      .and.lessThan(6 * 10);
  });

  it('promtool rejects what the node used to serve (the checker can fail)', () => {
    const old = [
      '# HELP procreg_operation_duration_seconds Latency quantiles.',
      '# TYPE procreg_operation_duration_seconds gauge',
      'procreg_operation_duration_seconds{operation="lookup",quantile="0.5"} 0.0001',
      '# HELP nodejs_active_handles_total Number of active libuv handles.',
      '# TYPE nodejs_active_handles_total gauge',
      'nodejs_active_handles_total 4',
      '',
    ].join('\n');
    const r = promtool(old);
    expect(r.status).to.not.equal(0);
    expect(r.out).to.match(/quantile/);
    expect(r.out).to.match(/_total/);
  });
});
