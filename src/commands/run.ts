import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Args } from '@oclif/core';
import { metaFlags, metaFromFlags } from '../cli/flags.js';
import { RegistryCommand } from '../cli/base.js';
import { AlreadyRegisteredError, InvalidInputError } from '../backends/contract.js';

export default class Run extends RegistryCommand<typeof Run> {
  static override summary = 'Run a command registered under a name for its lifetime.';
  static override description =
    'Spawns CMD, registers NAME for its pid, forwards SIGINT, SIGTERM and SIGHUP to it, unregisters when it exits and exits with its code (128+signal when it was killed).';
  static override examples = [
    '<%= config.bin %> run web-1 --meta role=web -- node server.js --port 8080',
    '<%= config.bin %> run nightly -- ./backup.sh',
  ];
  static override strict = false;
  static override args = { name: Args.string({ description: 'the name to hold while CMD runs', required: true }) };
  static override flags = {
    ...metaFlags,
  };

  async run(): Promise<{ name: string; pid: number; code: number; signal: string | null }> {
    const { argv } = await this.parse(Run);
    const rest = (argv as string[]).slice(1);
    const sep = this.argv.indexOf('--');
    const cmd = sep >= 0 ? this.argv.slice(sep + 1) : rest;
    const [file, ...fileArgs] = cmd;
    if (file === undefined) throw new InvalidInputError('no command to run: registry run NAME -- CMD [ARGS…]');
    const meta = metaFromFlags(this.flags);
    const reg = await this.registry();
    const name = this.args.name;
    const namespace = this.ns;
    const held = await reg.lookup(name, { namespace });
    if (held) throw new AlreadyRegisteredError(held);

    const child = spawn(file, fileArgs, { stdio: 'inherit' });
    const spawned = await new Promise<boolean>((resolve) => {
      child.once('spawn', () => resolve(true));
      child.once('error', (err) => {
        this.warnLine(`cannot run ${file}: ${err.message}`);
        resolve(false);
      });
    });
    if (!spawned) {
      process.exitCode = 127;
      return { name, pid: 0, code: 127, signal: null };
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    try {
      try {
        await reg.register(name, child.pid!, meta, { namespace });
      } catch (err) {
        child.kill('SIGTERM');
        await exited;
        throw err;
      }
      const { code, signal } = await exited;
      const exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
      process.exitCode = exitCode;
      return { name, pid: child.pid!, code: exitCode, signal };
    } finally {
      for (const [s, h] of handlers) process.off(s, h);
      await reg.unregister(name, { namespace, pid: child.pid }).catch(() => undefined);
    }
  }

  private warnLine(msg: string): void {
    process.stderr.write(`registry: ${msg}\n`);
  }
}
