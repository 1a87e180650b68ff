/** A CLI sandbox whose local node is `node` (REGISTRY_NODE), torn down with every spawned sleeper. */
import { sandbox, type Sandbox } from '../support/cli.js';
import { killAllSleepers } from '../support/processes.js';

export function nodeSandbox(node: string): Sandbox {
  const sb = sandbox();
  sb.env.REGISTRY_NODE = node;
  after(async () => {
    await killAllSleepers();
    sb.cleanup();
  });
  return sb;
}
