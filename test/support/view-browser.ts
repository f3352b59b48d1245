/**
 * What the live view's tests need: Debian's Chromium through playwright-core (or why it is missing,
 * for the test to skip saying so), a coordinator process that serves the view, and `evosearch view`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { repoRoot } from './repo-root.js';

export const CHROMIUM = process.env.EVOSEARCH_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (Debian: apt-get install -y chromium; .ci/run does): the live view's browser tests need it`;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

export interface ServingProcess {
  readonly child: ChildProcess;
  /** Each JSON line it printed on stdout, by its `event`. */
  readonly lines: ReadonlyMap<string, Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * Starts `evosearch ...args` and resolves once it has printed a JSON line for each of `events` on
 * stdout (`listening`, `view`); its stderr goes to the test's.
 */
export async function startServing(args: readonly string[], events: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ServingProcess> {
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'evosearch.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'], env, cwd: repoRoot() });
  const lines = new Map<string, Record<string, unknown>>();
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`evosearch ${args[0]} exited with ${code} before it printed ${events.join(' and ')}`))));
  const seen = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const json = JSON.parse(line) as Record<string, unknown>;
        if (typeof json.event === 'string') lines.set(json.event, json);
      } catch {
        return;
      }
      if (events.every((e) => lines.has(e))) resolve();
    });
  });
  await Promise.race([seen, exited]);
  exited.catch(() => undefined);
  return {
    child,
    lines,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(timer);
    },
  };
}
