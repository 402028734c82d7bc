// Names of the change maps a role change leaves on a volume, derived from the pair id so every
// process finds them (docs/failover.md).

const short = (pairId: string) => pairId.replace(/-/g, '').slice(0, 12);
/** The new primary's map of regions written since its promotion. */
export const failbackMapName = (pairId: string) => `p${short(pairId)}-fb`;
/**
 * A demoted primary's regions that were unshipped at its lock, kept durably on it until the
 * orchestrator has handed them on (failover's handOver, migrate's final copy) and deletes it:
 * an orchestrator that dies between the demotion and the hand-over finds them here on retry.
 */
export const unshippedMapName = (pairId: string) => `p${short(pairId)}-un`;
