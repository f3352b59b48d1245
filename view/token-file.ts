/**
 * Bearer tokens for browsers without a client certificate: the coordinator's `--view-tokens FILE`, a
 * JSON file of entries { name, role, sha256 } (never a token itself), made and extended by `evosearch
 * token`. A token stands for its entry's name and role exactly as a client certificate with that CN and
 * OU does: `alice`'s token sees alice's runs. The file is read again when it changes (at most once a
 * second), so a token added or removed takes effect without a restart.
 *
 *   { "version": 1, "tokens": [ { "name": "alice", "role": "client", "sha256": "<hex>", "created": "<RFC 3339>" } ] }
 *
 * A token is `evs_` and 32 random bytes in base64url. A presented token is hashed and compared with
 * every entry's hash in constant time (no early exit, no comparison of the token's text).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { writeFileDurable } from '../files/durable-write.js';
import { FailureError } from '../errors/evosearch-error.js';
import { VIEW_ROLES, type ViewRole } from './principal.js';

const TOKENS_VERSION = 1;
/** What a token's entry may be named: a certificate CN's usual characters. */
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const TOKEN_SHAPE = /^evs_[A-Za-z0-9_-]{43}$/;

export interface TokenEntry {
  readonly name: string;
  readonly role: ViewRole;
  /** sha256 of the token, hex. */
  readonly sha256: string;
  readonly created: string;
}

/** A tokens file that cannot be read or written as one: its path and what is wrong (exit 2). */
export class TokenFileError extends FailureError {
  constructor(readonly file: string, problem: string, options?: { cause?: unknown }) {
    super('bad-file', `${file}: ${problem}`, options);
  }
}

export function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A fresh token (32 random bytes). */
export function newToken(): string {
  return `evs_${randomBytes(32).toString('base64url')}`;
}

/** The file's entries, checked (a bad entry names its index and field). A missing file is an error unless `missingIsEmpty`. */
export function readTokenFile(file: string, missingIsEmpty = false): TokenEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && missingIsEmpty) return [];
    throw new TokenFileError(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}); \`evosearch token --tokens ${file} --name NAME --role client\` makes it`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new TokenFileError(file, 'is not JSON', { cause: error });
  }
  const top = json as { version?: unknown; tokens?: unknown };
  if (typeof json !== 'object' || json === null || top.version !== TOKENS_VERSION || !Array.isArray(top.tokens)) throw new TokenFileError(file, `is not a tokens file of version ${TOKENS_VERSION} ({"version": 1, "tokens": [...]})`);
  const names = new Set<string>();
  return top.tokens.map((raw: unknown, i): TokenEntry => {
    const entry = raw as Partial<Record<keyof TokenEntry, unknown>>;
    const bad = (field: string, why: string): never => {
      throw new TokenFileError(file, `tokens[${i}].${field} ${why}`);
    };
    if (typeof raw !== 'object' || raw === null) bad('', 'is not an object');
    if (typeof entry.name !== 'string' || !TOKEN_NAME.test(entry.name)) bad('name', `must be a name of letters, digits and . _ @ - (1 to 64), got ${JSON.stringify(entry.name)}`);
    if (names.has(entry.name as string)) bad('name', `repeats '${String(entry.name)}'`);
    names.add(entry.name as string);
    if (typeof entry.role !== 'string' || !(VIEW_ROLES as readonly string[]).includes(entry.role)) bad('role', `must be one of ${VIEW_ROLES.join(', ')}`);
    if (typeof entry.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(entry.sha256)) bad('sha256', 'must be 64 hex digits (the sha256 of the token, not the token)');
    return { name: entry.name as string, role: entry.role as ViewRole, sha256: entry.sha256 as string, created: typeof entry.created === 'string' ? entry.created : '' };
  });
}

/**
 * Makes a token for `name` with `role`, adds its hash to `file` (made readable by its owner only), and
 * gives the token: the only time it exists outside the user's hands. An entry of that name is refused
 * unless `replace` (then the old token stops working).
 */
export async function addToken(file: string, name: string, role: ViewRole, replace: boolean): Promise<string> {
  if (!TOKEN_NAME.test(name)) throw new TokenFileError(file, `--name '${name}' is not a name of letters, digits and . _ @ - (1 to 64)`);
  const entries = readTokenFile(file, true);
  if (entries.some((e) => e.name === name) && !replace) throw new TokenFileError(file, `has a token for '${name}' already; add --replace to make a new one (the old one stops working)`);
  const token = newToken();
  const entry: TokenEntry = { name, role, sha256: tokenHash(token).toString('hex'), created: new Date().toISOString() };
  const kept = entries.filter((e) => e.name !== name);
  await writeFileDurable(file, `${JSON.stringify({ version: TOKENS_VERSION, tokens: [...kept, entry] }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return token;
}

/** Whose token `token` is, among `entries`: every entry compared, in constant time. */
export function matchToken(token: string, entries: readonly { readonly hash: Buffer; readonly name: string; readonly role: ViewRole }[]): { readonly name: string; readonly role: ViewRole } | null {
  if (!TOKEN_SHAPE.test(token)) return null;
  const hash = tokenHash(token);
  let found: { readonly name: string; readonly role: ViewRole } | null = null;
  for (const entry of entries) if (timingSafeEqual(entry.hash, hash) && found === null) found = entry;
  return found;
}

/**
 * A tokens file as the view server reads it: loaded now (an unreadable file is an error at start), and
 * again when its size or modification time changes, looked at most once a second. A file that turns
 * bad later keeps the last good entries, and `onProblem` is told.
 */
export class TokenBook {
  private entries: { readonly hash: Buffer; readonly name: string; readonly role: ViewRole }[] = [];
  private stamp = '';
  private lookedAt = 0;

  constructor(readonly file: string, private readonly onProblem: (message: string) => void = () => undefined) {
    this.load();
  }

  /** The name and role of `token`, or null. */
  verify(token: string): { readonly name: string; readonly role: ViewRole } | null {
    this.refresh();
    return matchToken(token, this.entries);
  }

  private refresh(): void {
    const now = Date.now();
    if (now - this.lookedAt < 1000) return;
    this.lookedAt = now;
    try {
      if (this.stampOf() !== this.stamp) this.load();
    } catch (error) {
      this.onProblem(`tokens file ${this.file} not read again, the tokens it held before stay: ${(error as Error).message}`);
    }
  }

  private stampOf(): string {
    if (!existsSync(this.file)) return 'missing';
    const info = statSync(this.file);
    return `${info.size}:${info.mtimeMs}:${info.ino}`;
  }

  private load(): void {
    const stamp = this.stampOf();
    this.entries = readTokenFile(this.file).map((e) => ({ hash: Buffer.from(e.sha256, 'hex'), name: e.name, role: e.role }));
    this.stamp = stamp;
  }
}
