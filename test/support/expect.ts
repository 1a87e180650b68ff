import { expect } from 'chai';
import { OutcomeUnknownError, UnreachableError } from '../../src/backends/contract.js';

/** `expect(v, message).to.exist`, which also narrows `v` for the compiler. */
export function present<T>(v: T, message?: string): asserts v is NonNullable<T> {
  expect(v, message).to.exist;
}

/** An "outcome unknown" error as callers see it: the class, exit 6, `details.outcome`, the message. */
export function expectUnknown(err: unknown): OutcomeUnknownError {
  expect(err).to.be.instanceOf(OutcomeUnknownError);
  present(err);
  const e = err as OutcomeUnknownError;
  expect(e).to.be.instanceOf(UnreachableError);
  expect(e.exitCode).to.equal(6);
  expect(e.details?.outcome).to.equal('unknown');
  expect(e.message).to.match(/outcome unknown/);
  return e;
}
