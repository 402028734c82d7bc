// What can be wrong with an image, one problem per finding, each naming its file. `image
// verify` lists them all; import stops at the first (as a TidemarkError) before writing anything.

import { join } from 'node:path';
import { TidemarkError, type ErrorCode } from '../errors';

export const problemKinds = [
  'missing',
  'not-regular',
  'unreadable',
  'unsupported',
  'checksum',
  'schema',
  'limits',
  'structure',
  'truncated',
  'oversized',
  'altered',
  'extra',
  'unfinished',
] as const;
export type ProblemKind = (typeof problemKinds)[number];

export interface ImageProblem {
  /** The file (or manifest entry) at fault, relative to the image directory. */
  readonly file: string;
  readonly kind: ProblemKind;
  readonly detail: string;
}

/** Receives each problem found: verify collects them, import throws the first. */
export type ProblemSink = (problem: ImageProblem) => void;

function codeOf(kind: ProblemKind): ErrorCode {
  if (kind === 'missing') return 'NOT_FOUND';
  if (kind === 'unsupported') return 'UNSUPPORTED';
  if (kind === 'unfinished') return 'INCOMPLETE';
  return 'METADATA_CORRUPT';
}

function hintOf(kind: ProblemKind, dir: string): string {
  if (kind === 'unsupported') return 'import it with the Tidemark version that made it, or upgrade this one';
  if (kind === 'unfinished') return 'finish the export (run the same `tidemark image export` again), then copy the directory';
  return `copy the image again from the exporting site; \`tidemark image verify ${dir}\` lists every problem`;
}

export function problemText(problem: ImageProblem): string {
  return `${problem.file}: ${problem.kind.replace('-', ' ')}: ${problem.detail}`;
}

/** The one-line error for a problem: the file's full path, what is wrong, what to do. */
export function problemError(dir: string, problem: ImageProblem): TidemarkError {
  return new TidemarkError(
    codeOf(problem.kind),
    `image file ${join(dir, problem.file)}: ${problem.kind.replace('-', ' ')}: ${problem.detail}`,
    hintOf(problem.kind, dir),
  );
}

/** A sink that throws the first problem as a TidemarkError. */
export function throwingSink(dir: string): ProblemSink {
  return (problem) => {
    throw problemError(dir, problem);
  };
}
