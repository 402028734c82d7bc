// tempDir: a dir made in a test is gone after that test; one made in a beforeAll — at any
// depth — lives until the file's tests are done.
import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp';

let inTest = '';

describe('tempDir lifetimes', () => {
  it('made in a test', async () => {
    inTest = await tempDir();
    expect(existsSync(inTest)).toBe(true);
  });

  describe('a nested describe with a beforeAll after an earlier test ran', () => {
    let shared = '';
    beforeAll(async () => {
      shared = await tempDir();
    });

    it('the earlier test’s dir is gone', () => {
      expect(inTest).not.toBe('');
      expect(existsSync(inTest)).toBe(false);
      expect(existsSync(shared)).toBe(true);
    });

    it('the beforeAll dir outlives the first test that used it', () => {
      expect(existsSync(shared)).toBe(true);
    });
  });
});
