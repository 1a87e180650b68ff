/**
 * Build the light path's bundles, `dist/fast/` (issue 15 §1, docs/cold-start.md): one CommonJS
 * file per command class of dist/src/commands, `dist/fast/<id words joined by dots>.cjs`, built by
 * esbuild with `@oclif/core` aliased to the light runtime (src/cli/lite/index.ts) and the light
 * runner (src/cli/lite/run.ts) beside the class. A start reads one file of our code; the packages
 * (fastify, etcd3, prom-client, …) are loaded from node_modules, and only when the
 * code that uses them first runs (modules reached by `import()` are initialised lazily in a
 * CommonJS bundle). A step of `npm run build`, after tsc.
 *
 *   node dist/scripts/build-lite.js [ROOT]     (ROOT: the package root, default the cwd)
 *
 * Commands that need oclif's own Config (`this.config`: help, plugins, the command list) are left
 * out: bin/run.js does not find them, and oclif runs them.
 *
 * Why CommonJS files and not ESM chunks: `--splitting` (ESM only) gives a command 8–12 shared
 * chunks, and Node's ESM loader reads each file through an async FileHandle (bench/RESULTS.md:
 * module loading was most of a light start); an ESM bundle without splitting would hoist every
 * package import (etcd3, fastify) to its top. In CommonJS, `import.meta.url` is the bundle's own
 * URL (a banner defines it).
 */
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? '.');
const src = join(root, 'dist', 'src');
const out = join(root, 'dist', 'fast');

/** Packages resolved from node_modules at run time; the rest (our code, the light runtime) is bundled. */
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
};
// better-sqlite3's JavaScript (a dozen small CommonJS files, ~20 ms to load one by one) is bundled
// too: the SQLite commands need it on every start. Its addon is loaded from node_modules
// (src/backends/sqlite-open.ts passes its path as \`nativeBinding\`).
const BUNDLED = ['@oclif/core', 'better-sqlite3'];
const external = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies }).filter((p) => !BUNDLED.includes(p));

/** Commands that use what only oclif has. */
const OCLIF_ONLY = /this\.config\b|loadHelpClass/;

/** Command files under dist/src/commands, as id words (`['meta', 'get']`). */
function commandIds(dir: string, prefix: string[] = []): string[][] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? commandIds(join(dir, e.name), [...prefix, e.name])
      : e.name.endsWith('.js') && !OCLIF_ONLY.test(readFileSync(join(dir, e.name), 'utf8'))
        ? [[...prefix, e.name.slice(0, -3)]]
        : [],
  );
}

const ids = commandIds(join(src, 'commands'));
const rel = (p: string) => `./${relative(root, p)}`;
rmSync(out, { recursive: true, force: true });
await Promise.all(
  ids.map((words) =>
    build({
      absWorkingDir: root,
      stdin: {
        contents: `export { runLite } from ${JSON.stringify(rel(join(src, 'cli', 'lite', 'run.js')))};
export { default } from ${JSON.stringify(rel(join(src, 'commands', ...words)) + '.js')};`,
        resolveDir: root,
        sourcefile: `lite-${words.join('-')}.js`,
      },
      outfile: join(out, `${words.join('.')}.cjs`),
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      alias: { '@oclif/core': rel(join(src, 'cli', 'lite', 'index.js')) },
      external,
      define: { 'import.meta.url': '__liteImportMetaUrl' },
      banner: {
        js: [
          `const __liteImportMetaUrl = require('node:url').pathToFileURL(__filename).href;`,
          `const __procregImport = globalThis.__procregImport ?? ((s) => import(s));`,
        ].join('\n'),
      },
      logLevel: 'warning',
    }),
  ),
);
// The packages a bundle imports dynamically (chalk, @inquirer/prompts, …: ESM ones among them) are
// imported by bin/run.js's \`import()\`: code compiled by vm.Script with a code cache has no dynamic
// import of its own in Node 20 (and vm's USE_MAIN_CONTEXT_DEFAULT_LOADER warns, experimental).
// Each bundle's first line names its content (bin/run.js keys its V8 code cache by it).
for (const words of ids) {
  const file = join(out, `${words.join('.')}.cjs`);
  const text = readFileSync(file, 'utf8').replace(/\bimport\((?="[^"\n]+"\))/g, '__procregImport(');
  writeFileSync(file, `//#lite ${createHash('sha256').update(text).digest('hex').slice(0, 32)}\n${text}`);
}
// The SQLite digest worker (src/backends/sqlite-digest.ts) starts `./sqlite-digest.js` beside its
// module: beside a bundle, that is the compiled module itself.
// The same for the restore's WAL checkpointer (src/backends/sqlite-checkpoint.ts).
for (const worker of ['sqlite-digest', 'sqlite-checkpoint'])
  writeFileSync(join(out, `${worker}.js`), `import '../src/backends/${worker}.js';\n`);
console.log(`dist/fast: ${ids.length} commands on the light runtime`);
