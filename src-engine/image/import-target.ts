// The volume an image is imported into, inspected before anything is written: its region size
// and size against the image's, its pair (never a primary; a secondary only of the image's pair
// at the image's generation or older), and an import already under way on it.

import type { ImportMarker, PairMember, WriteAuth } from '../agent';
import { TidemarkError } from '../errors';
import type { VolumeEndpoint } from '../replication';
import { formatBytes } from '../size';
import type { InspectedImage } from './inspect';

export interface TargetState {
  /** False when nothing is at the path yet: the volume is created from the manifest. */
  readonly exists: boolean;
  readonly registered: boolean;
  readonly sizeBytes: number | null;
  readonly regionBytes: number | null;
  /** The pair whose secondary the target is, if any. */
  readonly member: PairMember | null;
  readonly marker: ImportMarker | null;
}

export const authOf = (member: PairMember | null): WriteAuth | undefined => (member ? { pairId: member.pairId, generation: member.generation } : undefined);

/** What the target is; nothing is created or changed. */
export async function readTarget(endpoint: VolumeEndpoint): Promise<TargetState> {
  const { agent, path } = endpoint;
  let state;
  try {
    state = await agent.volumeState(path);
  } catch (error) {
    if (error instanceof TidemarkError && error.code === 'NOT_FOUND') {
      return { exists: false, registered: false, sizeBytes: null, regionBytes: null, member: null, marker: null };
    }
    throw error;
  }
  checkNotPrimary(endpoint, state.members);
  const member = state.members.find((m) => m.role === 'secondary') ?? null;
  if (!state.volumeId) return { exists: true, registered: false, sizeBytes: null, regionBytes: null, member, marker: null };
  const info = await agent.volumeInfo(path);
  return { exists: true, registered: true, sizeBytes: info.sizeBytes, regionBytes: info.regionBytes, member, marker: state.importing };
}

function checkNotPrimary(endpoint: VolumeEndpoint, members: readonly PairMember[]): void {
  const primary = members.find((m) => m.role === 'primary');
  if (!primary) return;
  throw new TidemarkError(
    'PERMISSION',
    `${endpoint.volref} is the primary of pair "${primary.name}": an import would overwrite the volume applications write to`,
    "import into the pair's secondary, or into a new volume",
  );
}

/** Region size, size and pair agree with the image (a registered target). */
export function checkTargetFits(endpoint: VolumeEndpoint, target: TargetState, image: InspectedImage): void {
  const { volume } = image.manifest;
  if (target.regionBytes !== null && target.regionBytes !== volume.regionBytes) {
    throw new TidemarkError(
      'SIZE_MISMATCH',
      `${endpoint.volref} has regions of ${formatBytes(target.regionBytes)}, the image ${formatBytes(volume.regionBytes)}`,
      `import into a volume with regions of ${formatBytes(volume.regionBytes)}, or into a new path (the volume is created from the image)`,
    );
  }
  if (target.sizeBytes !== null) checkTargetSize(endpoint, target.sizeBytes, image);
  if (target.member) checkPairMatch(endpoint, target.member, image);
}

function checkTargetSize(endpoint: VolumeEndpoint, sizeBytes: number, image: InspectedImage): void {
  const { volume } = image.manifest;
  const wholeRegions = volume.sizeBytes % volume.regionBytes === 0;
  if (sizeBytes === volume.sizeBytes || (sizeBytes > volume.sizeBytes && wholeRegions)) return;
  const why = sizeBytes < volume.sizeBytes ? 'smaller than' : 'larger than, and the image ends with a short region, unlike';
  throw new TidemarkError(
    'SIZE_MISMATCH',
    `${endpoint.volref} is ${sizeBytes} bytes, ${why} the image's ${volume.sizeBytes}`,
    `import into a volume of exactly ${volume.sizeBytes} bytes, or into a new path (the volume is created from the image)`,
  );
}

/** A secondary takes only its own pair's image (or its primary volume's), of the member's generation or newer. */
function checkPairMatch(endpoint: VolumeEndpoint, member: PairMember, image: InspectedImage): void {
  const { pair, volume } = image.manifest;
  const ours = pair ? pair.pairId === member.pairId : volume.volumeId === member.peer.volumeId;
  if (!ours) {
    const of = pair ? `pair "${pair.name}" (${pair.pairId})` : `volume ${volume.volumeId} (${volume.source})`;
    throw new TidemarkError(
      'STALE',
      `the image in ${image.dir} is of ${of}, but ${endpoint.volref} is the secondary of pair "${member.name}" (${member.pairId}, primary volume ${member.peer.volumeId})`,
      `import an image exported from pair "${member.name}" (\`tidemark image export ${member.name} DIR\` at its orchestrator)`,
    );
  }
  if (pair && pair.generation < member.generation) {
    throw new TidemarkError(
      'STALE',
      `the image in ${image.dir} is of generation ${pair.generation} of pair "${member.name}", but ${endpoint.volref} is at generation ${member.generation}: a role change happened since the export`,
      `export a new image of pair "${member.name}" and import that`,
    );
  }
  if (member.regionCount !== volume.regionCount) {
    throw new TidemarkError(
      'SIZE_MISMATCH',
      `pair "${member.name}" spans ${member.regionCount} regions, the image ${volume.regionCount}: the primary was resized since the export`,
      `export a new image of pair "${member.name}" and import that`,
    );
  }
}

/** Where an import starts: after an unfinished import of this very image, or at 0 (--restart, or none). */
export function resumeRegion(endpoint: VolumeEndpoint, marker: ImportMarker | null, image: InspectedImage, restart: boolean): number {
  if (!marker || restart) return 0;
  if (marker.imageId === image.manifest.imageId && marker.manifestSha256 === image.manifestSha256) return Math.min(marker.nextRegion, image.layout.regionCount);
  throw new TidemarkError(
    'INCOMPLETE',
    `${endpoint.volref} holds an unfinished import of another image (${marker.imageId}, at region ${marker.nextRegion}); this one is ${image.manifest.imageId}`,
    'import that image again to finish it, or add --restart to import this one from the start',
  );
}
