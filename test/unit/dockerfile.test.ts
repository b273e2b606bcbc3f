/**
 * The worker image copies source folders one by one (no tests, scripts or docs in it). Nothing
 * builds the image here (no container engine), so this test follows the relative imports of the
 * image's two entry points and asserts every file they reach lies in a folder the Dockerfile
 * copies: a new top-level folder the worker imports (as policy/ once was) fails here, not at the
 * image's first start.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

async function reachable(entry: string): Promise<Set<string>> {
  const seen = new Set<string>();
  const queue = [resolve(root, entry)];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = await readFile(file, 'utf8');
    // static imports/exports and dynamic import() of relative paths
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) queue.push(resolve(dirname(file), m[1]!));
  }
  return seen;
}

it('the image copies every folder the worker and the CLI import', async () => {
  const dockerfile = await readFile(resolve(root, 'Dockerfile'), 'utf8');
  const copied = [...dockerfile.matchAll(/^COPY --chown=\S+ (\S+) \.\/\S*$/gm)].map((m) => m[1]!.replace(/\/$/, ''));
  assert.ok(copied.includes('worker') && copied.includes('client'), `COPY lines found: ${copied.join(', ')}`);
  for (const entry of ['worker/main.ts', 'client/bin.ts']) {
    for (const file of await reachable(entry)) {
      const rel = relative(root, file);
      const top = rel.split('/')[0]!;
      assert.ok(copied.includes(top) || copied.includes(rel), `${entry} imports ${rel}, but the Dockerfile does not copy ${top}/`);
    }
  }
});
