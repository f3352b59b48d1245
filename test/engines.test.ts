import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './support/repo-root.js';

type Version = readonly [number, number, number];

/** "20.19", "22.x", "6.*", "14" → the lowest version they name (wildcards as 0). */
function lowest(text: string): Version {
  const parts = text.replace(/^v/, '').split('.').map((p) => (p === 'x' || p === '*' || p === '' ? 0 : Number(p)));
  return [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
}

const compare = (a: Version, b: Version) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/**
 * Whether `version` satisfies an engines range, in the forms npm packages write: `||` of
 * space-separated comparators (>=, >, <=, <, =), caret and tilde ranges, x-ranges and bare versions.
 * An unknown form throws, so a new one in the lock is looked at rather than passed.
 */
function satisfies(version: Version, range: string): boolean {
  return range.split('||').some((alternative) => {
    // ">= 18" and ">=18" alike: join an operator to the version after it.
    const comparators = alternative.trim().replace(/([<>=^~]+)\s+/g, '$1').split(/\s+/).filter((c) => c !== '');
    return comparators.every((comparator) => {
      const match = /^(>=|<=|>|<|=|\^|~)?(v?\d+(?:\.(?:\d+|x|\*))*(?:\.(?:\d+|x|\*))?|\*|x)$/.exec(comparator);
      if (match === null) throw new Error(`unknown engines form '${comparator}' in '${range}'`);
      const op = match[1] ?? '';
      const wild = match[2] === '*' || match[2] === 'x';
      const v = wild ? ([0, 0, 0] as const) : lowest(match[2]!);
      const given = wild ? 0 : match[2]!.split('.').filter((p) => p !== 'x' && p !== '*').length;
      const c = compare(version, v);
      switch (op) {
        case '>=': return c >= 0;
        case '>': return c > 0;
        case '<=': return c <= 0;
        case '<': return c < 0;
        case '^': return c >= 0 && version[0] === v[0];
        case '~': return c >= 0 && version[0] === v[0] && (given < 2 || version[1] === v[1]);
        default:
          // "=", a bare version or an x-range: the named parts must match.
          return wild || (version[0] === v[0] && (given < 2 || version[1] === v[1]) && (given < 3 || version[2] === v[2]));
      }
    });
  });
}

describe("package.json's engines tell the truth", () => {
  it('the range parser reads the forms in the lock', () => {
    assert.ok(satisfies([20, 19, 0], '^20.19.0 || ^22.12.0 || >=23'));
    assert.ok(!satisfies([20, 0, 0], '^20.19.0 || ^22.12.0 || >=23'));
    assert.ok(!satisfies([20, 19, 0], '>= 22.x'));
    assert.ok(satisfies([20, 19, 0], '6.* || 8.* || >= 10.*'));
    assert.ok(satisfies([20, 19, 0], '>=16 || 14 >=14.17'));
    assert.ok(!satisfies([12, 0, 0], '>=16 || 14 >=14.17'));
  });

  it('the oldest Node that engines allows satisfies every installed package (npm ci warns of none)', async () => {
    const root = repoRoot();
    const own = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
    const floor = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(own.engines.node);
    assert.ok(floor, `engines.node '${own.engines.node}' should be a floor (>=X.Y)`);
    const oldest = lowest(floor[1]!);
    const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { engines?: { node?: string } | string[] }> };
    const unmet = Object.entries(lock.packages)
      .filter(([path]) => path !== '')
      .flatMap(([path, p]) => {
        const range = p.engines !== undefined && !Array.isArray(p.engines) ? p.engines.node : undefined;
        return range !== undefined && !satisfies(oldest, range) ? [`${path} wants node ${range}`] : [];
      });
    assert.deepEqual(unmet, [], `engines.node '${own.engines.node}' promises more than these packages give`);
  });
});
