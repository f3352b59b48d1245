/**
 * The flags a command this process prints for later (`evosearch resume …`) needs to reach the cluster
 * the way this one did: the certificates, the NATS user, credentials file and TLS files, the cluster
 * key, --insecure. Only those given on this command line: what came from the environment is there
 * again for the next command of the same shell. Never a secret: a NATS password or token given as a
 * flag is named by its variable instead, so a printed or logged command does not carry it. Paths are
 * made absolute, because the command may be run from another folder.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { NATS_ACCESS_ENV } from '../cluster/nats-access.js';

/** Option attribute names repeated with their value (a file path unless said otherwise). */
const REPEATED: readonly { readonly key: string; readonly path: boolean }[] = [
  { key: 'tlsCa', path: true },
  { key: 'tlsCert', path: true },
  { key: 'tlsKey', path: true },
  { key: 'natsUser', path: false },
  { key: 'natsCreds', path: true },
  { key: 'natsCa', path: true },
  { key: 'natsCert', path: true },
  { key: 'natsKey', path: true },
  { key: 'clusterKey', path: true },
];
/** Secrets: named by the variable that gives them instead. */
const SECRETS: readonly { readonly key: string; readonly env: string }[] = [
  { key: 'natsPassword', env: NATS_ACCESS_ENV.password },
  { key: 'natsToken', env: NATS_ACCESS_ENV.token },
];

/** How a printed command reaches the cluster again: variables to set before it, flags after it. */
export interface FollowUp {
  /** `EVOSEARCH_NATS_PASSWORD=… ` for each secret that was a flag (empty when none). */
  readonly env: string;
  /** ` --tls-ca /abs/ca.crt …` (empty when none was given). */
  readonly flags: string;
}

/** No flags to repeat: a command that took none, or one built by a test. */
export const NO_FOLLOW_UP: FollowUp = { env: '', flags: '' };

/** What of `command`'s command line a printed follow-up command must repeat. */
export function followUpOf(command: Command): FollowUp {
  const given = (key: string) => command.getOptionValueSource(key) === 'cli' && command.getOptionValue(key) !== undefined;
  const flagOf = (key: string) => command.options.find((o) => o.attributeName() === key)?.long ?? `--${key}`;
  const parts: string[] = [];
  for (const { key, path } of REPEATED) {
    if (!given(key)) continue;
    const value = String(command.getOptionValue(key));
    parts.push(flagOf(key), shellWord(path ? resolve(value) : value));
  }
  if (given('insecure') && command.getOptionValue('insecure') === true) parts.push('--insecure');
  const env = SECRETS.filter(({ key }) => given(key)).map(({ env: variable }) => `${variable}=… `).join('');
  return { env, flags: parts.length > 0 ? ` ${parts.join(' ')}` : '' };
}

/** `evosearch <words>` with what `followUp` adds. */
export function followUpCommand(words: string, followUp: FollowUp): string {
  return `${followUp.env}evosearch ${words}${followUp.flags}`;
}

/** `word` as one word of a POSIX shell command line. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
