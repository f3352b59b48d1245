/**
 * The flags that say how a command reaches its cluster safely: NATS credentials and TLS on every
 * command that takes --cluster or --nats, and the cluster key (checkpoints sealed with HMAC-SHA256)
 * on run, resume and coordinator. They are applied before the command's action (commander's
 * preAction hook) and become the process's NATS access and cluster key; the URL flag is left without
 * its credentials, so nothing after it (the plan, config.json, record.json, checkpoints, logs, the
 * commands a run prints) can write them.
 */
import { Option, type Command } from 'commander';
import { layerNatsAccess, NATS_ACCESS_ENV, natsAccessFromEnv, useNatsAccess, type NatsAccess } from '../cluster/nats-access.js';
import { splitNatsUrl } from '../cluster/nats-url.js';
import { CLUSTER_KEY_ENV, clusterKeyFrom, useClusterKey } from '../coordinator/checkpoint/cluster-key.js';

interface AccessFlag {
  readonly flags: string;
  readonly field: keyof NatsAccess;
  readonly help: string;
}

const NATS_FLAGS: readonly AccessFlag[] = [
  { flags: '--nats-user <name>', field: 'user', help: `NATS user (or ${NATS_ACCESS_ENV.user}, or nats://user:password@host)` },
  { flags: '--nats-password <password>', field: 'password', help: `NATS password; other users of this machine can read a flag in the process list: prefer ${NATS_ACCESS_ENV.password}` },
  { flags: '--nats-token <token>', field: 'token', help: `NATS token (prefer ${NATS_ACCESS_ENV.token}, for the same reason)` },
  { flags: '--nats-creds <file>', field: 'credsFile', help: `NATS credentials file (.creds: a user JWT and its nkey seed; or ${NATS_ACCESS_ENV.credsFile})` },
  { flags: '--nats-ca <file>', field: 'caFile', help: `PEM CA that signed the NATS server's TLS certificate: connect over TLS and check it (or ${NATS_ACCESS_ENV.caFile})` },
  { flags: '--nats-cert <file>', field: 'certFile', help: `PEM client certificate, for a NATS server that verifies clients (mTLS; with --nats-key; or ${NATS_ACCESS_ENV.certFile})` },
  { flags: '--nats-key <file>', field: 'keyFile', help: `PEM key of --nats-cert (or ${NATS_ACCESS_ENV.keyFile})` },
];

/**
 * Adds the NATS credential and TLS flags to `command`, whose NATS URL is the option `urlOption`
 * (`cluster` or `nats`). Before its action they, the URL's credentials and the EVOSEARCH_NATS_*
 * variables (in that order of precedence) become the process's NATS access, and the URL option keeps
 * only the URL.
 */
export function addNatsAccessOptions(command: Command, urlOption: 'cluster' | 'nats'): Command {
  for (const flag of NATS_FLAGS) command.option(flag.flags, flag.help);
  return command.hook('preAction', (_command, actionCommand) => {
    const raw = actionCommand.getOptionValue(urlOption) as string | undefined;
    const { url, credentials } = raw === undefined ? { url: undefined, credentials: {} } : splitNatsUrl(raw);
    if (raw !== undefined) actionCommand.setOptionValueWithSource(urlOption, url, actionCommand.getOptionValueSource(urlOption) ?? 'cli');
    const flags: Record<string, string> = {};
    for (const flag of NATS_FLAGS) {
      const value = actionCommand.getOptionValue(new Option(flag.flags).attributeName()) as string | undefined;
      if (value !== undefined) flags[flag.field] = value;
    }
    useNatsAccess(layerNatsAccess(natsAccessFromEnv(), credentials, flags));
  });
}

/** Adds --cluster-key to `command`: before its action, the key (or EVOSEARCH_CLUSTER_KEY_FILE's) becomes the process's. */
export function addClusterKeyOption(command: Command): Command {
  command.option('--cluster-key <file>', `the cluster key (at least 32 bytes: \`openssl rand -hex 32 > cluster.key\`): checkpoints are sealed with HMAC-SHA256 under it, and one not sealed with it is refused; the same on every coordinator and client of the cluster (or ${CLUSTER_KEY_ENV})`);
  return command.hook('preAction', (_command, actionCommand) => {
    useClusterKey(clusterKeyFrom(actionCommand.getOptionValue('clusterKey') as string | undefined, '--cluster-key'));
  });
}
