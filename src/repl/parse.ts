/**
 * Shell-like splitting of a REPL line: whitespace separates words; '…' keeps everything literal;
 * "…" keeps spaces and lets \ escape " \ $ `; a bare \ escapes the next character; # starts a
 * comment at the start of a word. No expansion of any kind.
 */
import { InvalidInputError } from '../backends/contract.js';

export interface Split {
  /** The words. */
  words: string[];
  /** The line ended inside a quote (the last word is unfinished). */
  openQuote?: '"' | "'";
  /** The line ends with whitespace (a new, empty word is being typed). */
  trailingSpace: boolean;
  /** Offset in the line where the last word starts (its raw text, for completion). */
  lastStart: number;
  /** The line ends with a lone backslash. */
  danglingEscape?: boolean;
}

/** Split tolerantly (for completion and hints): an open quote or trailing backslash is not an error. */
export function splitPartial(line: string): Split {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  let lastStart = line.length;
  let danglingEscape = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
      continue;
    }
    if (quote === '"') {
      const next = line[i + 1];
      if (c === '"') quote = undefined;
      else if (c === '\\' && next !== undefined && '"\\$`'.includes(next)) {
        cur += next;
        i++;
      } else cur += c;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    if (!inWord) {
      if (c === '#') break;
      inWord = true;
      lastStart = i;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === '\\') {
      if (i + 1 < line.length) cur += line[++i];
      else danglingEscape = true;
    } else cur += c;
  }
  if (inWord) words.push(cur);
  const end = line.replace(/#.*$/, '');
  const trailingSpace = !inWord && !quote && (words.length > 0 ? /\s$/.test(end) : false);
  if (!inWord) lastStart = line.length;
  return { words, openQuote: quote, trailingSpace, lastStart, danglingEscape };
}

/** Split a line to run: an unterminated quote is an invalid-input error (exit 2). */
export function splitLine(line: string): string[] {
  const s = splitPartial(line);
  if (s.openQuote) throw new InvalidInputError(`unterminated ${s.openQuote} quote in: ${line.trim()}`);
  if (s.danglingEscape) {
    throw new InvalidInputError(`line ends with a lone backslash: ${line.trim()}`);
  }
  return s.words;
}

/** Quote a word for display or completion so splitLine gives it back unchanged. */
export function quoteWord(w: string): string {
  if (w !== '' && /^[A-Za-z0-9_.,:/@%+=-]+$/.test(w)) return w;
  return `'${w.replace(/'/g, `'\\''`)}'`;
}
