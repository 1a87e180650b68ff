/** The small pure pieces: validation, merge patch, canonical JSON and digests, durations, config. */
import { expect } from 'chai';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { InvalidInputError } from '../../src/backends/contract.js';
import {
  canonicalFlatObjectText,
  canonicalJson,
  canonicalParsedJson,
  Digest,
  bucketOf,
  BucketDigester,
  foldDigests,
} from '../../src/registry/digest.js';
import {
  mergePatch,
  parseDuration,
  parseMetaPairs,
  validateKey,
  validateMeta,
  validateNamespace,
  compareKeys,
  matchesWhere,
} from '../../src/registry/validate.js';
import { resolveBackend } from '../../src/cli/config.js';
import { parseBackendUrl } from '../../src/backends/open.js';
import { present } from '../support/expect.js';
import { tempDir } from '../support/tmp.js';

describe('validation', () => {
  it('namespaces', () => {
    for (const ok of ['default', 'test:ab12', 'a', 'A.b_c-d:e', 'x'.repeat(64)])
      expect(validateNamespace(ok)).to.equal(ok);
    for (const bad of ['', '-a', '.a', 'a b', 'a/b', 'x'.repeat(65), 'é', null, 3])
      expect(() => validateNamespace(bad)).to.throw(InvalidInputError);
  });
  it('keys: 1–512 bytes of UTF-8, no control characters, no lone surrogates', () => {
    expect(validateKey('a/b c')).to.equal('a/b c');
    expect(validateKey('😀'.repeat(128))).to.equal('😀'.repeat(128)); // 512 bytes
    for (const bad of ['', 'a\nb', 'a\u0000', 'a\u009f', '😀'.repeat(129), '\ud800x', 'x\udc00'])
      expect(() => validateKey(bad), JSON.stringify(bad)).to.throw(InvalidInputError);
  });
  it('metadata is a JSON object of at most 64 KiB', () => {
    validateMeta({ a: [1, { b: null }] });
    for (const bad of [[], null, 'x', 1, true]) expect(() => validateMeta(bad)).to.throw(/must be a JSON object/);
    expect(() => validateMeta({ x: 'y'.repeat(65536) })).to.throw(/65536-byte limit/);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => validateMeta(circular)).to.throw(/cannot be serialized/);
  });
  it('--meta pairs keep JSON scalars typed', () => {
    expect(parseMetaPairs(['a=1', 'b=true', 'c=x', 'd=["p","q"]', 'e=', 'f=a=b', 'g=1.5e3', 'h=null'])).to.deep.equal({
      a: 1,
      b: true,
      c: 'x',
      d: ['p', 'q'],
      e: '',
      f: 'a=b',
      g: 1500,
      h: null,
    });
  });
  it('--where matches scalars as text and lists by element', () => {
    expect(
      matchesWhere({ n: 3, tags: ['a', 'b'], s: 'x' }, [
        ['n', '3'],
        ['tags', 'b'],
        ['s', 'x'],
      ]),
    ).to.be.ok;
    expect(!matchesWhere({ n: 3 }, [['n', '4']])).to.be.ok;
    expect(!matchesWhere({}, [['missing', 'undefined']])).to.be.ok;
  });
  it('durations', () => {
    expect(parseDuration('500ms')).to.equal(500);
    expect(parseDuration('10s')).to.equal(10_000);
    expect(parseDuration('2m')).to.equal(120_000);
    expect(parseDuration('1.5')).to.equal(1500);
    expect(() => parseDuration('soon')).to.throw(/invalid duration/);
  });
  it('key order is UTF-8 byte order', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        expect(Math.sign(compareKeys(a, b))).to.equal(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
    );
  });
});

describe('JSON merge patch (RFC 7386, appendix A)', () => {
  const cases: Array<[unknown, unknown, unknown]> = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, result] of cases) {
    it(`${JSON.stringify(target)} + ${JSON.stringify(patch)}`, () =>
      expect(mergePatch(target, patch)).to.deep.equal(result));
  }
});

