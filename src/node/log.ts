/**
 * Where the node's pino logs go: JSON lines on stderr, the form log shippers read; on a terminal,
 * human-readable lines through pino-pretty (coloured unless NO_COLOR). `--log-format json|pretty`
 * (or REGISTRY_LOG_FORMAT) overrides the choice.
 */
import { createRequire } from 'node:module';
import { colorEnabled } from '../core/color.js';

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

const require = createRequire(import.meta.url);

/** `pretty` or `json` for a format choice and the stream the logs go to. */
export function effectiveLogFormat(
  format: LogFormat | undefined,
  stream: NodeJS.WriteStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): 'json' | 'pretty' {
  const f = format && format !== 'auto' ? format : (env.REGISTRY_LOG_FORMAT as LogFormat | undefined);
  if (f === 'json' || f === 'pretty') return f;
  return stream.isTTY ? 'pretty' : 'json';
}

/** The destination stream for pino: stderr itself, or a pino-pretty transform writing to it. */
export function logStream(
  format: LogFormat | undefined,
  stream: NodeJS.WriteStream = process.stderr,
): NodeJS.WritableStream {
  if (effectiveLogFormat(format, stream) === 'json') return stream;
  // pino-pretty loads only when it is used (it is not small).
  const pretty = require('pino-pretty') as (o: Record<string, unknown>) => NodeJS.WritableStream;
  return pretty({
    destination: stream,
    colorize: colorEnabled(stream),
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    sync: true,
  });
}
