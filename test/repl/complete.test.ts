/**
 * The REPL's line splitting, history file, completion and hints against the real oclif command manifest and a
 * real (memory) registry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Config } from '@oclif/core';
import { ProcessRegistry } from '../../src/registry/service.js';
import { splitLine, splitPartial, quoteWord } from '../../src/repl/parse.js';
import { commandInfos, complete, hint, type CompletionSource } from '../../src/repl/complete.js';
import { keysByPrefix } from '../../src/repl/repl.js';
import { killAllSleepers, spawnSleeper } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { HistoryFile, historyPath } from '../../src/repl/history.js';
import { readFileSync } from 'node:fs';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('repl line splitting', () => {
  it('splits like a shell: quotes, escapes, comments, no expansion', () => {
    assert.deepEqual(splitLine(`register 'a b' --meta x="1 2" c\\ d $HOME # note`), ['register', 'a b', '--meta', 'x=1 2', 'c d', '$HOME']);
    assert.deepEqual(splitLine(`meta set k --json "{\\"q\\": \\"it's\\"}"`), ['meta', 'set', 'k', '--json', `{"q": "it's"}`]);
    assert.deepEqual(splitLine(`lookup ''`), ['lookup', '']);
    assert.deepEqual(splitLine('   # only a comment'), []);
    assert.deepEqual(splitLine('lookup a#b'), ['lookup', 'a#b']);
    assert.throws(() => splitLine('lookup "open'), { code: 'INVALID_INPUT', message: /unterminated " quote/ });
    assert.throws(() => splitLine("lookup 'open"), { code: 'INVALID_INPUT' });
    assert.throws(() => splitLine('lookup a\\'), { code: 'INVALID_INPUT', message: /lone backslash/ });
  });

  it('splits partial lines for completion, knowing where the last word starts', () => {
    assert.deepEqual(splitPartial('lookup "we'), { words: ['lookup', 'we'], openQuote: '"', trailingSpace: false, lastStart: 7, danglingEscape: false });
    assert.equal(splitPartial('lookup ').trailingSpace, true);
    assert.equal(splitPartial('lookup').trailingSpace, false);
  });

  it('quotes words so that splitting gives them back', () => {
    for (const w of ['plain', 'with space', "it's", 'a"b', '', 'tab\there', '$x', 'ünï']) assert.deepEqual(splitLine(`x ${quoteWord(w)}`), ['x', w]);
  });
});

describe('repl completion and hints', () => {
  let reg: ProcessRegistry;
  let src: CompletionSource;
  before(async () => {
    const config = await Config.load(ROOT);
    const p = await spawnSleeper();
    reg = await ProcessRegistry.open({ backend: 'memory:', cleanupInterval: 0 });
    for (const k of ['wea~', 'web', 'web-1', 'web 2', 'webz', 'wec', 'api']) await reg.register(k, p.pid);
    await reg.register('db', p.pid, {}, { namespace: 'prod' });
    src = {
      commands: commandInfos(config.commands as never),
      builtins: {
        use: { usage: 'URL|PROFILE', values: () => ['dev', 'memory:', 'sqlite:'] },
        ns: { usage: '[NAME]', values: () => reg.namespaces() },
        json: { usage: 'on|off', values: () => ['on', 'off'] },
      },
      namespaces: () => reg.namespaces(),
      keys: (prefix, ns) => keysByPrefix(reg, prefix, ns),
      profiles: () => ['dev', 'prod'],
      schemes: () => ['memory:', 'sqlite:'],
    };
  });
  after(async () => {
    await reg.close();
    await killAllSleepers();
  });

  it('finds keys by prefix through the backend, in order, nothing outside the prefix', async () => {
    assert.deepEqual(await keysByPrefix(reg, 'web', undefined), ['web', 'web 2', 'web-1', 'webz']);
    assert.deepEqual(await keysByPrefix(reg, '', undefined), ['api', 'wea~', 'web', 'web 2', 'web-1', 'webz', 'wec']);
    assert.deepEqual(await keysByPrefix(reg, 'd', 'prod'), ['db']);
    assert.deepEqual(await keysByPrefix(reg, 'zz', undefined), []);
  });

  it('completes command names, topics and built-ins', async () => {
    assert.deepEqual(await complete('look', src), [['lookup '], 'look']);
    assert.deepEqual(await complete('meta ', src), [['get', 'set'], '']);
    assert.deepEqual(await complete('meta s', src), [['set '], 's']);
    const [all] = await complete('', src);
    for (const w of ['use', 'ns', 'json', 'lookup', 'meta', 'register']) assert.ok(all.includes(w), w);
    assert.ok(!all.includes('repl'));
  });

  it('completes flags, flag values, namespaces and keys (quoted when needed)', async () => {
    assert.deepEqual(await complete('list --al', src), [['--all-namespaces '], '--al']);
    assert.deepEqual(await complete('restore f --mode r', src), [['replace '], 'r']);
    assert.deepEqual(await complete('count -n p', src), [['prod '], 'p']);
    assert.deepEqual(await complete('count --profile ', src), [['dev', 'prod'], '']);
    assert.deepEqual(await complete('lookup web', src), [['web', "'web 2'", 'web-1', 'webz'], 'web']);
    assert.deepEqual(await complete('lookup -n prod ', src), [['db '], '']);
    assert.deepEqual(await complete('meta get w', src), [["'wea~'", 'web', "'web 2'", 'web-1', 'webz', 'wec'], 'w']);
    assert.deepEqual(await complete(`lookup 'web `, src), [["'web 2' "], "'web "]);
    assert.deepEqual(await complete('lookup "web-', src), [['"web-1" '], '"web-']);
    assert.deepEqual(await complete('lookup api ', src), [[], '']); // the key is given
    assert.deepEqual(await complete('ns ', src), [['default', 'prod'], '']);
    assert.deepEqual(await complete('use mem', src), [['memory:'], 'mem']);
  });

  it('hints what the command still expects', () => {
    assert.equal(hint('lookup ', src), 'KEY');
    assert.equal(hint('lookup web ', src), '');
    assert.equal(hint('meta get ', src), 'KEY [FIELD]');
    assert.equal(hint('lookup web --field ', src), 'FIELD');
    assert.equal(hint('restore x --mode ', src), 'merge|replace');
    assert.equal(hint('meta ', src), 'get|set');
    assert.equal(hint('use ', src), 'URL|PROFILE');
    assert.equal(hint('look', src), '');
    assert.equal(hint('count ', src), '[FLAGS]');
  });
});

describe('repl history file', () => {
  it('is one file per backend under $XDG_STATE_HOME/registry/history, deduplicated, trimmed', () => {
    const tmp = tempDir('procreg-hist-');
    try {
      const env = { XDG_STATE_HOME: tmp.dir, HOME: '/nonexistent' };
      const a = historyPath('sqlite:/srv/a.db', env);
      const b = historyPath('sqlite:/srv/b.db', env);
      assert.ok(a.startsWith(`${tmp.dir}/registry/history/`), a);
      assert.notEqual(a, b);
      assert.equal(historyPath('sqlite:/srv/a.db', env), a);
      assert.ok(historyPath('memory:', { HOME: '/home/u' }).startsWith('/home/u/.local/state/registry/history/'));
      const h = new HistoryFile(a, 3);
      assert.deepEqual(h.load(), []);
      for (const l of ['count', 'count', 'lookup a', ' secret', '', 'list', 'count', 'ns prod']) h.append(l);
      assert.equal(readFileSync(a, 'utf8'), 'count\nlookup a\nlist\ncount\nns prod\n');
      assert.deepEqual(new HistoryFile(a, 3).load(), ['ns prod', 'count', 'list']); // newest first, each line once
      h.trim();
      assert.equal(readFileSync(a, 'utf8'), 'list\ncount\nns prod\n');
    } finally {
      tmp.cleanup();
    }
  });
});