describe('canonical JSON and digests', () => {
  const shuffle = (o: unknown, seed: number): unknown => {
    if (Array.isArray(o)) return o.map((x) => shuffle(x, seed));
    if (o && typeof o === 'object') {
      const keys = Object.keys(o);
      keys.sort(
        (a, b) =>
          (((a + seed).length * 31 + a.charCodeAt(0) * seed) % 7) -
          (((b + seed).length * 31 + b.charCodeAt(0) * seed) % 7),
      );
      return Object.fromEntries(keys.map((k) => [k, shuffle((o as Record<string, unknown>)[k], seed)]));
    }
    return o;
  };
  it('canonical JSON does not depend on key order', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 1, max: 99 }), (v, seed) => {
        expect(canonicalJson(shuffle(v, seed))).to.equal(canonicalJson(v));
        expect(JSON.parse(canonicalJson(v))).to.deep.equal(JSON.parse(JSON.stringify(v)));
      }),
    );
  });
  it('a digest does not depend on order, and changes when one entry changes', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string(), { minLength: 1, maxLength: 40 }), fc.nat(), (items, r) => {
        const a = new Digest();
        const b = new Digest();
        items.forEach((t) => a.addText(t));
        [...items].reverse().forEach((t) => b.addText(t));
        expect(a.hex()).to.equal(b.hex());
        const c = new Digest();
        items.forEach((t, i) => c.addText(i === r % items.length ? `${t}!` : t));
        expect(c.hex()).to.not.equal(a.hex());
        const changed = items[r % items.length];
        present(changed, 'the changed item');
        c.removeText(`${changed}!`);
        c.addText(changed);
        expect(c.hex(), 'removeText undoes addText').to.equal(a.hex());
      }),
    );
  });
  it('the parsed-JSON fast path gives the canonical JSON of any parsed value', () => {
    const tricky = [
      '{"b":1,"a":{"d":[{"z":1,"y":2}],"c":null}}',
      '{"10":1,"9":2,"a":3}',
      '{"b":{"2":1,"1":2},"a":0}',
      '{"__proto__":{"y":1,"x":2},"a":1}',
      '{"z":-0,"a":1e400}',
      '{"b":"\\u0000\\ud800","a":"\\\""}',
      '[{"b":1,"a":2},3]',
      '{}',
      '"x"',
    ];
    for (const t of tricky) expect(canonicalParsedJson(JSON.parse(t)), t).to.equal(canonicalJson(JSON.parse(t)));
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 1, max: 99 }), (v, seed) => {
        const parsed = JSON.parse(JSON.stringify(shuffle(v, seed)));
        expect(canonicalParsedJson(parsed)).to.equal(canonicalJson(parsed));
      }),
    );
  });
  it('flat stored metadata texts read straight off the text give the canonical JSON', () => {
    const yes = [
      '{}',
      '{"b":1,"a":"x"}',
      '{"10":1,"9":2,"a":-3}',
      '{"__proto__":1,"a":null}',
      '{"t":true,"f":false,"n":null,"z":0}',
      '{"é":"ü","a":"日本"}',
      '{"b":999999999999999,"a":-12}',
    ];
    for (const t of yes) expect(canonicalFlatObjectText(t), t).to.equal(canonicalJson(JSON.parse(t)));
    const no = [
      '{"a":1,"a":2}',
      '{ "a":1}',
      '{"a":1 }',
      '{"a":-0}',
      '{"a":1.5}',
      '{"a":1e3}',
      '{"a":01}',
      '{"a":"\\n"}',
      '{"a":{"b":1}}',
      '{"a":[1]}',
      '{"a":"\ud83d\ude00"}',
      '{"a":1234567890123456}',
      '[1]',
      '{"a":1,}',
      '{"a"}',
      '{"a":tru}',
      '{"a":"x}',
    ];
    for (const t of no) expect(canonicalFlatObjectText(t), t).to.equal(undefined);
    const plain = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.constant(-0),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.string(), plain, { maxKeys: 8 }), fc.integer({ min: 1, max: 99 }), (o, seed) => {
        const t = JSON.stringify(shuffle(o, seed));
        const fast = canonicalFlatObjectText(t);
        if (fast !== undefined) expect(fast, t).to.equal(canonicalJson(JSON.parse(t)));
      }),
    );
  });
  it('digesting stored rows (addStored) equals digesting the parsed entries (add)', () => {
    const row = fc.record({
      namespace: fc.constantFrom('ns', 'other', 'n\u00e9"'),
      key: fc.string({ minLength: 1, unit: 'grapheme' }),
      pid: fc.integer({ min: 1, max: 4_194_304 }),
      node: fc.constantFrom('node-a', 'node-b', 'n\\x'),
      meta: fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 6 }),
    });
    fc.assert(
      fc.property(fc.array(row, { maxLength: 30 }), (rows) => {
        const a = new BucketDigester(16);
        const b = new BucketDigester(16);
        for (const r of rows) {
          const text = JSON.stringify(r.meta);
          a.add({ ...r, meta: JSON.parse(text), registeredAt: 1, updatedAt: 2 });
          b.addStored(r.namespace, r.key, r.pid, r.node, text);
        }
        expect(b.result()).to.deep.equal(a.result());
      }),
    );
  });
  it('digests folded from 4096 buckets equal digests computed at the smaller count', () => {
    const entries = Array.from({ length: 3000 }, (_, i) => ({
      namespace: 'ns',
      key: `k${i}`,
      pid: 1 + (i % 97),
      node: 'n',
      meta: { i },
      registeredAt: 0,
      updatedAt: 0,
    }));
    const fine = new BucketDigester(4096);
    for (const e of entries) fine.add(e);
    for (const b of [16, 64, 4096]) {
      const direct = new BucketDigester(b);
      for (const e of entries) direct.add(e);
      expect(foldDigests(fine.result(), b)).to.deep.equal(direct.result());
    }
    expect(() => foldDigests(fine.result(), 3000)).to.throw(/cannot fold/);
  });
  it('bucketOf is FNV-1a over `${namespace}\\u0000${key}`', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.integer({ min: 1, max: 4096 }), (ns, key, n) => {
        let h = 0x811c9dc5;
        const s = `${ns}\u0000${key}`;
        for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
        expect(bucketOf(ns, key, n)).to.equal((h >>> 0) % n);
      }),
    );
  });
  it('buckets depend on (namespace, key) only', () => {
    const d = new BucketDigester(16);
    const e = { namespace: 'n', key: 'k', pid: 1, node: 'h', meta: { a: 1 }, registeredAt: 1, updatedAt: 1 };
    d.add(e);
    const b = bucketOf('n', 'k', 16);
    expect(d.result().counts[b]).to.equal(1);
    expect(bucketOf('n', 'k', 16)).to.equal(b);
  });
});

