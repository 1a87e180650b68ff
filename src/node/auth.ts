/**
 * Bearer-token authentication of a node: the token comes from a file (`--token-file`), and a
 * request's token is compared in constant time (sha256 of both sides, then
 * crypto.timingSafeEqual, so neither content nor length leaks through timing).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InvalidInputError } from '../backends/contract.js';

/** Read a token file: its first line, trimmed; refuses empty or short tokens. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new InvalidInputError(`cannot read token file ${path}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, {
      cause,
    });
  }
  const [firstLine = ''] = text.split(/\r?\n/, 1);
  const token = firstLine.trim();
  if (token.length < 16)
    throw new InvalidInputError(
      `token file ${path} holds a token of ${token.length} characters: use at least 16 (e.g. \`openssl rand -hex 32 > ${path}\`)`,
    );
  return token;
}

const sha = (s: string) => createHash('sha256').update(s).digest();

/** A checker for `Authorization` header values against one token. */
export function bearerChecker(token: string): (header: string | undefined) => 'ok' | 'missing' | 'wrong' {
  const want = sha(token);
  return (header) => {
    if (!header) return 'missing';
    const [, given] = /^Bearer[ ]+(.+)$/i.exec(header) ?? [];
    if (given === undefined) return 'missing';
    return timingSafeEqual(sha(given.trim()), want) ? 'ok' : 'wrong';
  };
}

/** Loopback hosts a node may bind without a token. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}
