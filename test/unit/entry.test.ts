/** Issue 12 item 16: the library entry is importable with `await import(...)`. */
import { expect } from 'chai';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import * as contract from '../../src/backends/contract.js';

const here = dirname(fileURLToPath(import.meta.url));
const builtEntry = pathToFileURL(join(here, '..', '..', 'src', 'index.js')).href;

describe('library entry (issue 12 item 16)', function () {
  this.timeout(20_000);

  it('item 16: await import of the built entry (dist/src/index.js) resolves to the module', async () => {
    const mod = (await import(builtEntry)) as Record<string, unknown>;
    expect(mod).to.not.have.property('then');
    expect(mod.ProcessRegistry).to.be.a('function');
  });

  it("item 16: await import('procreg') by package self-reference resolves to the module", async () => {
    const name: string = 'procreg';
    const mod = (await import(name)) as Record<string, unknown>;
    expect(mod).to.not.have.property('then');
    expect(mod.ProcessRegistry).to.be.a('function');
  });

  it('item 16: every runtime export of the contract except the internal then is re-exported', async () => {
    const mod = (await import(builtEntry)) as Record<string, unknown>;
    const missing = Object.keys(contract).filter((k) => k !== 'then' && !(k in mod));
    expect(missing).to.deep.equal([]);
  });
});
