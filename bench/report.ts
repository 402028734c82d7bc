// Benchmark figures: the one-line BENCH format every benchmark prints, and bench-results/latest.json.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Measure {
  readonly value: number;
  readonly unit: string;
}

export interface PeerMeasure extends Measure {
  readonly name: string;
}

/** 'at-least': the figure meets its goal when ratio >= goal; 'at-most': when ratio <= goal. */
export type GoalRule = 'at-least' | 'at-most';

export interface Figure {
  readonly name: string;
  readonly tidemark: Measure;
  readonly peer: PeerMeasure;
  readonly ratio: number;
  readonly goal: number;
  readonly goalRule: GoalRule;
  readonly meetsGoal: boolean;
  readonly details: Readonly<Record<string, unknown>>;
}

export interface FigureInput {
  readonly name: string;
  readonly tidemark: Measure;
  readonly peer: PeerMeasure;
  readonly ratio: number;
  readonly goal: number;
  readonly goalRule?: GoalRule;
  readonly details: Readonly<Record<string, unknown>>;
}

export function makeFigure(input: FigureInput): Figure {
  const goalRule = input.goalRule ?? 'at-least';
  if (!Number.isFinite(input.ratio)) throw new Error(`figure ${input.name}: ratio ${input.ratio} is not a finite number`);
  const meetsGoal = goalRule === 'at-least' ? input.ratio >= input.goal : input.ratio <= input.goal;
  return { ...input, goalRule, meetsGoal };
}

/** Three significant digits below 100, whole numbers above: enough to compare, short to read. */
export function formatValue(value: number): string {
  if (Number.isInteger(value) || Math.abs(value) >= 100) return Math.round(value).toString();
  return Number(value.toPrecision(3)).toString();
}

function formatGoal(figure: Figure): string {
  return figure.goalRule === 'at-least' ? formatValue(figure.goal) : `<= ${formatValue(figure.goal)}`;
}

/** `BENCH <name>: tidemark <value> <unit> | <peer> <value> <unit> | ratio <r> (goal <g>) PASS` */
export function formatBenchLine(figure: Figure): string {
  const tidemark = `tidemark ${formatValue(figure.tidemark.value)} ${figure.tidemark.unit}`;
  const peer = `${figure.peer.name} ${formatValue(figure.peer.value)} ${figure.peer.unit}`;
  const verdict = figure.meetsGoal ? 'PASS' : 'BELOW-GOAL';
  return `BENCH ${figure.name}: ${tidemark} | ${peer} | ratio ${formatValue(figure.ratio)} (goal ${formatGoal(figure)}) ${verdict}`;
}

/** The record stored in latest.json; the goal rule travels in details as a readable sentence. */
function toRecord(figure: Figure): Record<string, unknown> {
  const comparison = figure.goalRule === 'at-least' ? '>=' : '<=';
  return {
    name: figure.name,
    tidemark: { value: figure.tidemark.value, unit: figure.tidemark.unit },
    peer: { name: figure.peer.name, value: figure.peer.value, unit: figure.peer.unit },
    ratio: figure.ratio,
    goal: figure.goal,
    meetsGoal: figure.meetsGoal,
    details: { goalRule: `ratio ${comparison} ${figure.goal}`, ...figure.details },
  };
}

/** Writes every figure of this run to `<resultsDir>/latest.json`, replacing the previous run's. */
export async function writeResults(resultsDir: string, figures: readonly Figure[]): Promise<string> {
  await mkdir(resultsDir, { recursive: true });
  const path = join(resultsDir, 'latest.json');
  await writeFile(path, `${JSON.stringify(figures.map(toRecord), null, 2)}\n`);
  return path;
}
