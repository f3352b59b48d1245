/**
 * Credentials in a NATS URL (`nats://user:password@host:4222`, `nats://token@host:4222`, NATS's own
 * conventions), taken out of it. A URL is written in many places (the plan, config.json, record.json,
 * checkpoints, logs, the `resume` command a run prints), so only its credential-free form is kept: the
 * credentials go to the connection (nats-access.ts), never into a string that is written.
 */

/** What a URL's user information said: a user and password, or a token (a user part alone). */
export interface UrlCredentials {
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
}

/** A NATS URL, or a comma-separated list of them, without its credentials, and the credentials. */
export function splitNatsUrl(url: string): { readonly url: string; readonly credentials: UrlCredentials } {
  let credentials: UrlCredentials = {};
  const servers = url.split(',').map((server) => {
    const parsed = parse(server);
    if (parsed === null || (parsed.username === '' && parsed.password === '')) return server;
    const user = decodeURIComponent(parsed.username);
    credentials = parsed.password === '' ? { token: user } : { user, password: decodeURIComponent(parsed.password) };
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  });
  return { url: servers.join(','), credentials };
}

/** Whether a URL (or list) carries credentials. */
export function hasCredentials(url: string): boolean {
  return Object.keys(splitNatsUrl(url).credentials).length > 0;
}

/** A URL as messages may show it: credentials, if any, are not in it. */
export function shownNatsUrl(url: string): string {
  return splitNatsUrl(url).url;
}

function parse(server: string): URL | null {
  try {
    return new URL(server.trim());
  } catch {
    return null;
  }
}
