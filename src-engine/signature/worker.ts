// Signature worker thread: receives batches of region locations, reads and hashes them,
// and posts the signatures back (transferred, not copied).

import { parentPort, workerData } from 'node:worker_threads';
import { createRegionHasher, type HashAlgorithm } from './algorithms';
import { DescriptorCache, hashLocations, type RegionLocation } from './read-hash';

interface WorkerSetup {
  algorithm: HashAlgorithm;
  chunkBytes: number;
}

/**
 * `release` closes the worker's file descriptors: sent at the end of every sign() call, so a
 * file replaced between calls (a snapshot deleted and retaken at the same path) is reopened,
 * never read through a descriptor of the old one. Messages are handled in order, so it
 * follows every batch of that call.
 */
export type WorkerRequest = { kind: 'batch'; batchId: number; locations: RegionLocation[] } | { kind: 'release' } | { kind: 'close' };
export type WorkerResponse =
  | { kind: 'ready' }
  | { kind: 'done'; batchId: number; signatures: Uint8Array }
  | { kind: 'failed'; batchId: number; code: string | undefined; message: string; path: string | undefined };

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('signature worker started outside a worker thread');
  const setup = workerData as WorkerSetup;
  const hasher = await createRegionHasher(setup.algorithm);
  const descriptors = new DescriptorCache();
  const chunk = new Uint8Array(setup.chunkBytes);
  port.on('message', (request: WorkerRequest) => {
    if (request.kind === 'release' || request.kind === 'close') {
      descriptors.closeAll();
      if (request.kind === 'close') port.close();
      return;
    }
    try {
      const signatures = hashLocations(setup.algorithm, hasher, descriptors, request.locations, chunk);
      const response: WorkerResponse = { kind: 'done', batchId: request.batchId, signatures };
      port.postMessage(response, [signatures.buffer as ArrayBuffer]);
    } catch (error) {
      const failure = error as NodeJS.ErrnoException;
      const response: WorkerResponse = { kind: 'failed', batchId: request.batchId, code: failure.code, message: failure.message, path: failure.path };
      port.postMessage(response);
    }
  });
  port.postMessage({ kind: 'ready' } satisfies WorkerResponse);
}

void main();
