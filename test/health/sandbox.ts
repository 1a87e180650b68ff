/** A CLI sandbox whose local node is `node` (REGISTRY_NODE), torn down with every spawned sleeper. */
import type { HealthReport } from '../../src/backends/contract.js';
import type { BackendHealth, HealthSummary } from '../../src/cli/health.js';
import { sandbox, type Sandbox } from '../support/cli.js';
import { present } from '../support/expect.js';
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

/** Backend `i` of a health summary, asserted present. */
export function backendAt(s: HealthSummary, i = 0): BackendHealth {
  const b = s.backends[i];
  present(b, `backend #${i} of ${s.backends.length} in the summary`);
  return b;
}

/** Backend `i`'s own health report, asserted present (the backend was reached). */
export function healthAt(s: HealthSummary, i = 0): HealthReport {
  const b = backendAt(s, i);
  present(b.health, `a health report for ${b.target} (${b.status}: ${b.reasons.join('; ')})`);
  return b.health;
}
