/**
 * The coordinator's live-view flags: `--view-listen HOST:PORT` serves the page (off unless given;
 * HTTPS with the coordinator's certificate under TLS, plaintext on loopback only under --insecure),
 * `--view-tokens FILE` the bearer tokens browsers without a certificate use (`evosearch token`).
 */
import type { Command } from 'commander';
import { loopbackUnlessHost, parseHostPort } from './host-port.js';
import { ConfigError } from '../config/resolve-run-config.js';
import type { CoordinatorViewOptions } from '../coordinator/service/coordinator-view.js';
import { readTokenFile } from '../view/token-file.js';
import { checkViewListen } from '../view/view-server.js';
import type { TransportSecurity } from '../proto/transport-security.js';

export function addViewOptions(command: Command): Command {
  return command
    .option('--view-listen <host:port>', 'serve the live view, a web page of the runs, here (default: off; a bare port or 127.0.0.1:PORT is loopback; HTTPS with the coordinator\'s certificate under TLS, plaintext on loopback only with --insecure)')
    .option('--view-tokens <file>', 'bearer tokens for browsers without a client certificate (`evosearch token --tokens FILE --name NAME --role client` adds one)');
}

/** The view the flags ask for, checked (the tokens file is read now, so a bad one stops the start). */
export function viewOptionsFrom(options: { viewListen?: string; viewTokens?: string }, transport: TransportSecurity): CoordinatorViewOptions | undefined {
  if (options.viewListen === undefined) {
    if (options.viewTokens !== undefined) throw new ConfigError('--view-tokens', 'serves nothing without --view-listen', 'command-line flags');
    return undefined;
  }
  const listen = loopbackUnlessHost(options.viewListen);
  parseHostPort(listen, '--view-listen');
  checkViewListen(listen, transport.kind === 'mtls');
  if (options.viewTokens !== undefined) readTokenFile(options.viewTokens);
  return { listen, ...(options.viewTokens !== undefined ? { tokens: options.viewTokens } : {}) };
}

/** The line that says where the view is, after the coordinator's `listening` line. */
export function viewLine(url: string | undefined): string {
  return url === undefined ? '' : `${JSON.stringify({ event: 'view', url })}\n`;
}
