// Talking to the view's API: the bearer token (from the address's fragment, kept in this tab's
// sessionStorage, never in a cookie), JSON calls, the events stream and downloads.

const TOKEN_KEY = 'evosearch-view-token';

/**
 * Takes `#token=…` (and `run=…`) out of the address bar into sessionStorage, so it is neither
 * bookmarked, shown nor sent anywhere: browsers never send a fragment to a server.
 */
export function takeTokenFromAddress() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token !== null) {
    sessionStorage.setItem(TOKEN_KEY, token);
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  }
}

export function hasToken() {
  return sessionStorage.getItem(TOKEN_KEY) !== null;
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token === null ? extra : { ...extra, Authorization: `Bearer ${token}` };
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (typeof body.error === 'string') message = body.error;
  } catch {
    // not JSON: the status says enough
  }
  return new ApiError(response.status, message);
}

export async function getJson(path) {
  const response = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function post(path) {
  const response = await fetch(path, { method: 'POST', headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** A thumbnail as an object URL (the image needs the Authorization header, so it is fetched). */
export async function imageUrl(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return URL.createObjectURL(await response.blob());
}

/** Saves what `path` answers as a file named `name`. */
export async function download(path, name) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Reads the NDJSON stream at `path`, calling `onLine` with each parsed line, until it ends, fails or
 * `signal` aborts. Resolves true when the server ended it with an {"type":"end"} line.
 */
export async function streamLines(path, onLine, signal) {
  const response = await fetch(path, { headers: headers(), signal, cache: 'no-store' });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  let ended = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.trim() === '') continue;
      const parsed = JSON.parse(line);
      if (parsed.type === 'end') ended = true;
      onLine(parsed);
    }
  }
  return ended;
}
