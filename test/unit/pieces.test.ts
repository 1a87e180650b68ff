/** The small pure pieces: validation, merge patch, canonical JSON and digests, durations, config. */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidInputError } from '../../src/backends/contract.js';
import { canonicalJson, Digest, bucketOf, BucketDigester } from '../../src/registry/digest.js';
import { mergePatch, parseDuration, parseMetaPairs, validateKey, validateMeta, validateNamespace, compareKeys, matchesWhere } from '../../src/registry/validate.js';
import { resolveBackend } from '../../src/cli/config.js';
import { parseBackendUrl } from '../../src/backends/open.js';
import { tempDir } from '../support/tmp.js';

describe('validation', () => {
  it('namespaces', () => {
    for (const ok of ['default', 'test:ab12', 'a', 'A.b_c-d:e', 'x'.repeat(64)]) assert.equal(validateNamespace(ok), ok);
    for (const bad of ['', '-a', '.a', 'a b', 'a/b', 'x'.repeat(65), 'é', null, 3]) assert.throws(() => validateNamespace(bad), InvalidInputError);
  });
  it('keys: 1–512 bytes of UTF-8, no control characters, no lone surrogates', () => {
    assert.equal(validateKey('a/b c'), 'a/b c');
    assert.equal(validateKey('😀'.repeat(128)), '😀'.repeat(128)); // 512 bytes
    for (const bad of ['', 'a\nb', 'a\u0000', 'a\u009f', '😀'.repeat(129), '\ud800x', 'x\udc00']) assert.throws(() => validateKey(bad), InvalidInputError, JSON.stringify(bad));
  });
  it('metadata is a JSON object of at most 64 KiB', () => {
    validateMeta({ a: [1, { b: null }] });
    for (const bad of [[], null, 'x', 1, true]) assert.throws(() => validateMeta(bad), /must be a JSON object/);
    assert.throws(() => validateMeta({ x: 'y'.repeat(65536) }), /65536-byte limit/);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.throws(() => validateMeta(circular), /cannot be serialized/);
  });
  it('--meta pairs keep JSON scalars typed', () => {
    assert.deepEqual(parseMetaPairs(['a=1', 'b=true', 'c=x', 'd=["p","q"]', 'e=', 'f=a=b', 'g=1.5e3', 'h=null']), {
      a: 1, b: true, c: 'x', d: ['p', 'q'], e: '', f: 'a=b', g: 1500, h: null,
    });
  });
  it('--where matches scalars as text and lists by element', () => {
    assert.ok(matchesWhere({ n: 3, tags: ['a', 'b'], s: 'x' }, [['n', '3'], ['tags', 'b'], ['s', 'x']]));
    assert.ok(!matchesWhere({ n: 3 }, [['n', '4']]));
    assert.ok(!matchesWhere({}, [['missing', 'undefined']]));
  });
  it('durations', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('1.5'), 1500);
    assert.throws(() => parseDuration('soon'), /invalid duration/);
  });
  it('key order is UTF-8 byte order', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        assert.equal(Math.sign(compareKeys(a, b)), Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
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
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, result] of cases) {
    it(`${JSON.stringify(target)} + ${JSON.stringify(patch)}`, () => assert.deepEqual(mergePatch(target, patch), result));
  }
});

describe('canonical JSON and digests', () => {
  const shuffle = (o: unknown, seed: number): unknown => {
    if (Array.isArray(o)) return o.map((x) => shuffle(x, seed));
    if (o && typeof o === 'object') {
      const keys = Object.keys(o);
      keys.sort((a, b) => ((a + seed).length * 31 + a.charCodeAt(0) * seed) % 7 - ((b + seed).length * 31 + b.charCodeAt(0) * seed) % 7);
      return Object.fromEntries(keys.map((k) => [k, shuffle((o as Record<string, unknown>)[k], seed)]));
    }
    return o;
  };
  it('canonical JSON does not depend on key order', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 1, max: 99 }), (v, seed) => {
        assert.equal(canonicalJson(shuffle(v, seed)), canonicalJson(v));
        assert.deepEqual(JSON.parse(canonicalJson(v)), JSON.parse(JSON.stringify(v)));
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
        assert.equal(a.hex(), b.hex());
        const c = new Digest();
        items.forEach((t, i) => c.addText(i === r % items.length ? `${t}!` : t));
        assert.notEqual(c.hex(), a.hex());
        c.removeText(`${items[r % items.length]}!`);
        c.addText(items[r % items.length]);
        assert.equal(c.hex(), a.hex(), 'removeText undoes addText');
      }),
    );
  });
  it('buckets depend on (namespace, key) only', () => {
    const d = new BucketDigester(16);
    const e = { namespace: 'n', key: 'k', pid: 1, node: 'h', meta: { a: 1 }, registeredAt: 1, updatedAt: 1 };
    d.add(e);
    const b = bucketOf('n', 'k', 16);
    assert.equal(d.result().counts[b], 1);
    assert.equal(bucketOf('n', 'k', 16), b);
  });
});

describe('backend URLs and selection', () => {
  it('parses every scheme and refuses unknown ones', () => {
    assert.equal(parseBackendUrl('sqlite:/a/b.db').location, '/a/b.db');
    assert.equal(parseBackendUrl('sqlite:///a/b.db').location, '/a/b.db');
    assert.equal(parseBackendUrl('etcd://127.0.0.1:2379/p').location, 'etcd://127.0.0.1:2379/p');
    assert.equal(parseBackendUrl('MEMORY:').info.scheme, 'memory');
    assert.throws(() => parseBackendUrl('redis://x'), /unknown backend scheme "redis:".*memory:/);
    assert.throws(() => parseBackendUrl('/just/a/path'), /invalid backend/);
  });
  it('flag > profile flag > REGISTRY_BACKEND > REGISTRY_PROFILE > config default > built-in default', () => {
    const t = tempDir();
    try {
      mkdirSync(join(t.dir, 'sub'));
      writeFileSync(join(t.dir, 'registry.config.json'), JSON.stringify({ default: 'a', profiles: { a: { backend: 'sqlite:a.db' }, b: { backend: 'memory:' } } }));
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
      assert.equal(at({ backend: 'memory:' }, { REGISTRY_BACKEND: 'sqlite:x' }), 'memory:');
      assert.equal(at({ profile: 'b' }, { REGISTRY_BACKEND: 'sqlite:x' }), 'memory:');
      assert.equal(at({}, { REGISTRY_BACKEND: 'sqlite:x', REGISTRY_PROFILE: 'b' }), 'sqlite:x');
      assert.equal(at({}, { REGISTRY_PROFILE: 'b' }), 'memory:');
      assert.equal(at({}, {}), `sqlite:${join(t.dir, 'a.db')}`);
      writeFileSync(join(t.dir, 'registry.config.json'), JSON.stringify({ profiles: {} }));
      assert.equal(at({}, {}), `sqlite:${join(t.dir, 'data', 'registry', 'registry.db')}`);
    } finally {
      t.cleanup();
    }
  });
});
