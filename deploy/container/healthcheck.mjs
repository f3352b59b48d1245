/**
 * The evosearch image's HEALTHCHECK: is the container's evosearch server (under tini, PID 1: `coordinator` or
 * `worker`) serving?
 *
 * It finds the ports to ask itself, because a worker scaled with compose on host networking listens on
 * port 0 (any free port: fixed ports would collide between replicas), so no port can be written into
 * the image or the compose file. The TCP sockets the server process listens on are read from /proc (its fds' socket
 * inodes, matched in /proc/net/tcp{,6}), then asked, by what this image's CLI has (decided when the
 * image was built, in ./healthcheck-mode):
 *   grpc-health   `evosearch health --address HOST:PORT` on each port, with the server's own TLS flags
 *                 (read from its command line; EVOSEARCH_TLS_* are in the environment already): healthy
 *                 when one answers SERVING;
 *   http-readyz   GET /readyz on each port (the --metrics-listen server): healthy on 200, unhealthy on
 *                 another status from a port that speaks HTTP. When no port speaks HTTP (the process was
 *                 started without --metrics-listen, or the CLI has no metrics server yet) it can only
 *                 say that the server has bound its port, which a worker does once its model is hashed,
 *                 and says so.
 * A container running another command (`run`, `resume`, `certs`) serves nothing and is healthy while it
 * runs. Output is one line (podman keeps it in the health log); exit 0 healthy, 1 not.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const PID = process.env.EVOSEARCH_HEALTH_PID ?? serverPid();

/**
 * The server's process: PID 1's child when PID 1 is the image's tini (which holds no sockets), else
 * PID 1 itself (an image run with another entrypoint).
 */
function serverPid() {
  try {
    if (readFileSync('/proc/1/comm', 'utf8').trim() !== 'tini') return '1';
    for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
      try {
        // Field 4 of stat is the parent; the name in field 2 may hold spaces, so count after its ')'.
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] === '1' && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('evosearch')) return pid;
      } catch {
        // Ended while we looked.
      }
    }
  } catch {
    // No /proc/1/comm to read: treat PID 1 as the server.
  }
  return '1';
}
const BIN = new URL('../../bin/evosearch.js', import.meta.url).pathname;
const SERVERS = new Set(['coordinator', 'worker']);

function done(healthy, line) {
  process.stdout.write(`${line}\n`);
  process.exit(healthy ? 0 : 1);
}

let mode;
try {
  mode = readFileSync(new URL('./healthcheck-mode', import.meta.url), 'utf8').trim();
} catch (error) {
  done(false, `healthcheck: cannot read healthcheck-mode next to this script (${error.message}): the image was not built by deploy/container/Containerfile`);
}

let argv;
try {
  argv = readFileSync(`/proc/${PID}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
} catch (error) {
  done(false, `healthcheck: cannot read process ${PID}'s command line (${error.message})`);
}
const command = argv.slice(argv.findIndex((a) => a.endsWith('evosearch.js') || a.endsWith('/evosearch')) + 1).find((a) => !a.startsWith('-'));
if (!SERVERS.has(command)) done(true, `healthcheck: process ${PID} runs \`evosearch ${command ?? ''}\`, which serves nothing: healthy while it runs`);

/** The value of --flag in the server's arguments (`--flag value` or `--flag=value`), or undefined. */
function flag(name) {
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === name) return argv[i + 1];
    if (argv[i].startsWith(`${name}=`)) return argv[i].slice(name.length + 1);
  }
  return undefined;
}

/** host:port to dial for a listening socket's local address as /proc/net/tcp{,6} writes it (hex, little-endian words). */
function dialAddress(hex, v6) {
  const [ip, portHex] = hex.split(':');
  const port = parseInt(portHex, 16);
  const words = v6 ? ip.match(/.{8}/g) : [ip];
  const bytes = words.flatMap((w) => w.match(/../g).reverse().map((b) => parseInt(b, 16)));
  if (bytes.every((b) => b === 0)) return `127.0.0.1:${port}`; // a wildcard: dial loopback
  if (!v6) return `${bytes.join('.')}:${port}`;
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `${bytes.slice(12).join('.')}:${port}`;
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return `[${groups.join(':')}]:${port}`;
}

/** The addresses the server listens on (TCP). */
function listening() {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${PID}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${PID}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // An fd closed while we looked.
    }
  }
  const found = [];
  for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]]) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6 in this namespace
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) found.push(dialAddress(f[1], v6)); // 0A: LISTEN
    }
  }
  // The gRPC --listen port first, when it is a fixed one.
  const listenPort = flag('--listen')?.split(':').pop();
  return [...new Set(found)].sort((a, b) => Number(b.endsWith(`:${listenPort}`)) - Number(a.endsWith(`:${listenPort}`)));
}

let addresses;
try {
  addresses = listening();
} catch (error) {
  done(false, `healthcheck: cannot read process ${PID}'s sockets (${error.message}): the check runs as the server's user, in its PID namespace`);
}
if (addresses.length === 0) done(false, `healthcheck: evosearch ${command} listens on no TCP port yet (starting: a worker hashes its model first)`);

if (mode === 'grpc-health') {
  const tls = [];
  for (const name of ['--tls-ca', '--tls-cert', '--tls-key']) {
    const value = flag(name);
    if (value !== undefined) tls.push(name, value);
  }
  if (argv.includes('--insecure')) tls.push('--insecure');
  const failures = [];
  for (const address of addresses) {
    const result = spawnSync(process.execPath, [BIN, 'health', '--address', address, ...tls], { encoding: 'utf8', timeout: 4000 });
    if (result.status === 0) done(true, `healthcheck: evosearch ${command} at ${address} is SERVING (evosearch health)`);
    failures.push(`${address}: ${(result.stderr || result.stdout || result.error?.message || `exit ${result.status}`).trim().split('\n').pop()}`);
  }
  done(false, `healthcheck: evosearch ${command} does not answer SERVING on any port it listens on: ${failures.join('; ')}`);
}

const spoken = [];
for (const address of addresses) {
  let response;
  try {
    response = await fetch(`http://${address}/readyz`, { signal: AbortSignal.timeout(3000) });
  } catch {
    continue; // not HTTP: the gRPC port
  }
  const body = (await response.text()).trim().slice(0, 200);
  if (response.ok) done(true, `healthcheck: evosearch ${command} is ready (GET http://${address}/readyz: ${response.status} ${body})`);
  spoken.push(`GET http://${address}/readyz: ${response.status} ${body}`);
}
if (spoken.length > 0) done(false, `healthcheck: evosearch ${command} is not ready: ${spoken.join('; ')}`);
done(true, `healthcheck: evosearch ${command} listens on ${addresses.join(', ')} (no /readyz on any of them: started without --metrics-listen, so only its bound port is checked)`);
