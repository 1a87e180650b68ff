import { expect } from 'chai';

/** `expect(v, message).to.exist`, which also narrows `v` for the compiler. */
export function present<T>(v: T, message?: string): asserts v is NonNullable<T> {
  expect(v, message).to.exist;
}
