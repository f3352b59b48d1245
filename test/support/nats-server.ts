/**
 * A NATS server with JetStream for the cluster tests, found this way: NATS_URL if set, else a
 * `nats-server` binary (PATH, or Debian's /usr/sbin) spawned on a random port with a temporary store.
 * Without either, the tests fail with a message saying how to get one. A server with a configuration
 * (users, permissions, TLS: the security tests) is always spawned, NATS_URL or not.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection, Status } from '@nats-io/transport-node';

export interface NatsServer {
  readonly url: string;
  /** Kills the server (SIGKILL) and starts it again on the same port and store (fault tests). */
  restart(downMs: number): Promise<void>;
  /** Kills the server (SIGKILL), to be started again by `up` (a fault that lasts as long as the test needs). */
  down(): Promise<void>;
  /** Starts a server killed by `down` again, on the same port and store. */
  up(): Promise<void>;
  stop(): Promise<void>;
}

function findBinary(): string | null {
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim() !== '') return which.stdout.trim();
  return ['/usr/sbin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p)) ?? null;
}

export interface NatsServerOptions {
  /** A nats-server configuration file's text (its listen address and store are set on the command line). */
  readonly config?: string;
  /** Environment of the server: variables its configuration names (`$EVOSEARCH_WORKER_PASSWORD`). */
  readonly env?: Readonly<Record<string, string>>;
  /** The scheme of the URL given back: `tls` for a server that requires TLS. */
  readonly scheme?: 'nats' | 'tls';
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  if (process.env.NATS_URL && options.config === undefined) {
    return {
      url: process.env.NATS_URL,
      restart: async () => {
        throw new Error('cannot restart a NATS server given by NATS_URL');
      },
      down: async () => {
        throw new Error('cannot stop a NATS server given by NATS_URL');
      },
      up: async () => {
        throw new Error('cannot start a NATS server given by NATS_URL');
      },
      stop: async () => undefined,
    };
  }
  const binary = findBinary();
  if (binary === null) {
    throw new Error('the cluster tests need a NATS server with JetStream: set NATS_URL, or install nats-server (Debian: apt-get install -y nats-server; .ci/run does)');
  }
  const store = mkdtempSync(join(tmpdir(), 'nats-js-'));
  const configArgs: string[] = [];
  if (options.config !== undefined) {
    writeFileSync(join(store, 'server.conf'), options.config);
    configArgs.push('-c', join(store, 'server.conf'));
  }
  let child: ChildProcess;
  const launch = (port: string) =>
    new Promise<string>((resolve, reject) => {
      child = spawn(binary, [...configArgs, '-js', '-sd', store, '-a', '127.0.0.1', '-p', port], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...options.env } });
      let log = '';
      const timer = setTimeout(() => reject(new Error(`nats-server did not start within 10 s: ${log}`)), 10_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        const match = /Listening for client connections on ([\d.]+):(\d+)/.exec(log);
        if (match && /Server is ready/.test(log)) {
          clearTimeout(timer);
          resolve(`${options.scheme ?? 'nats'}://${match[1]}:${match[2]}`);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}: ${log}`));
      });
    });
  const url = await launch('-1');
  const kill = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(signal);
      await exited;
    }
  };
  return {
    url,
    restart: async (downMs: number) => {
      await kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await launch(new URL(url).port);
    },
    down: () => kill('SIGKILL'),
    up: async () => {
      await launch(new URL(url).port);
    },
    stop: async () => {
      await kill('SIGTERM');
      rmSync(store, { recursive: true, force: true });
    },
  };
}

/**
 * Resolves at `nc`'s next status event of `type` ('disconnect': the client has seen the server go;
 * 'reconnect': it is connected again). Call it before whatever causes the event: events before the
 * call are not seen. Rejects if the connection closes first.
 */
export function nextStatus(nc: NatsConnection, type: Status['type']): Promise<void> {
  const statuses = nc.status();
  return (async () => {
    for await (const status of statuses) if (status.type === type) return;
    throw new Error(`the NATS connection closed before its ${type} status`);
  })();
}

/** A NATS message as the tests look at it: its subject and its JSON. */
export interface RecordedMessage {
  readonly subject: string;
  readonly data: Record<string, unknown>;
}

/** Every message on `subject` (wildcards allowed) from now on, appended to the array returned as it comes. */
export function recordMessages(nc: NatsConnection, subject: string): RecordedMessage[] {
  const messages: RecordedMessage[] = [];
  const sub = nc.subscribe(subject);
  void (async () => {
    for await (const m of sub) messages.push({ subject: m.subject, data: m.json<Record<string, unknown>>() });
  })();
  return messages;
}
