/**
 * The REPL's line editor on a terminal: node:readline (editing keys, history, TAB completion)
 * fed through a small input proxy, so the REPL can add what readline lacks — Ctrl-R reverse
 * search, inline argument hints — and hand the terminal to a running command (cooked mode, so
 * Ctrl-C is a real SIGINT that the REPL turns into cancelling the command, and an interactive
 * prompt of the command reads the keys itself).
 */
import { EventEmitter } from 'node:events';
import readline from 'node:readline';
import { StringDecoder } from 'node:string_decoder';
import type { ReadStream, WriteStream } from 'node:tty';

/** readline's undocumented but stable members this editor uses (Node 20). */
interface ReadlineInternals {
  line: string;
  cursor: number;
  history: string[];
  clearLine(): void;
}

/** What readline reads: the keys the editor lets through, synchronously. */
class KeyInput extends EventEmitter {
  readonly isTTY = true;
  private paused = false;
  private queued: string[] = [];

  constructor(private readonly tty: ReadStream) {
    super();
  }

  get isRaw(): boolean {
    return this.tty.isRaw;
  }

  setRawMode(mode: boolean): this {
    this.tty.setRawMode(mode);
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    while (!this.paused && this.queued.length) this.emit('data', this.queued.shift());
    return this;
  }

  isPaused(): boolean {
    return this.paused;
  }

  feed(s: string): void {
    if (this.paused) this.queued.push(s);
    else this.emit('data', s);
  }
}

export interface LineEditorOptions {
  input: ReadStream;
  output: WriteStream;
  history: string[];
  historySize: number;
  completer(line: string): Promise<[string[], string]>;
  hint(line: string): string;
  /** Dim text for hints (plain when colour is off). */
  dim(s: string): string;
}

interface Search {
  query: string;
  /** Index in history (newest first) of the shown match, -1 for none yet. */
  index: number;
  failed: boolean;
  line: string;
  cursor: number;
  prompt: string;
}

/**
 * Events: `line` (an entered line; the editor is suspended until `resume()`), `interrupt` (Ctrl-C
 * at the prompt), `close` (Ctrl-D on an empty line).
 */
export class LineEditor extends EventEmitter {
  readonly rl: readline.Interface;
  private readonly keys: KeyInput;
  private readonly decoder = new StringDecoder('utf8');
  private suspended = true;
  private pending = '';
  private search: Search | undefined;
  private hintShown = false;
  private promptText = '> ';
  private closed = false;

  constructor(private readonly o: LineEditorOptions) {
    super();
    this.keys = new KeyInput(o.input);
    this.rl = readline.createInterface({
      input: this.keys as unknown as NodeJS.ReadableStream,
      output: o.output,
      terminal: true,
      history: o.history,
      historySize: o.historySize,
      removeHistoryDuplicates: true,
      tabSize: 4,
      completer: (line: string, cb: (err: Error | null, r?: [string[], string]) => void) => {
        o.completer(line).then(
          (r) => {
            cb(null, r);
            setImmediate(() => this.renderHint());
          },
          () => cb(null, [[], line]),
        );
      },
    });
    this.rl.on('line', (line) => {
      this.suspend();
      this.emit('line', line);
    });
    this.rl.on('SIGINT', () => this.emit('interrupt'));
    this.rl.on('close', () => {
      this.closed = true;
      this.suspend();
      this.emit('close');
    });
  }

  private get internals(): ReadlineInternals {
    return this.rl as unknown as ReadlineInternals;
  }

  /** Entered lines, newest first (readline's own list; replaced in place on `use`). */
  get history(): string[] {
    return this.internals.history;
  }

  setHistory(lines: string[]): void {
    const h = this.internals.history;
    h.splice(0, h.length, ...lines);
  }

  /** Show the prompt and read keys again (raw mode). */
  resume(prompt?: string): void {
    if (this.closed) return;
    if (prompt !== undefined) this.promptText = prompt;
    this.rl.setPrompt(this.promptText);
    this.suspended = false;
    this.o.input.setRawMode(true);
    this.o.input.on('data', this.onData);
    this.o.input.resume();
    this.rl.prompt(true);
    this.hintShown = false;
    const p = this.pending;
    this.pending = '';
    if (p) this.handle(p);
    else this.renderHint();
  }

  /** Stop reading keys and give the terminal back its cooked mode (a command runs). */
  suspend(): void {
    if (this.suspended) return;
    this.suspended = true;
    this.o.input.off('data', this.onData);
    this.o.input.pause();
    if (this.o.input.isTTY) this.o.input.setRawMode(false);
  }

  /** Ctrl-C at the prompt: show ^C, drop the line, prompt again. */
  cancelLine(): void {
    if (this.search) this.endSearch(false);
    this.o.output.write('^C');
    this.internals.clearLine();
    this.rl.prompt();
    this.renderHint();
  }

