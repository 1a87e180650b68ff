/** The node's logs: JSON lines when stderr is a pipe, readable pino-pretty lines on a terminal, `--log-format` to choose. */
import { expect } from 'chai';
import { createRequire } from 'node:module';
import { stripVTControlCharacters } from 'node:util';
import type * as NodePty from 'node-pty';
import { BIN } from '../support/cli.js';
import { spawnServe } from '../support/node.js';

const require = createRequire(import.meta.url);
const pty = require('node-pty') as typeof NodePty;

/** Run `registry serve` on a pseudo-terminal until its output matches `until`, then SIGTERM it. */
async function serveOnTty(args: string[], until: RegExp): Promise<string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !['NO_COLOR', 'FORCE_COLOR', 'REGISTRY_LOG_FORMAT'].includes(k)) env[k] = v;
  const p = pty.spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '-b', 'memory:', ...args], {
    name: 'xterm-256color',
    cols: 160,
    rows: 40,
    env,
  });
  let out = '';
  const exited = new Promise<number>((resolve) => p.onExit((e) => resolve(e.exitCode)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${String(until)} within 60 s; saw: ${out}`)), 60_000);
      p.onData((d) => {
        out += d;
        if (until.test(stripVTControlCharacters(out))) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } finally {
    p.kill('SIGTERM');
    await exited;
  }
  return out;
}

describe('registry serve: logs', function () {
  this.timeout(120_000);

  it('piped stderr gets JSON lines (pino), one object per line', async () => {
    const node = await spawnServe(['-b', 'memory:']);
    try {
      const deadline = Date.now() + 30_000;
      while (!node.stderr().includes('registry node listening') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const lines = node.stderr().trim().split('\n');
      const parsed = lines.map((l) => JSON.parse(l) as { level: number; msg: string; url?: string });
      const listening = parsed.find((l) => l.msg === 'registry node listening');
      expect(listening, node.stderr()).to.include({ level: 30, url: node.url });
    } finally {
      node.child.kill('SIGTERM');
      await node.exited;
    }
  });

  it('a terminal gets readable lines: time, level, message, fields — no JSON objects, colour on', async () => {
    const raw = await serveOnTty([], /registry node listening[^\n]*\n(.*\n)*.*url:/);
    const text = stripVTControlCharacters(raw).replace(/\r/g, '');
    expect(text).to.match(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: registry node listening$/m);
    expect(text).to.match(/^\s+url: "http:\/\/127\.0\.0\.1:\d+"$/m);
    expect(text.split('\n').some((l) => l.startsWith('{"level"'))).to.equal(false);
    expect(raw).to.not.equal(text); // ANSI colour on a terminal without NO_COLOR
  });

  it('--log-format json keeps JSON lines on a terminal', async () => {
    const raw = await serveOnTty(['--log-format', 'json'], /"msg":"registry node listening"/);
    const line = stripVTControlCharacters(raw)
      .replace(/\r/g, '')
      .split('\n')
      .find((l) => l.includes('"msg":"registry node listening"'));
    expect(JSON.parse(line ?? '{}')).to.include({ level: 30, msg: 'registry node listening' });
  });
});
