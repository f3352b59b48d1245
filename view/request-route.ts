/**
 * A request's path as the live view's routes: judged before anything is looked up. A path is ASCII
 * segments of letters, digits and `. _ -` only (after one percent-decoding: an encoded `/`, `\`, NUL
 * or anything else is refused), no empty, `.` or `..` segment; a run id must also have the source's
 * shape (a UUID on a coordinator). So no part of a URL can name a file or leave a folder: files are
 * chosen from fixed tables, never from the path.
 */
export type Route =
  | { readonly kind: 'page'; readonly file: string }
  | { readonly kind: 'whoami' }
  | { readonly kind: 'runs' }
  | { readonly kind: 'run'; readonly runId: string }
  | { readonly kind: 'events'; readonly runId: string }
  | { readonly kind: 'cancel'; readonly runId: string }
  | { readonly kind: 'download'; readonly runId: string }
  | { readonly kind: 'thumbnail'; readonly runId: string; readonly round: number; readonly candidate: number };

export type Routing = { readonly ok: true; readonly route: Route; readonly method: 'GET' | 'POST' } | { readonly ok: false; readonly status: 400 | 404 | 405; readonly error: string };

const SEGMENT = /^[A-Za-z0-9._-]{1,128}$/;
const COUNT = /^(0|[1-9][0-9]{0,8})$/;

/** The static files of the page, by their URL path (the only files the view serves from disk). */
export const PAGE_FILES: Readonly<Record<string, string>> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/api.js': 'api.js',
  '/charts.js': 'charts.js',
  '/dom.js': 'dom.js',
  '/format.js': 'format.js',
  '/style.css': 'style.css',
  '/favicon.svg': 'favicon.svg',
};

export function route(method: string | undefined, url: string | undefined, isRunId: (id: string) => boolean): Routing {
  const raw = (url ?? '/').split('?')[0]!;
  if (raw.length > 512) return { ok: false, status: 400, error: 'path too long' };
  let path: string;
  try {
    path = decodeURIComponent(raw);
  } catch {
    return { ok: false, status: 400, error: 'path is not percent-encoded UTF-8' };
  }
  if (/[^\x21-\x7e]|\\/.test(path) || path !== raw) return { ok: false, status: 400, error: 'path holds characters the view does not take (encoded, control, backslash or non-ASCII)' };
  if (!path.startsWith('/')) return { ok: false, status: 400, error: 'path must start with /' };
  const want = (allowed: 'GET' | 'POST', r: Route): Routing => {
    if (method === allowed || (allowed === 'GET' && method === 'HEAD')) return { ok: true, route: r, method: allowed };
    return { ok: false, status: 405, error: `${method ?? '?'} is not allowed here (${allowed} only)` };
  };
  const page = PAGE_FILES[path];
  if (page !== undefined) return want('GET', { kind: 'page', file: page });
  const parts = path.split('/').slice(1);
  if (parts.some((p) => !SEGMENT.test(p) || p === '.' || p === '..')) return { ok: false, status: 400, error: 'path has an empty, dot or odd segment' };
  if (parts[0] !== 'api') return { ok: false, status: 404, error: 'no such page' };
  if (parts.length === 2 && parts[1] === 'whoami') return want('GET', { kind: 'whoami' });
  if (parts[1] !== 'runs') return { ok: false, status: 404, error: 'no such endpoint' };
  if (parts.length === 2) return want('GET', { kind: 'runs' });
  const runId = parts[2]!;
  if (!isRunId(runId)) return { ok: false, status: 404, error: `no run ${runId}` };
  if (parts.length === 3) return want('GET', { kind: 'run', runId });
  if (parts.length === 4 && parts[3] === 'events') return want('GET', { kind: 'events', runId });
  if (parts.length === 4 && parts[3] === 'cancel') return want('POST', { kind: 'cancel', runId });
  if (parts.length === 4 && parts[3] === 'download') return want('GET', { kind: 'download', runId });
  if (parts.length === 6 && parts[3] === 'thumbnails' && COUNT.test(parts[4]!) && /^(0|[1-9][0-9]{0,8})\.png$/.test(parts[5]!)) {
    return want('GET', { kind: 'thumbnail', runId, round: Number(parts[4]), candidate: Number(parts[5]!.slice(0, -4)) });
  }
  return { ok: false, status: 404, error: 'no such endpoint' };
}

/** A coordinator's run ids: UUIDs (randomUUID), lower case. */
export const isUuid = (id: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id);
