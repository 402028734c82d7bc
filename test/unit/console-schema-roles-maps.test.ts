// The console schema for the map inspector, the timeline, failback and migrate: valid arguments
// pass as sent, and each malformed one is refused before the engine sees it; which running
// role changes Cancel may stop.
import { describe, expect, it } from 'vitest';
import { roleTaskCancellable, type RoleTaskProgress } from '../../src-engine';
import { ConsoleRefusal, mapFileUploadBytesMax, validateRequest } from '../../src-main/console-schema';

describe('console schema: maps, timeline, failback, migrate', () => {
  it.each([
    ['mapView', { source: { pair: 'lab', which: 'resync' } }],
    ['mapView', { source: { fileId: 3, map: 'in-flight' }, compare: { source: { pair: 'lab', which: 'moos' }, operation: 'b-minus-a' } }],
    ['mapFileOpen', { fileName: 'lab.tmmap', bytesBase64: 'VE1SRUdNQVA=' }],
    ['pairTimeline', { pair: 'lab' }],
    ['failbackStart', { pair: 'lab', discardChangesOn: '/d/a.img' }],
    ['failbackStart', { pair: 'lab', limitRateBytesPerSecond: 4194304 }],
    ['migratePlan', { pair: 'lab' }],
    ['migrateStart', { pair: 'lab' }],
    ['roleTask', { pair: 'lab' }],
    ['roleTaskCancel', { pair: 'lab' }],
    ['roleOptions', { pair: 'lab' }],
  ])('accepts %s %j', (verb, args) => {
    expect(validateRequest(verb, args)).toEqual({ verb, args });
  });

  it.each([
    ['a map the pair table does not name', 'mapView', { source: { pair: 'lab', which: 'everything' } }],
    ['a source that is both', 'mapView', { source: { pair: 'lab', which: 'oos', fileId: 1 } }],
    ['a file map name with a path', 'mapView', { source: { fileId: 1, map: '../oos' } }],
    ['an unknown set operation', 'mapView', { source: { pair: 'lab', which: 'oos' }, compare: { source: { pair: 'lab', which: 'moos' }, operation: 'xor' } }],
    ['a comparison without its source', 'mapView', { source: { pair: 'lab', which: 'oos' }, compare: { operation: 'union' } }],
    ['bytes that are not base64', 'mapFileOpen', { fileName: 'a.tmmap', bytesBase64: 'not base64!' }],
    ['a file larger than one web frame holds', 'mapFileOpen', { fileName: 'a.tmmap', bytesBase64: 'A'.repeat(Math.ceil(mapFileUploadBytesMax / 3) * 4 + 4) }],
    ['an empty file', 'mapFileOpen', { fileName: 'a.tmmap', bytesBase64: '' }],
    ['the old synchronous failback verb', 'failback', { pair: 'lab' }],
    ['a fractional failback rate limit', 'failbackStart', { pair: 'lab', limitRateBytesPerSecond: 1.5 }],
    ['migrate with options it does not take', 'migrateStart', { pair: 'lab', drainMs: 5 }],
    ['a timeline of no pair', 'pairTimeline', { pair: '' }],
    ['a cancel with options it does not take', 'roleTaskCancel', { pair: 'lab', force: true }],
  ])('refuses %s', (_name, verb, args) => {
    expect(() => validateRequest(verb, args)).toThrow(ConsoleRefusal);
  });
});

describe('roleTaskCancellable', () => {
  const progress = (phase: RoleTaskProgress['phase']): RoleTaskProgress => ({
    phase,
    regionsTransferred: 0,
    regionsTotal: 0,
    bytesTransferred: 0,
    bytesPerSecond: 0,
    etaMs: undefined,
  });
  it('a failback in any phase; a migrate only while it drains, never before (checking, or resumed) nor from its pause on; nothing that has ended', () => {
    for (const phase of ['prepare', 'sync', 'copy'] as const)
      expect(roleTaskCancellable({ kind: 'failback', running: true, progress: progress(phase) })).toBe(true);
    expect(roleTaskCancellable({ kind: 'migrate', running: true, progress: null })).toBe(false); // still checking the pair, or resumed in its pause
    expect(roleTaskCancellable({ kind: 'migrate', running: true, progress: progress('drain') })).toBe(true);
    for (const phase of ['pause', 'copy', 'verify', 'check', 'done'] as const)
      expect(roleTaskCancellable({ kind: 'migrate', running: true, progress: progress(phase) }), phase).toBe(false);
    expect(roleTaskCancellable({ kind: 'failback', running: false, progress: progress('copy') })).toBe(false);
  });
});
