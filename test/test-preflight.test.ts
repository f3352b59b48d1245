import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './support/repo-root.js';

interface Preflight {
  natsServerFound(env: NodeJS.ProcessEnv, paths: readonly string[]): string | null;
  readonly MISSING_NATS_SERVER: string;
}

const preflight = async (): Promise<Preflight> => (await import(pathToFileURL(join(repoRoot(), 'test', 'preflight.mjs')).href)) as Preflight;

describe('npm test preflight (the NATS server the cluster tests need)', () => {
  it('finds nothing where there is no nats-server and no NATS_URL, and says how to get one', async () => {
    const { natsServerFound, MISSING_NATS_SERVER } = await preflight();
    assert.equal(natsServerFound({ PATH: '/nonexistent' }, []), null);
    assert.match(MISSING_NATS_SERVER, /apt-get install -y nats-server/);
    assert.match(MISSING_NATS_SERVER, /NATS_URL=nats:\/\/host:4222 npm test/);
  });

  it('takes NATS_URL, a nats-server on PATH, or one in the standard folders', async () => {
    const { natsServerFound } = await preflight();
    assert.equal(natsServerFound({ PATH: '/nonexistent', NATS_URL: 'nats://10.0.0.5:4222' }, []), 'NATS_URL=nats://10.0.0.5:4222');
    assert.equal(natsServerFound({ PATH: '/nonexistent' }, ['/nonexistent/nats-server', process.execPath]), process.execPath);
  });

  it('is the first step of the test command, before the compile', async () => {
    const { readFile } = await import('node:fs/promises');
    const scripts = (JSON.parse(await readFile(join(repoRoot(), 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    assert.match(scripts.test!, /^node test\/preflight\.mjs && /);
  });
});