describe('backend URLs and selection', () => {
  it('parses every scheme and refuses unknown ones', () => {
    expect(parseBackendUrl('sqlite:/a/b.db').location).to.equal('/a/b.db');
    expect(parseBackendUrl('sqlite:///a/b.db').location).to.equal('/a/b.db');
    expect(parseBackendUrl('etcd://127.0.0.1:2379/p').location).to.equal('etcd://127.0.0.1:2379/p');
    expect(parseBackendUrl('MEMORY:').info.scheme).to.equal('memory');
    expect(() => parseBackendUrl('redis://x')).to.throw(/unknown backend scheme "redis:".*memory:/);
    expect(() => parseBackendUrl('/just/a/path')).to.throw(/invalid backend/);
  });
  it('flag > profile flag > REGISTRY_BACKEND > REGISTRY_PROFILE > config default > built-in default', () => {
    const t = tempDir();
    try {
      mkdirSync(join(t.dir, 'sub'));
      writeFileSync(
        join(t.dir, 'registry.config.json'),
        JSON.stringify({ default: 'a', profiles: { a: { backend: 'sqlite:a.db' }, b: { backend: 'memory:' } } }),
      );
      const env = { HOME: t.dir, XDG_DATA_HOME: join(t.dir, 'data') } as NodeJS.ProcessEnv;
      const cwd = join(t.dir, 'sub');
      const at = (sel: object, e: object) => {
        const prev = process.cwd();
        process.chdir(cwd);
        try {
          return resolveBackend(sel, { ...env, ...e }).backend;
        } finally {
          process.chdir(prev);
        }
      };
      expect(at({ backend: 'memory:' }, { REGISTRY_BACKEND: 'sqlite:x' })).to.equal('memory:');
      expect(at({ profile: 'b' }, { REGISTRY_BACKEND: 'sqlite:x' })).to.equal('memory:');
      expect(at({}, { REGISTRY_BACKEND: 'sqlite:x', REGISTRY_PROFILE: 'b' })).to.equal('sqlite:x');
      expect(at({}, { REGISTRY_PROFILE: 'b' })).to.equal('memory:');
      expect(at({}, {})).to.equal(`sqlite:${join(t.dir, 'a.db')}`);
      writeFileSync(join(t.dir, 'registry.config.json'), JSON.stringify({ profiles: {} }));
      expect(at({}, {})).to.equal(`sqlite:${join(t.dir, 'data', 'registry', 'registry.db')}`);
    } finally {
      t.cleanup();
    }
  });
});
