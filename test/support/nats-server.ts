/**
 * A NATS server with JetStream for the cluster tests, found this way: NATS_URL if set, else a
 * `nats-server` binary (PATH, or Debian's /usr/sbin) spawned on a random port with a temporary store.
 * Without either, the tests fail with a message saying how to get one.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection, Status } from '@nats-io/transport-node';

export interface NatsServer {
  readonly url: string;
  /** Kills the server (SIGKILL) and starts it again on the same port and store (fault tests). */
  restart(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

function findBinary(): string | null {
  const which = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim() !== '') return which.stdout.trim();
  return ['/usr/sbin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p)) ?? null;
}

export async function startNatsServer(): Promise<NatsServer> {
  if (process.env.NATS_URL) {
    return {
      url: process.env.NATS_URL,
      restart: async () => {
        throw new Error('cannot restart a NATS server given by NATS_URL');
      },
      stop: async () => undefined,
    };
  }
  const binary = findBinary();
  if (binary === null) {
    throw new Error('the cluster tests need a NATS server with JetStream: set NATS_URL, or install nats-server (Debian: apt-get install -y nats-server; .ci/run does)');
  }
  const store = mkdtempSync(join(tmpdir(), 'nats-js-'));
  let child: ChildProcess;
  const launch = (port: string) =>
    new Promise<string>((resolve, reject) => {
      child = spawn(binary, ['-js', '-sd', store, '-a', '127.0.0.1', '-p', port], { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      const timer = setTimeout(() => reject(new Error(`nats-server did not start within 10 s: ${log}`)), 10_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        const match = /Listening for client connections on ([\d.]+):(\d+)/.exec(log);
        if (match && /Server is ready/.test(log)) {
          clearTimeout(timer);
          resolve(`nats://${match[1]}:${match[2]}`);
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
