// Names a sync leaves on the agents, derived from the pair id so that every process finds them.

const short = (pairId: string) => pairId.replace(/-/g, '').slice(0, 12);

/** The primary's change map of regions written since the point the secondary has or is getting. */
export const sinceMapName = (pairId: string) => `p${short(pairId)}-since`;
/** Transient: the successor of `since` while it is frozen. */
export const swapMapName = (pairId: string) => `p${short(pairId)}-swap`;
/** Labels of the primary's sync snapshots: `tidemark-sync <pairId> <syncId> r<round>`. */
export const syncSnapshotPrefix = (pairId: string) => `tidemark-sync ${pairId} `;
export const syncSnapshotLabel = (pairId: string, syncId: string, round: number) => `${syncSnapshotPrefix(pairId)}${syncId} r${round}`;
/** The secondary's last consistent snapshot. */
export const lcsSnapshotLabel = (pairId: string, syncId: string) => `tidemark-lcs ${pairId} ${syncId}`;
/** Beside the pair record: a migrate's journal, there only while its pause is under way (docs/failover.md). */
export const migrateJournalFile = 'migrate.json';
