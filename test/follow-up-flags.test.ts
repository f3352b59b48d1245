/**
 * A command the CLI prints for later (`evosearch resume …` after a stop or a lost coordinator) must
 * reach the cluster as the first one did: the certificate and NATS flags of its command line, with
 * absolute paths, and never a password or token (those are named by their variable).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Command } from 'commander';
import { addClusterKeyOption, addNatsAccessOptions } from '../cli/cluster-access-options.js';
import { addTransportOptions } from '../cli/transport-options.js';
import { followUpCommand, followUpOf } from '../cli/follow-up-flags.js';
import { resumeCommand } from '../cli/coordinator-runs.js';

/** The access flags of `evosearch resume`, parsed from `argv` (its action does nothing). */
async function parsed(argv: readonly string[]): Promise<Command> {
  const command = addTransportOptions(addNatsAccessOptions(new Command('resume').argument('<run>').option('--cluster <url>'), 'cluster')).exitOverride();
  command.action(() => undefined);
  await command.parseAsync(['some-run', ...argv], { from: 'user' });
  return command;
}

describe('follow-up commands', () => {
  it('repeat the certificates, NATS user and TLS files as absolute paths, name a password by its variable, and leave out what came from the environment', async () => {
    const command = await parsed(['--cluster', 'nats://127.0.0.1:4222', '--tls-ca', 'certs/ca.crt', '--tls-cert', 'certs/my name.crt', '--tls-key', 'certs/me.key', '--nats-user', 'client', '--nats-password', 'hunter2-secret', '--nats-ca', '/etc/nats/ca.pem']);
    const followUp = followUpOf(command);
    const printed = resumeCommand('run-1', 'nats://127.0.0.1:4222', '/runs/out', followUp);
    assert.equal(
      printed,
      `EVOSEARCH_NATS_PASSWORD=… evosearch resume run-1 --cluster nats://127.0.0.1:4222 --out /runs/out --tls-ca ${resolve('certs/ca.crt')} --tls-cert '${resolve('certs/my name.crt')}' --tls-key ${resolve('certs/me.key')} --nats-user client --nats-ca /etc/nats/ca.pem`,
    );
    assert.doesNotMatch(printed, /hunter2/);
  });

  it('repeat --insecure and a token by its variable; a command line without such flags adds nothing', async () => {
    assert.equal(followUpCommand('resume x', followUpOf(await parsed(['--insecure', '--nats-token', 'tok-secret']))), 'EVOSEARCH_NATS_TOKEN=… evosearch resume x --insecure');
    assert.equal(followUpCommand('resume x', followUpOf(await parsed([]))), 'evosearch resume x');
  });

  it('repeat --cluster-key as an absolute path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'follow-up-'));
    try {
      await writeFile(join(dir, 'cluster.key'), randomBytes(32).toString('hex'));
      const command = addClusterKeyOption(new Command('resume').argument('<run>')).exitOverride();
      command.action(() => undefined);
      await command.parseAsync(['some-run', '--cluster-key', join(relative(process.cwd(), dir), 'cluster.key')], { from: 'user' });
      assert.equal(followUpCommand('resume x', followUpOf(command)), `evosearch resume x --cluster-key ${join(dir, 'cluster.key')}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
