#!/usr/bin/env node
// Runs first in `npm test`: the tests need a NATS server with JetStream (the cluster tests start
// their own nats-server on a random port, or use the one NATS_URL names). Without either, stop now
// with the command that gets one, instead of failing a dozen cluster tests five minutes in.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Where test/support/nats-server.ts looks besides PATH. */
export const NATS_SERVER_PATHS = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server'];

/** NATS_URL, or the nats-server binary the tests will start, or null. */
export function natsServerFound(env = process.env, paths = NATS_SERVER_PATHS) {
  if (env.NATS_URL) return `NATS_URL=${env.NATS_URL}`;
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8', env });
  if (which.status === 0 && which.stdout.trim() !== '') return which.stdout.trim();
  return paths.find((p) => existsSync(p)) ?? null;
}

export const MISSING_NATS_SERVER = [
  'npm test: the cluster tests need nats-server (2.9 or later, with JetStream), and none was found',
  '(not on PATH, not in /usr/sbin or /usr/local/bin, and NATS_URL is not set). Get one with:',
  '  Debian/Ubuntu:  sudo apt-get install -y nats-server',
  '  macOS:          brew install nats-server',
  '  any Linux:      the release binary of https://github.com/nats-io/nats-server/releases on PATH',
  'or point the tests at a running server: NATS_URL=nats://host:4222 npm test',
].join('\n');

if (process.argv[1] === fileURLToPath(import.meta.url) && natsServerFound() === null) {
  process.stderr.write(`${MISSING_NATS_SERVER}\n`);
  process.exit(1);
}
