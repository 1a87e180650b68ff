/** Milliseconds to two decimals, for reports: 2.63, not 2.627536999999961. */
export function roundMs(ms: number): number {
  return Math.round(ms * 100) / 100;
}
