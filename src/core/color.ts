/**
 * Whether a stream gets colour: the CLI's output (src/cli/output.ts) and the node's pretty logs
 * (src/node/log.ts) decide the same way. NO_COLOR wins, FORCE_COLOR forces it, else only on a
 * terminal that is not `dumb`.
 */
export function colorEnabled(
  stream: NodeJS.WriteStream = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return !!stream.isTTY && env.TERM !== 'dumb';
}
