/**
 * The fast validation paths (perf-node) decide exactly as the plain ones: checkMeta vs validateMeta,
 * the metadata size bound vs the real serialized size, and validateKey's one-scan shortcut.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  checkMeta,
  jsonBytesBound,
  MAX_KEY_BYTES,
  MAX_META_BYTES,
  validateKey,
  validateMeta,
  validateNamespace,
  validateNode,
} from '../../src/registry/validate.js';

/** The error message a validator throws, or 'ok'. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

// Strings rich in what JSON escapes or encodes long: controls, quotes, backslashes, C1, BMP, surrogates.
const nasty = fc.string({
  unit: fc.constantFrom(
    'a',
    '"',
    '\\',
    '\u0000',
    '\u001f',
    '\u007f',
    '\u0085',
    'é',
    '€',
    '\u2028',
    '\ud83d',
    '\ude00',
    '😀',
  ),
  maxLength: 40,
});
const numbers = fc.oneof(
  fc.double(),
  fc.constantFrom(
    -1.7976931348623157e308,
    -2.2250738585072014e-308,
    -5e-324,
    -1.2345678901234567e-7,
    -123456789012345680000,
    Number.NaN,
    -Infinity,
  ),
);
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, nasty, numbers, fc.boolean(), fc.constant(null), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 6 }),
  object: fc.dictionary(nasty, tie('value'), { maxKeys: 6 }),
})).value;

describe('fast validation paths', () => {
  it('the size bound is never below the real UTF-8 size of the serialization', () => {
    fc.assert(
      fc.property(json, (v) => {
        const b = jsonBytesBound(v, 0);
        if (b >= 0)
          expect(b >= Buffer.byteLength(JSON.stringify(v), 'utf8'), `bound ${b} for ${JSON.stringify(v)}`).to.be.ok;
      }),
      // The longest number text there is: it once got a bound of 24 for its 25 bytes.
      {
        numRuns: 3000,
        examples: [[-0.0000010000000019443982], [-0.0000012345678901234567], [-1.2345678901234567e-308]],
      },
    );
  });

  it('the size bound covers the longest number texts', () => {
    for (const v of [
      -0.0000010000000019443982, -0.0000012345678901234567, -1.2345678901234567e-308, -123456789012345680000,
    ]) {
      expect(jsonBytesBound(v, 0), `bound for ${JSON.stringify(v)}`).to.be.at.least(JSON.stringify(v).length);
    }
    expect(JSON.stringify(-0.0000010000000019443982)).to.have.length(25);
  });

  it('checkMeta passes and refuses exactly what validateMeta does, with the same message', () => {
    fc.assert(
      fc.property(fc.oneof(json, fc.anything()), (v) => {
        expect(outcome(() => checkMeta(v))).to.equal(outcome(() => validateMeta(v)));
      }),
      { numRuns: 2000 },
    );
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    const deep: Record<string, unknown> = {};
    let at = deep;
    for (let i = 0; i < 40; i++) at = at.d = {};
    const throwing = Object.defineProperty({}, 'x', {
      enumerable: true,
      get: () => {
        throw new Error('boom');
      },
    });
    const edge = [
      circular,
      deep,
      throwing,
      { big: 1n },
      { f: () => 1, u: undefined, s: Symbol('x') },
      { d: new Date(0) },
      { toJSON: () => 'x' },
      Object.create(null),
      { x: 'y'.repeat(MAX_META_BYTES - 8) }, // exactly at the limit
      { x: 'y'.repeat(MAX_META_BYTES - 7) }, // one byte over
      { x: '\u0001'.repeat(10_000) }, // escapes: 60,008 bytes, under
      { x: '\u0001'.repeat(11_000) }, // 66,008 bytes, over
      { x: 'é'.repeat(30_000) },
      { x: 'é'.repeat(33_000) },
      [],
      null,
      'x',
    ];
    edge.forEach((v, i) =>
      expect(
        outcome(() => checkMeta(v)),
        `edge case ${i}`,
      ).to.equal(outcome(() => validateMeta(v))),
    );
  });

  it('validateKey: the shortcut accepts and refuses as the full checks do', () => {
    const slow = (key: string): string => {
      if (key.length === 0) return 'bad';
      if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) return 'bad';
      if (/[\u0000-\u001f\u007f-\u009f]/.test(key)) return 'bad';
      if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(key)) return 'bad';
      return 'ok';
    };
    const keys = fc.oneof(
      nasty,
      fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀'), minLength: 120, maxLength: 520 }),
    );
    fc.assert(
      fc.property(keys, (k) => {
        expect(outcome(() => validateKey(k)) === 'ok' ? 'ok' : 'bad').to.equal(slow(k));
      }),
      { numRuns: 3000 },
    );
    expect(validateKey('€'.repeat(170))).to.equal('€'.repeat(170)); // 510 bytes
    expect(() => validateKey('€'.repeat(171))).to.throw(/513 bytes is more than 512/);
  });

  it('namespace and node: remembering the last good one never lets a bad one through', () => {
    const nsOk = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
    const nodeOk = (n: unknown) =>
      typeof n === 'string' && n.length > 0 && n.length <= 255 && !/[\u0000-\u001f\u007f-\u009f]/.test(n);
    const values = fc.oneof(
      fc.constantFrom<unknown>(undefined, null, '', 'default', 'node', 'a b', 'x'.repeat(64), 'x'.repeat(65), 3),
      nasty,
      fc.string({ maxLength: 8 }),
    );
    fc.assert(
      fc.property(fc.array(values, { maxLength: 12 }), (seq) => {
        for (const v of seq) {
          expect(outcome(() => validateNamespace(v)) === 'ok', `namespace ${JSON.stringify(v)}`).to.equal(
            typeof v === 'string' && nsOk.test(v),
          );
          expect(outcome(() => validateNode(v)) === 'ok', `node ${JSON.stringify(v)}`).to.equal(nodeOk(v));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