  close(): void {
    if (this.closed) return;
    this.suspend();
    this.rl.close();
  }

  private onData = (chunk: Buffer | string): void => {
    this.handle(typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
  };

  private handle(s: string): void {
    let i = 0;
    while (i < s.length) {
      if (this.suspended) {
        this.pending += s.slice(i); // type-ahead for the next prompt
        return;
      }
      if (this.search) {
        i = this.searchKey(s, i);
        continue;
      }
      // Up to the next Ctrl-R or end of line, whichever comes first.
      let j = i;
      while (j < s.length && s[j] !== '\x12' && s[j] !== '\r' && s[j] !== '\n') j++;
      if (j > i) this.forward(s.slice(i, j));
      if (j >= s.length) break;
      if (s[j] === '\x12') this.startSearch();
      else {
        this.clearHint();
        this.forward(s.charAt(j)); // j < s.length: checked above
      }
      i = j + 1;
    }
    this.renderHint();
  }

  private forward(s: string): void {
    this.keys.feed(s);
  }

  // --- Ctrl-R ------------------------------------------------------------------------------------

  private startSearch(): void {
    this.clearHint();
    const r = this.internals;
    this.search = { query: '', index: -1, failed: false, line: r.line, cursor: r.cursor, prompt: this.promptText };
    this.renderSearch();
  }

  private find(query: string, from: number): number {
    const h = this.history;
    for (let k = Math.max(0, from); k < h.length; k++) if (h[k]?.includes(query)) return k;
    return -1;
  }

  private searchKey(s: string, i: number): number {
    const st = this.search!;
    const c = s.charAt(i); // the caller's i < s.length
    if (c === '\x12') {
      const k = st.query ? this.find(st.query, st.index + 1) : -1;
      if (k >= 0) st.index = k;
      st.failed = st.query !== '' && k < 0;
    } else if (c === '\x7f' || c === '\b') {
      st.query = st.query.slice(0, -1);
      const k = this.find(st.query, 0);
      st.index = st.query ? k : -1;
      st.failed = st.query !== '' && k < 0;
    } else if (c === '\r' || c === '\n') {
      this.endSearch(true);
      this.forward('\r');
      return i + 1;
    } else if (c === '\x07' || c === '\x03') {
      this.endSearch(false);
      return i + 1;
    } else if (c === '\x1b') {
      this.endSearch(true);
      if (i + 1 < s.length) this.forward(s.slice(i)); // an arrow or other key sequence: edit the match
      return s.length;
    } else if (c < ' ') {
      this.endSearch(true);
      return i; // Ctrl-A, Ctrl-E, TAB…: act on the accepted line
    } else {
      st.query += c;
      const k = this.find(st.query, st.index);
      if (k >= 0) st.index = k;
      st.failed = k < 0;
    }
    this.renderSearch();
    return i + 1;
  }

  private renderSearch(): void {
    const st = this.search!;
    const match = (st.index >= 0 ? this.history[st.index] : undefined) ?? '';
    this.rl.setPrompt(`(${st.failed ? 'failed ' : ''}reverse-i-search)\`${st.query}': `);
    const r = this.internals;
    r.line = match;
    const at = st.query ? match.indexOf(st.query) : -1;
    r.cursor = at >= 0 ? at : match.length;
    this.rl.prompt(true);
  }

  /** Leave search: keep the match on the line (accept) or bring back what was there. */
  private endSearch(accept: boolean): void {
    const st = this.search!;
    this.search = undefined;
    const r = this.internals;
    const match = st.index >= 0 ? this.history[st.index] : undefined;
    r.line = accept && match !== undefined ? match : st.line;
    r.cursor = accept && match !== undefined ? match.length : st.cursor;
    this.rl.setPrompt(st.prompt);
    this.rl.prompt(true);
  }

  // --- hints -------------------------------------------------------------------------------------

  private clearHint(): void {
    if (!this.hintShown) return;
    this.hintShown = false;
    if (this.internals.cursor === this.internals.line.length) this.o.output.write('\x1b[K');
  }

  /** Dim text after the cursor naming what the command still expects; only at the end of the line. */
  private renderHint(): void {
    if (this.suspended || this.search || this.closed) return;
    const r = this.internals;
    if (r.cursor !== r.line.length) return;
    let h = this.o.hint(r.line);
    const col = this.rl.getCursorPos().cols;
    const room = (this.o.output.columns || 80) - col - 2;
    if (h && !r.line.endsWith(' ')) h = ` ${h}`;
    if (h.length > room) h = room > 4 ? `${h.slice(0, room - 1)}…` : '';
    if (!h && !this.hintShown) return;
    this.o.output.write(`\x1b[K${h ? `${this.o.dim(h)}\x1b[${h.length}D` : ''}`);
    this.hintShown = h !== '';
  }
}
