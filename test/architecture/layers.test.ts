// Enforces DESIGN.md's layer rule by scanning imports (lint can be silenced; this cannot).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli';
import { checkFile, checkTree, importsOf } from './layers';

const root = repoRoot;
const at = (path: string) => join(root, path);
const check = (file: string, code: string) => checkFile(root, at(file), importsOf(at(file), code)).map((v) => v.rule);

describe('layer rule', () => {
  it('the source tree has no violations', () => {
    const { files, violations } = checkTree(root);
    expect(files).toBeGreaterThan(20);
    expect(violations).toEqual([]);
  });

  it('catches engine imports of UI code, other layers and deep folder paths', () => {
    expect(check('src-engine/volume/x.ts', "import { app } from 'electron';")).toHaveLength(1);
    expect(check('src-engine/volume/x.ts', "import React from 'react';")).toHaveLength(1);
    expect(check('src-engine/volume/x.ts', "import { x } from '../../src-main/main';")).toEqual(['src-engine imports nothing outside src-engine']);
    expect(check('src-engine/volume/x.ts', "import { Bitset } from '../bitmap/bitset';")).toEqual(['import engine folder "bitmap" through its index.ts']);
    expect(check('src-engine/volume/x.ts', "export { Bitset } from '../bitmap/bitset';")).toHaveLength(1);
    expect(check('src-engine/volume/x.ts', "const m = await import('../bitmap/moos');")).toHaveLength(1);
    expect(
      check(
        'src-engine/volume/x.ts',
        "import { Bitset } from '../bitmap';\nimport { assert } from '../assert';\nimport { x } from './geometry';\nimport { readFile } from 'node:fs/promises';",
      ),
    ).toEqual([]);
  });

  it('catches main importing engine internals and renderer importing runtime code', () => {
    expect(check('src-main/main.ts', "import { Volume } from '../src-engine/volume';")).toEqual(['src-main imports src-engine/index.ts only']);
    expect(check('src-main/main.ts', "import { Volume } from '../src-engine';")).toEqual([]);
    expect(check('src-renderer/App.tsx', "import { readFile } from 'node:fs';")).toHaveLength(1);
    expect(check('src-renderer/App.tsx', "import { Volume } from '../src-engine';")).toEqual(['src-renderer imports no engine code']);
    expect(check('src-renderer/App.tsx', "import { api } from '../src-main/console-api';")).toEqual([
      'src-renderer imports console API types only (import type)',
    ]);
    expect(check('src-renderer/App.tsx', "import type { ConsoleApi } from '../src-main/console-api';")).toEqual([]);
    expect(check('src-renderer/App.tsx', "import { type ConsoleApi } from '../src-main/console-api';")).toEqual([]);
  });
});
