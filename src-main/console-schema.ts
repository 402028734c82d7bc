// Runtime validation of every console request, shared by the IPC handlers and web mode: the
// verb must be known and its arguments must match exactly (unknown keys are refused).

import { z } from 'zod';
import type { ConsoleVerb } from './console-api';

const empty = z.object({}).strict();
const pairName = z.string().min(1).max(64);
const volref = z
  .string()
  .min(1)
  .max(4096)
  .refine((v) => !v.includes('\0'), 'must not contain a NUL byte');
const regionBytes = z
  .number()
  .int()
  .min(4096)
  .max(64 * 1024 * 1024);
const splitBytes = z
  .number()
  .int()
  .min(1024 * 1024)
  .max(2 ** 40);
const limitRateBytesPerSecond = z
  .number()
  .int()
  .positive()
  .max(2 ** 40);
const methods = ['full', 'tardy', 'early', 'signature', 'realized'] as const;
const pairMapName = z.enum(['oos', 'moos', 'in-flight', 'current', 'next', 'failback', 'resync']);
const mapSource = z.union([
  z.object({ pair: pairName, which: pairMapName }).strict(),
  z
    .object({
      fileId: z.number().int().positive(),
      map: z
        .string()
        .min(1)
        .max(32)
        .regex(/^[a-z0-9][a-z0-9-]*$/, 'is not a map name'),
    })
    .strict(),
]);
/** A map file uploaded to the console: its bytes base64 (720 KiB at most, so the request fits a 1 MiB web-mode frame). */
export const mapFileUploadBytesMax = 720 * 1024;
const hostName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9._@:[\]-]{1,128}$/, 'is not a host alias or [user@]host[:port]');

