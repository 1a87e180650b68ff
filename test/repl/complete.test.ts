/**
 * The REPL's line splitting, history file, completion and hints against the real oclif command manifest and a
 * real (memory) registry.
 */
import { expect } from 'chai';
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
    expect(splitLine(`register 'a b' --meta x="1 2" c\\ d $HOME # note`)).to.deep.equal([
      'register',
      'a b',
      '--meta',
      'x=1 2',
      'c d',
      '$HOME',
    ]);
    expect(splitLine(`meta set k --json "{\\"q\\": \\"it's\\"}"`)).to.deep.equal([
      'meta',
      'set',
      'k',
      '--json',
      `{"q": "it's"}`,
    ]);
    expect(splitLine(`lookup ''`)).to.deep.equal(['lookup', '']);
    expect(splitLine('   # only a comment')).to.deep.equal([]);
    expect(splitLine('lookup a#b')).to.deep.equal(['lookup', 'a#b']);
    expect(() => splitLine('lookup "open'))
      .to.throw(/unterminated " quote/)
      .with.property('code', 'INVALID_INPUT');
    expect(() => splitLine("lookup 'open"))
      .to.throw()
      .with.property('code', 'INVALID_INPUT');
    expect(() => splitLine('lookup a\\'))
      .to.throw(/lone backslash/)
      .with.property('code', 'INVALID_INPUT');
  });

  it('splits partial lines for completion, knowing where the last word starts', () => {
    expect(splitPartial('lookup "we')).to.deep.equal({
      words: ['lookup', 'we'],
      openQuote: '"',
      trailingSpace: false,
      lastStart: 7,
      danglingEscape: false,
    });
    expect(splitPartial('lookup ').trailingSpace).to.equal(true);
    expect(splitPartial('lookup').trailingSpace).to.equal(false);
  });

  it('quotes words so that splitting gives them back', () => {
    for (const w of ['plain', 'with space', "it's", 'a"b', '', 'tab\there', '$x', 'ünï'])
      expect(splitLine(`x ${quoteWord(w)}`)).to.deep.equal(['x', w]);
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
      commands: commandInfos(config.commands),
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
    expect(await keysByPrefix(reg, 'web', undefined)).to.deep.equal(['web', 'web 2', 'web-1', 'webz']);
    expect(await keysByPrefix(reg, '', undefined)).to.deep.equal([
      'api',
      'wea~',
      'web',
      'web 2',
      'web-1',
      'webz',
      'wec',
    ]);
    expect(await keysByPrefix(reg, 'd', 'prod')).to.deep.equal(['db']);
    expect(await keysByPrefix(reg, 'zz', undefined)).to.deep.equal([]);
  });

  it('completes command names, topics and built-ins', async () => {
    expect(await complete('look', src)).to.deep.equal([['lookup '], 'look']);
    expect(await complete('meta ', src)).to.deep.equal([['get', 'set'], '']);
    expect(await complete('meta s', src)).to.deep.equal([['set '], 's']);
    const [all] = await complete('', src);
    for (const w of ['use', 'ns', 'json', 'lookup', 'meta', 'register']) expect(all.includes(w), w).to.be.ok;
    expect(!all.includes('repl')).to.be.ok;
  });

  it('completes flags, flag values, namespaces and keys (quoted when needed)', async () => {
    expect(await complete('list --al', src)).to.deep.equal([['--all-namespaces '], '--al']);
    expect(await complete('restore f --mode r', src)).to.deep.equal([['replace '], 'r']);
    expect(await complete('count -n p', src)).to.deep.equal([['prod '], 'p']);
    expect(await complete('count --profile ', src)).to.deep.equal([['dev', 'prod'], '']);
    expect(await complete('lookup web', src)).to.deep.equal([['web', "'web 2'", 'web-1', 'webz'], 'web']);
    expect(await complete('lookup -n prod ', src)).to.deep.equal([['db '], '']);
    expect(await complete('meta get w', src)).to.deep.equal([
      ["'wea~'", 'web', "'web 2'", 'web-1', 'webz', 'wec'],
      'w',
    ]);
    expect(await complete(`lookup 'web `, src)).to.deep.equal([["'web 2' "], "'web "]);
    expect(await complete('lookup "web-', src)).to.deep.equal([['"web-1" '], '"web-']);
    expect(await complete('lookup api ', src)).to.deep.equal([[], '']); // the key is given
    expect(await complete('ns ', src)).to.deep.equal([['default', 'prod'], '']);
    expect(await complete('use mem', src)).to.deep.equal([['memory:'], 'mem']);
  });

  it('hints what the command still expects', () => {
    expect(hint('lookup ', src)).to.equal('KEY');
    expect(hint('lookup web ', src)).to.equal('');
    expect(hint('meta get ', src)).to.equal('KEY [FIELD]');
    expect(hint('lookup web --field ', src)).to.equal('FIELD');
    expect(hint('restore x --mode ', src)).to.equal('merge|replace');
    expect(hint('meta ', src)).to.equal('get|set');
    expect(hint('use ', src)).to.equal('URL|PROFILE');
    expect(hint('look', src)).to.equal('');
    expect(hint('count ', src)).to.equal('[FLAGS]');
  });
});

describe('repl history file', () => {
  it('is one file per backend under $XDG_STATE_HOME/registry/history, deduplicated, trimmed', () => {
    const tmp = tempDir('procreg-hist-');
    try {
      const env = { XDG_STATE_HOME: tmp.dir, HOME: '/nonexistent' };
      const a = historyPath('sqlite:/srv/a.db', env);
      const b = historyPath('sqlite:/srv/b.db', env);
      expect(a.startsWith(`${tmp.dir}/registry/history/`), a).to.be.ok;
      expect(a).to.not.equal(b);
      expect(historyPath('sqlite:/srv/a.db', env)).to.equal(a);
      expect(historyPath('memory:', { HOME: '/home/u' }).startsWith('/home/u/.local/state/registry/history/')).to.be.ok;
      const h = new HistoryFile(a, 3);
      expect(h.load()).to.deep.equal([]);
      for (const l of ['count', 'count', 'lookup a', ' secret', '', 'list', 'count', 'ns prod']) h.append(l);
      expect(readFileSync(a, 'utf8')).to.equal('count\nlookup a\nlist\ncount\nns prod\n');
      expect(new HistoryFile(a, 3).load()).to.deep.equal(['ns prod', 'count', 'list']); // newest first, each line once
      h.trim();
      expect(readFileSync(a, 'utf8')).to.equal('list\ncount\nns prod\n');
    } finally {
      tmp.cleanup();
    }
  });
});
