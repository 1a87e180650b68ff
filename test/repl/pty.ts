/**
 * Drive `registry repl` through a real pseudo-terminal (node-pty): type keys, read what the
 * terminal shows (escape sequences stripped), wait for text with deadlines — never fixed sleeps.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import type { IPty } from 'node-pty';
import type * as NodePty from 'node-pty';
import { Screen } from './screen.js';

const require = createRequire(import.meta.url);
const pty = require('node-pty') as typeof NodePty;

/** bin/run.js of this checkout (dist/test/repl → ../../../bin). */
export const BIN = fileURLToPath(new URL('../../../bin/run.js', import.meta.url));

export interface Term {
  pty: IPty;
  /** Everything the terminal received, raw. */
  raw(): string;
  /** The screen from the line that held the cursor at `mark()` on. */
  text(): string;
  /** The line the cursor is on. */
  cursorLine(): string;
  /** The whole screen, scrollback included. */
  screen(): string;
  /** Look only at the screen from the cursor's line on (the next waits ignore what is above). */
  mark(): void;
  type(keys: string): void;
  /** Wait until the new output matches; returns the stripped text. */
  waitFor(what: string | RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code. */
  exited: Promise<number>;
  kill(): Promise<void>;
  /** Is the terminal in canonical (cooked) mode — a command runs — or raw — the prompt reads keys? */
  cooked(): boolean;
}

export function strip(s: string): string {
  return stripVTControlCharacters(s).replace(/\r/g, '');
}

/** The test's environment minus what would change the REPL's behaviour (colour forcing, CI), plus `extra`. */
function ptyEnv(extra: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      v !== undefined &&
      !['NO_COLOR', 'FORCE_COLOR', 'CI', 'REGISTRY_BACKEND', 'REGISTRY_PROFILE', 'REGISTRY_CONFIG'].includes(k)
    )
      env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export function spawnRepl(args: string[], env: NodeJS.ProcessEnv, opts: { cols?: number } = {}): Term {
  const cols = opts.cols ?? 120;
  const p = pty.spawn(process.execPath, [BIN, 'repl', ...args], {
    name: 'xterm-256color',
    cols,
    rows: 40,
    cwd: process.cwd(),
    env: ptyEnv(env),
  });
  let all = '';
  let from = 0;
  const screen = new Screen(cols);
  const waiters = new Set<() => void>();
  p.onData((d) => {
    all += d;
    screen.write(d);
    for (const w of waiters) w();
  });
  let code: number | undefined;
  const exited = new Promise<number>((resolve) =>
    p.onExit((e) => {
      code = e.exitCode;
      for (const w of waiters) w();
      resolve(e.exitCode);
    }),
  );
  const t: Term = {
    pty: p,
    raw: () => all,
    text: () => screen.text(from),
    cursorLine: () => screen.cursorLine(),
    screen: () => screen.text(0),
    mark: () => {
      from = screen.row;
    },
    type: (keys) => p.write(keys),
    waitFor: (what, timeoutMs = 15_000) =>
      new Promise<string>((resolve, reject) => {
        const test = () => {
          const s = t.text();
          return typeof what === 'string' ? s.includes(what) : what.test(s);
        };
        const check = () => {
          if (test()) {
            done();
            resolve(t.text());
          } else if (code !== undefined) {
            done();
            reject(new Error(`repl exited (${code}) before showing ${what}; screen:\n${t.text()}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; screen:\n${t.text()}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    exited,
    cooked: () => {
      const dev = (p as unknown as { _pty: string })._pty;
      const r = spawnSync('stty', ['-a', '-F', dev], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`stty -F ${dev}: ${r.stderr}`);
      return /(^|\s)icanon(\s|$)/.test(r.stdout);
    },
    kill: async () => {
      if (code === undefined) {
        p.kill('SIGKILL');
        await exited;
      }
    },
  };
  return t;
}
