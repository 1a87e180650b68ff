/**
 * The layers point one way (issue 14 §6, docs/architecture.md): the import statements of every
 * source file in the lower layers name only what those layers may use. Parsed with TypeScript's
 * own pre-processor, so multi-line, type-only, re-export and dynamic `import('…')` forms all count.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/** Layer → the source folders (or single files) below `src/` its files may import from. */
const RULES: Record<string, string[]> = {
  core: ['core', 'backends/contract.ts', 'backends/errors.ts'],
  protocol: ['protocol', 'core', 'backends/contract.ts', 'backends/errors.ts'],
  backends: ['backends', 'core', 'protocol'],
  // Config loading (registry.config.json, profiles) serves the CLI, the REPL, migrations and library users.
  config: ['config', 'core', 'backends'],
  // The service, the migrations and the node sit below the CLI: none of them reaches up into
  // src/cli, src/commands or src/repl (shared pieces such as colorEnabled live in src/core).
  registry: ['registry', 'config', 'backends', 'core', 'protocol'],
  migrations: ['migrations', 'registry', 'config', 'backends', 'core', 'protocol'],
  node: ['node', 'migrations', 'registry', 'config', 'backends', 'core', 'protocol'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** Every module specifier a file names: import/export … from, side-effect imports, import(). */
export function importsOf(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** The import rule's violations of one file of `layer`: "file: 'specifier' (reaches dir/)". */
function violations(layer: string, file: string): string[] {
  const allowed = RULES[layer]!;
  const out: string[] = [];
  for (const spec of importsOf(readFileSync(file, 'utf8'))) {
    if (!spec.startsWith('.')) continue; // packages and node: builtins
    const target = relative(SRC, resolve(dirname(file), spec.replace(/\.js$/, '.ts')))
      .split(sep)
      .join('/');
    const ok = allowed.some((a) => target === a || target.startsWith(`${a}/`));
    if (!ok) out.push(`src/${relative(SRC, file).split(sep).join('/')} imports '${spec}' (src/${target})`);
  }
  return out;
}

describe('layers: the lower layers import nothing from the layers above them', () => {
  it('parses every import form (multi-line, type-only, re-export, side effect, dynamic)', () => {
    const text = [
      "import {\n  a,\n  type B,\n} from '../registry/validate.js';",
      "import type { C } from '../node/wire.js';",
      "export * from '../cli/config.js';",
      "import '../migrations/x.js';",
      "const m = await import('../migrations/verify.js');",
      "// a comment that says from '../nowhere.js' is not an import",
    ].join('\n');
    expect(importsOf(text)).to.deep.equal([
      '../registry/validate.js',
      '../node/wire.js',
      '../cli/config.js',
      '../migrations/x.js',
      '../migrations/verify.js',
    ]);
  });

  for (const [layer, allowed] of Object.entries(RULES)) {
    it(`src/${layer} imports only from ${allowed.map((a) => `src/${a}`).join(', ')}, packages and node builtins`, () => {
      const files = sourceFiles(join(SRC, layer));
      expect(files, `src/${layer} has source files`).to.not.be.empty;
      const bad = files.flatMap((f) => violations(layer, f));
      expect(bad, `imports that break the layering:\n  ${bad.join('\n  ')}\n`).to.deep.equal([]);
    });
  }
});
