/**
 * Persistent REPL history, one file per backend under `$XDG_STATE_HOME/registry/history/`
 * (XDG default `~/.local/state`). Lines are appended as they are entered (a crash loses nothing)
 * and the file is trimmed to the last `max` lines when the REPL leaves the backend.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';

export const HISTORY_SIZE = 1000;

/** `$XDG_STATE_HOME/registry` (default `~/.local/state/registry`). */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || join(env.HOME || os.homedir(), '.local', 'state');
  return join(base, 'registry');
}

/** The history file of one backend URL: a readable slug plus a hash, so two URLs never share one. */
export function historyPath(backendUrl: string, env: NodeJS.ProcessEnv = process.env): string {
  const slug =
    backendUrl
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^_+|_+$/g, '')
      .slice(-60) || 'backend';
  const hash = createHash('sha256').update(backendUrl).digest('hex').slice(0, 10);
  return join(stateDir(env), 'history', `${slug}-${hash}`);
}

export class HistoryFile {
  private failed = false;
  private last: string | undefined;

  constructor(
    readonly path: string,
    private readonly max = HISTORY_SIZE,
  ) {}

  /** The stored lines, newest first (readline's order). A missing file is an empty history. */
  load(): string[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    const seen = new Set<string>();
    const out: string[] = [];
    for (const l of text.split('\n').reverse()) {
      if (out.length >= this.max) break;
      if (l.trim() === '' || seen.has(l)) continue; // newest occurrence wins, as readline keeps it
      seen.add(l);
      out.push(l);
    }
    this.last = out[0];
    return out;
  }

  /** Record one entered line (lines starting with a space, and repeats of the last line, are kept out, as in bash). */
  append(line: string): void {
    if (this.failed || line.trim() === '' || line.startsWith(' ') || line.includes('\n') || line === this.last) return;
    this.last = line;
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      appendFileSync(this.path, `${line}\n`, { mode: 0o600 });
    } catch (err) {
      this.failed = true; // one warning, then history is kept in memory only
      process.stderr.write(`registry: history not saved to ${this.path}: ${(err as Error).message}\n`);
    }
  }

  /** Keep only the newest `max` lines on disk. */
  trim(): void {
    if (this.failed) return;
    try {
      const lines = readFileSync(this.path, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
      if (lines.length > this.max) writeFileSync(this.path, `${lines.slice(-this.max).join('\n')}\n`, { mode: 0o600 });
    } catch {
      // nothing stored yet
    }
  }
}
