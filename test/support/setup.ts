/**
 * Loaded by mocha before any test file (`.mocharc.cjs` → `require`): chai-as-promised for
 * `expect(p).to.be.rejectedWith(…)`, and fast-check made replayable.
 *
 * Every property failure names its seed and path and the command that replays it:
 *
 *   FC_SEED=-1819918769 FC_PATH="12:3:1" npm test -- --grep 'the size bound'
 *
 * With FC_SEED (and optionally FC_PATH) set, every `fc.assert` runs from that seed (and path).
 */
import * as chai from 'chai';
import chaiAsPromised from 'chai-as-promised';
import fc from 'fast-check';

chai.use(chaiAsPromised);

let currentTest = '';

function replayHint(details: fc.RunDetails<unknown>): string {
  const grep = currentTest.replace(/'/g, "'\\''");
  return `\nreplay: FC_SEED=${details.seed} FC_PATH="${details.counterexamplePath ?? ''}" npm test -- --grep '${grep}'`;
}

function report(details: fc.RunDetails<unknown>): void {
  if (!details.failed) return;
  const message = fc.defaultReportMessage(details) ?? 'property failed';
  const err = new Error(message + replayHint(details), { cause: details.errorInstance });
  throw err;
}

const seed = process.env.FC_SEED;
if (seed !== undefined && seed !== '') {
  const n = Number(seed);
  if (!Number.isInteger(n)) throw new Error(`FC_SEED must be an integer, got ${JSON.stringify(seed)}`);
  const path = process.env.FC_PATH;
  fc.configureGlobal({ seed: n, ...(path ? { path, endOnFailure: true } : {}), reporter: report });
} else {
  fc.configureGlobal({ reporter: report });
}

/** Root hooks: remember the running test's full title for the replay hint. */
export const mochaHooks = {
  beforeEach(this: Mocha.Context): void {
    currentTest = this.currentTest?.fullTitle() ?? '';
  },
};
