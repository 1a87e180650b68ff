/**
 * Every shell example in README.md and docs/*.md runs as printed (issue 15 §4).
 *
 * Each fenced ```sh block is run with `sh -e` (```bash with `bash -e`) in a sandbox that looks like a user's clone: a temporary
 * working folder with the repository's `fixtures/` copied in and `bin/` linked, shared by the blocks
 * of one file (in order, so a later block may use what an earlier one made), a temporary HOME (the
 * XDG folders unset, so `~/.local/share/registry/registry.db` is the default store), and `registry`
 * on PATH (the built `bin/run.js`). Each block runs in its own
 * process group; whatever it left running (`registry serve … &`) is killed when the file's blocks
 * are done. A block may be preceded by one directive comment:
 *
 *   <!-- example: exit=N -->                 the block's expected exit status (default 0)
 *   <!-- example: skip — why, and which test covers it -->
 *
 * A skip must say which test covers the example (a path under test/ or `.ci/run`): an example
 * nobody runs is how docs start to lie.
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { BIN } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Example {
  file: string;
  line: number;
  code: string;
  /** sh (run with `sh -e`) or bash (`bash -e`). */
  lang: 'sh' | 'bash';
  exit: number;
  skip?: string;
}

/** The ```sh / ```bash blocks of a markdown text, with their directives. */
export function extractExamples(file: string, text: string): Example[] {
  const lines = text.split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(\s*)(```+)(\w*)\s*$/.exec(lines[i] ?? '');
    if (!fence) continue;
    const indent = fence[1] ?? '';
    const ticks = fence[2] ?? '```';
    const lang = fence[3] ?? '';
    let j = i + 1;
    while (j < lines.length && !(lines[j] ?? '').startsWith(indent + ticks)) j++;
    if (lang === 'sh' || lang === 'bash') {
      let k = i - 1;
      while (k >= 0 && (lines[k] ?? '').trim() === '') k--;
      const directive = k >= 0 ? /^\s*<!--\s*example:\s*(.*?)\s*-->\s*$/.exec(lines[k] ?? '') : null;
      const ex: Example = {
        file,
        line: i + 1,
        code: lines
          .slice(i + 1, j)
          .map((l) => l.slice(indent.length))
          .join('\n'),
        lang,
        exit: 0,
      };
      if (directive) {
        const d = directive[1] ?? '';
        const exit = /^exit=(\d+)$/.exec(d);
        if (exit) ex.exit = Number(exit[1]);
        else if (/^skip\b/.test(d)) ex.skip = d.replace(/^skip\s*[—:-]?\s*/, '');
        else throw new Error(`${file}:${k + 1}: unknown example directive "${d}"`);
      }
      out.push(ex);
    }
    i = j;
  }
  return out;
}

function docFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

interface Ran {
  code: number | null;
  out: string;
}

function runBlock(ex: Example, dir: string, env: NodeJS.ProcessEnv, groups: number[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    const script = join(dir, '.example.sh');
    writeFileSync(script, ex.code + '\n');
    const child = spawn(ex.lang === 'bash' ? 'bash' : 'sh', ['-e', script], {
      cwd: dir,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid) groups.push(child.pid);
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => {
      out += `\n[killed after ${timeoutMs} ms]`;
      killGroup(child.pid);
    }, timeoutMs);
    // 'exit', not 'close': a server the block left in the background keeps the pipes open.
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      setTimeout(() => resolve({ code: code ?? (signal ? 128 : null), out }), 50);
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

describe('docs: every shell example in README.md and docs/ runs as printed', function () {
  this.timeout(10 * 60_000);

  it('the extractor finds blocks and directives, and refuses an unknown directive', () => {
    const md = [
      '```sh',
      'echo a',
      '```',
      '<!-- example: exit=5 -->',
      '```sh',
      'exit 5',
      '```',
      '<!-- example: skip — covered by test/x.test.ts -->',
      '```bash',
      'rm -rf /',
      '```',
      '```json',
      '{}',
      '```',
    ].join('\n');
    const ex = extractExamples('x.md', md);
    expect(ex.map((e) => [e.line, e.exit, e.skip])).to.deep.equal([
      [1, 0, undefined],
      [5, 5, undefined],
      [9, 0, 'covered by test/x.test.ts'],
    ]);
    expect(() => extractExamples('y.md', '<!-- example: maybe -->\n```sh\nx\n```')).to.throw(
      /unknown example directive/,
    );
  });

  // EXAMPLES=README narrows to the files whose path contains it.
  const only = process.env.EXAMPLES;
  for (const file of docFiles().filter((f) => !only || f.includes(only))) {
    const examples = extractExamples(file, readFileSync(join(ROOT, file), 'utf8'));
    if (examples.length === 0) continue;
    it(`${file}: ${examples.length} example(s)`, async () => {
      const t = tempDir('procreg-docs-');
      const dir = join(t.dir, 'work');
      const bin = join(t.dir, 'bin');
      mkdirSync(dir, { recursive: true });
      mkdirSync(bin, { recursive: true });
      cpSync(join(ROOT, 'fixtures'), join(dir, 'fixtures'), { recursive: true });
      symlinkSync(join(ROOT, 'bin'), join(dir, 'bin'));
      writeFileSync(join(bin, 'registry'), `#!/bin/sh\nexec node ${JSON.stringify(BIN)} "$@"\n`);
      chmodSync(join(bin, 'registry'), 0o755);
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        HOME: t.dir,
        NO_COLOR: '1',
        CI: '1',
      };
      for (const k of [
        'REGISTRY_BACKEND',
        'REGISTRY_PROFILE',
        'REGISTRY_CONFIG',
        'REGISTRY_NODE',
        'REGISTRY_TOKEN',
        'FORCE_COLOR',
      ])
        delete env[k];
      for (const k of ['XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_STATE_HOME', 'XDG_CACHE_HOME']) delete env[k];
      const groups: number[] = [];
      const failures: string[] = [];
      try {
        for (const ex of examples) {
          if (ex.skip !== undefined) {
            if (!/test\/\S+|\.ci\/run/.test(ex.skip))
              failures.push(`${file}:${ex.line}: a skipped example must name the test that covers it ("${ex.skip}")`);
            continue;
          }
          const r = await runBlock(ex, dir, env, groups, 120_000);
          if (r.code !== ex.exit)
            failures.push(
              `${file}:${ex.line}: exit ${r.code}, expected ${ex.exit}\n--- block\n${ex.code}\n--- output\n${r.out.slice(-3000)}`,
            );
        }
      } finally {
        for (const g of groups) killGroup(g);
        t.cleanup();
      }
      expect(failures, failures.join('\n\n')).to.deep.equal([]);
    });
  }
});