export const requestSchemas = {
  overview: empty,
  bitmap: z.object({ pair: pairName, which: z.enum(['oos', 'moos', 'realized', 'since', 'conveyed', 'current', 'next']) }).strict(),
  events: z.object({ afterId: z.number().int().nonnegative() }).strict(),
  labReset: empty,
  generatorStart: z
    .object({
      pattern: z.enum(['random', 'sequential', 'hot-spot']),
      writesPerSecond: z.number().positive().max(5000),
      writeBytes: z
        .number()
        .int()
        .min(512)
        .max(4 * 1024 * 1024),
      seed: z
        .number()
        .int()
        .nonnegative()
        .max(2 ** 32 - 1),
    })
    .strict(),
  generatorStop: empty,
  hosts: empty,
  hostAdd: z.object({ name: hostName }).strict(),
  hostRemove: z.object({ name: hostName }).strict(),
  hostConnect: z.object({ name: hostName }).strict(),
  hostAnswer: z
    .object({
      name: hostName,
      questionId: z.number().int().positive(),
      approve: z.boolean().optional(),
      secret: z.string().max(4096).nullable().optional(),
      remember: z.boolean().optional(),
    })
    .strict(),
  hostVolumes: z.object({ host: hostName.optional() }).strict(),
  pairEstimate: z.object({ primary: volref, secondary: volref, regionBytes }).strict(),
  pairCreate: z
    .object({
      name: pairName,
      primary: volref,
      secondary: volref,
      regionBytes: regionBytes.optional(),
      mode: z.enum(['continuous', 'periodic']),
      hash: z.enum(['xxh3-128', 'sha256']),
    })
    .strict(),
  pairDelete: z.object({ name: pairName, force: z.boolean().optional() }).strict(),
  groupCreate: z.object({ name: pairName, pairs: z.array(pairName).min(2).max(64) }).strict(),
  groupDelete: z.object({ name: pairName }).strict(),
  syncStart: z
    .object({
      pair: pairName,
      method: z.enum(['auto', ...methods]),
      limitRateBytesPerSecond: limitRateBytesPerSecond.optional(),
    })
    .strict(),
  syncCancel: z.object({ pair: pairName }).strict(),
  verify: z.object({ pair: pairName }).strict(),
  replicationStart: z.object({ pair: pairName, limitRateBytesPerSecond: limitRateBytesPerSecond.optional(), once: z.boolean().optional() }).strict(),
  replicationStop: z.object({ pair: pairName }).strict(),
  replicationPause: z.object({ pair: pairName }).strict(),
  replicationResume: z.object({ pair: pairName }).strict(),
  replicationState: z.object({ pair: pairName }).strict(),
  failover: z.object({ pair: pairName }).strict(),
  failbackPlan: z.object({ pair: pairName }).strict(),
  failbackStart: z.object({ pair: pairName, discardChangesOn: volref.optional(), limitRateBytesPerSecond: limitRateBytesPerSecond.optional() }).strict(),
  migratePlan: z.object({ pair: pairName }).strict(),
  migrateStart: z.object({ pair: pairName }).strict(),
  roleTask: z.object({ pair: pairName }).strict(),
  roleTaskCancel: z.object({ pair: pairName }).strict(),
  roleOptions: z.object({ pair: pairName }).strict(),
  mapView: z
    .object({
      source: mapSource,
      compare: z
        .object({ source: mapSource, operation: z.enum(['union', 'intersection', 'a-minus-b', 'b-minus-a']) })
        .strict()
        .optional(),
    })
    .strict(),
  mapFileOpen: z
    .object({
      fileName: z.string().min(1).max(255),
      bytesBase64: z
        .string()
        .min(1)
        .max(Math.ceil(mapFileUploadBytesMax / 3) * 4)
        .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'is not base64'),
    })
    .strict(),
  pairTimeline: z.object({ pair: pairName }).strict(),
  seedingTasks: empty,
  exportPreflight: z.object({ source: volref, dir: volref, splitBytes: splitBytes.optional() }).strict(),
  imageExport: z.object({ source: volref, dir: volref, splitBytes: splitBytes.optional() }).strict(),
  imageVerify: z.object({ dir: volref }).strict(),
  imageImport: z.object({ dir: volref, target: volref }).strict(),
  seedingCancel: z.object({ id: z.number().int().positive() }).strict(),
} satisfies Record<ConsoleVerb, z.ZodType>;

export const consoleVerbs = Object.keys(requestSchemas) as ConsoleVerb[];

/** The arguments of the Electron-only `tidemark:pickDirectory` channel (not a console verb: web mode has no native dialog). */
export const pickDirectorySchema = z
  .object({
    title: z.string().min(1).max(200),
    defaultPath: z
      .string()
      .max(4096)
      .refine((v) => !v.includes('\0'), 'must not contain a NUL byte')
      .optional(),
  })
  .strict();

/** A request the host refuses before it reaches the engine. */
export class ConsoleRefusal extends Error {
  constructor(
    readonly code: 'UNKNOWN_VERB' | 'BAD_ARGUMENTS' | 'FORBIDDEN',
    message: string,
  ) {
    super(message);
  }
}

export function isConsoleVerb(verb: unknown): verb is ConsoleVerb {
  return typeof verb === 'string' && Object.prototype.hasOwnProperty.call(requestSchemas, verb);
}

/** Checks a verb and its arguments; returns the parsed arguments or throws ConsoleRefusal. */
export function validateRequest(verb: unknown, args: unknown): { verb: ConsoleVerb; args: unknown } {
  if (!isConsoleVerb(verb)) throw new ConsoleRefusal('UNKNOWN_VERB', `unknown console verb ${JSON.stringify(String(verb)).slice(0, 80)}`);
  const parsed = requestSchemas[verb].safeParse(args ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConsoleRefusal('BAD_ARGUMENTS', `bad arguments for ${verb}: ${issue ? `${issue.path.join('.') || '(arguments)'} ${issue.message}` : 'invalid'}`);
  }
  return { verb, args: parsed.data };
}
