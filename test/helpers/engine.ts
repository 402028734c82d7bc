// An engine on a temporary home with a small lab, for console and engine tests.
import { join } from 'node:path';
import { Engine } from '../../src-engine';
import { tempDir } from './tmp';

export const smallLab = { volumeBytes: 64 * 2 ** 20, regionBytes: 2 ** 20 };

export async function engineWithLab(): Promise<{ engine: Engine; homeDir: string }> {
  const homeDir = join(await tempDir(), 'home');
  const engine = await Engine.open(homeDir, { purpose: 'test' });
  await engine.ensureLab(smallLab);
  return { engine, homeDir };
}

export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
