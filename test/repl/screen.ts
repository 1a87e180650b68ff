/**
 * A small terminal screen model for tests: applies what a pty shows (text, CR/LF/BS, autowrap,
 * the cursor movements and erasures readline and inquirer use) so a test reads the screen as a
 * person would — a hint overwritten by typing is gone, a completed word is really there.
 * Scrollback is kept (lines never scroll away).
 */
export class Screen {
  private lines: string[][] = [[]];
  private x = 0;
  private y = 0;
  private pending = '';

  constructor(private readonly cols: number) {}

  write(data: string): void {
    const s = this.pending + data;
    this.pending = '';
    let i = 0;
    while (i < s.length) {
      const c = s.charAt(i);
      if (c === '\x1b') {
        const m =
          /^\x1b\[([?>=]?)([\d;]*)([ -/]*)([@-~])/.exec(s.slice(i)) ??
          /^\x1b\][^\x07\x1b]*(\x07|\x1b\\)/.exec(s.slice(i));
        if (!m) {
          if (/^\x1b(\[[?>=]?[\d;]*[ -/]*|\][^\x07]*)?$/.test(s.slice(i))) {
            this.pending = s.slice(i); // an escape sequence cut between two chunks
            return;
          }
          i += 2; // ESC + one char (charset selection and the like)
          continue;
        }
        // CSI: groups 2 (parameters) and 4 (final byte) always take part in the match.
        if (m[0].startsWith('\x1b[') && m[1] === '') this.csi(m[2] ?? '', m[4] ?? '');
        i += m[0].length;
        continue;
      }
      if (c === '\r') this.x = 0;
      else if (c === '\n') this.down();
      else if (c === '\b') this.x = Math.max(0, this.x - 1);
      else if (c === '\x07' || c < ' ') {
        // bell and other controls: nothing shown
      } else {
        if (this.x >= this.cols) {
          this.x = 0;
          this.down();
        }
        const line = this.line();
        while (line.length < this.x) line.push(' ');
        line[this.x++] = c;
      }
      i++;
    }
  }

  /** All lines (scrollback included), trailing spaces trimmed. */
  text(fromLine = 0): string {
    return this.lines
      .slice(fromLine)
      .map((l) => l.join('').replace(/\s+$/, ''))
      .join('\n');
  }

  /** The line the cursor is on. */
  cursorLine(): string {
    return this.line().join('').replace(/\s+$/, '');
  }

  /** Index of the cursor's line (for "from here on" reads). */
  get row(): number {
    return this.y;
  }

  private line(): string[] {
    let line = this.lines[this.y];
    while (!line) {
      this.lines.push([]);
      line = this.lines[this.y];
    }
    return line;
  }

  private down(): void {
    this.y++;
    this.line();
  }

  private csi(params: string, cmd: string): void {
    const nums = params.split(';').map((p) => (p === '' ? undefined : Number(p)));
    const n = nums[0] ?? 1;
    const line = this.line();
    switch (cmd) {
      case 'A':
        this.y = Math.max(0, this.y - n);
        break;
      case 'B':
        this.y += n;
        this.line();
        break;
      case 'C':
        this.x = Math.min(this.cols - 1, this.x + n);
        break;
      case 'D':
        this.x = Math.max(0, this.x - n);
        break;
      case 'G':
        this.x = Math.max(0, n - 1);
        break;
      case 'K': {
        const mode = nums[0] ?? 0;
        if (mode === 0) line.length = Math.min(line.length, this.x);
        else if (mode === 1) for (let k = 0; k <= this.x && k < line.length; k++) line[k] = ' ';
        else line.length = 0;
        break;
      }
      case 'J': {
        const mode = nums[0] ?? 0;
        if (mode === 0) {
          line.length = Math.min(line.length, this.x);
          this.lines.length = this.y + 1;
        } else if (mode === 2 || mode === 3) {
          this.lines = [[]];
          this.x = this.y = 0;
        }
        break;
      }
      case 'H':
      case 'f':
        // absolute positioning (clear screen): treat as a fresh screen below the scrollback
        this.y = this.lines.length;
        this.x = Math.max(0, (nums[1] ?? 1) - 1);
        this.line();
        break;
      default:
        // colours (m), modes (h/l) and the rest do not move text
        break;
    }
  }
}
