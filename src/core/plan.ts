/** How the pages of one listing were answered (`list --explain`, docs/indexes.md). */
import type { ListPlan, Page } from '../backends/contract.js';

/** One plan for the pages of a listing, their entries read summed; undefined when none said. */
export function mergePlans(plans: ListPlan[]): ListPlan | undefined {
  const first = plans.find((p) => p.method === 'index') ?? plans[0];
  return first && { ...first, scanned: plans.reduce((n, p) => n + p.scanned, 0) };
}

/** `page` with the merged plans of the backend pages it was made of, if any said. */
export function withPlans<P extends Page>(page: P, plans: ListPlan[]): P {
  const plan = mergePlans(plans);
  return plan ? { ...page, plan } : page;
}
