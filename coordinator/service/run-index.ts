/**
 * A coordinator's durable index of the runs it serves, kept in each run's folder under --runs-dir, so a
 * restarted coordinator knows them again (List, Watch, Files, Resume):
 *
 *   <runsDir>/<runId>/served.json    the run as the service sees it: id, plan, when submitted, state, best
 *   <runsDir>/<runId>/events.jsonl   every event sent to watchers, one line each: the proto3 JSON of its
 *                                    RunEvent (proto/coordinator.proto), as NATS carries it too
 *
 * served.json is replaced durably (files/durable-write.ts) on every change of state; events are appended
 * as they happen. A run found `queued` or `running` when the index is read was cut off by a coordinator
 * that did not stop cleanly (kill -9, a crash, a lost machine): it is read back as `interrupted`, as is a
 * run its coordinator stopped. Either is resumable from its checkpoint by id.
 */
import { existsSync } from 'node:fs';
import { appendFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunPlan } from '../../config/resolve-run-config.js';
import { writeFileDurable } from '../../files/durable-write.js';
import type { RunState } from '../../proto/coordinator-service.js';
import { runEventFromJson, runEventOf, runEventToJson, type TypedRunEvent } from '../../proto/coordinator-messages.js';

export const SERVED_FILE = 'served.json';
export const EVENTS_FILE = 'events.jsonl';
/** Raise when served.json's meaning changes; an entry of another version is skipped with a warning. */
const SERVED_VERSION = 1;

export interface ServedRun {
  readonly runId: string;
  readonly plan: RunPlan;
  readonly submittedAt: string;
  readonly state: RunState;
  readonly best: number | null;
  /**
   * The name on the certificate of the client that submitted it (mTLS), who alone (and admins) may
   * see it; null when it came over plaintext on loopback (this machine's users: everyone).
   */
  readonly owner: string | null;
}

interface ServedFile extends ServedRun {
  readonly version: number;
}

/** Writes the run's entry (its state changed). */
export async function saveServedRun(folder: string, run: ServedRun): Promise<void> {
  const entry: ServedFile = { version: SERVED_VERSION, runId: run.runId, plan: run.plan, submittedAt: run.submittedAt, state: run.state, best: run.best, owner: run.owner };
  await writeFileDurable(join(folder, SERVED_FILE), `${JSON.stringify(entry)}\n`);
}

/** Appends one event to the run's event log. */
export async function appendServedEvent(folder: string, event: TypedRunEvent): Promise<void> {
  await appendFile(join(folder, EVENTS_FILE), `${JSON.stringify(runEventToJson(event))}\n`);
}

export interface LoadedRun extends ServedRun {
  readonly folder: string;
  readonly events: TypedRunEvent[];
  /** Lines of the event log that are not an event, each with why (they are left out of `events`). */
  readonly eventProblems: readonly string[];
  /** The index said queued or running: its coordinator ended without stopping it. */
  readonly cutOff: boolean;
}

/**
 * Every run the index under `runsDir` holds, oldest first. A folder without served.json is not a served
 * run (skipped quietly); one whose entry cannot be read is skipped and reported through `onSkip`.
 */
export async function loadServedRuns(runsDir: string, onSkip: (folder: string, why: string) => void): Promise<LoadedRun[]> {
  if (!existsSync(runsDir)) return [];
  const runs: LoadedRun[] = [];
  for (const entry of await readdir(runsDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const folder = join(runsDir, entry.name);
    if (!existsSync(join(folder, SERVED_FILE))) continue;
    let served: ServedFile;
    try {
      served = JSON.parse(await readFile(join(folder, SERVED_FILE), 'utf8')) as ServedFile;
    } catch (error) {
      onSkip(folder, `${SERVED_FILE} is not readable JSON (${(error as Error).message})`);
      continue;
    }
    if (served.version !== SERVED_VERSION) {
      onSkip(folder, `${SERVED_FILE} has version ${String(served.version)}, this coordinator reads version ${SERVED_VERSION}`);
      continue;
    }
    if (served.runId !== entry.name) {
      onSkip(folder, `${SERVED_FILE} names run ${served.runId}, but the folder is ${entry.name}`);
      continue;
    }
    const cutOff = served.state === 'queued' || served.state === 'running';
    // An entry of a release before ownership has no owner: a run of this machine's users.
    runs.push({ ...served, owner: typeof served.owner === 'string' ? served.owner : null, state: cutOff ? 'interrupted' : served.state, cutOff, folder, ...(await readEvents(folder)) });
  }
  return runs.sort((a, b) => a.submittedAt.localeCompare(b.submittedAt));
}

/**
 * The event log, without a torn last line (the coordinator died while appending it). A line that is
 * JSON but not an event is left out, with why; the lines of the previous release
 * (`{"event": kind, "payloadJson": "{...}"}`) are read as the events they were.
 */
async function readEvents(folder: string): Promise<{ events: TypedRunEvent[]; eventProblems: string[] }> {
  const events: TypedRunEvent[] = [];
  const eventProblems: string[] = [];
  let text: string;
  try {
    text = await readFile(join(folder, EVENTS_FILE), 'utf8');
  } catch {
    return { events, eventProblems };
  }
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      break;
    }
    try {
      events.push(isFirstReleaseLine(json) ? firstReleaseEvent(json) : runEventFromJson(json));
    } catch (error) {
      eventProblems.push(`${EVENTS_FILE} line ${i + 1}: ${(error as Error).message}`);
    }
  }
  return { events, eventProblems };
}

interface FirstReleaseLine {
  readonly event: string;
  readonly payloadJson: string;
}

const isFirstReleaseLine = (json: unknown): json is FirstReleaseLine => typeof json === 'object' && json !== null && typeof (json as FirstReleaseLine).event === 'string' && typeof (json as FirstReleaseLine).payloadJson === 'string';

/** A line of the previous release: its payload held the run's id and the time next to the event's fields. */
function firstReleaseEvent(line: FirstReleaseLine): TypedRunEvent {
  const { runId, at, ...payload } = JSON.parse(line.payloadJson) as Record<string, unknown>;
  return runEventOf(line.event, payload, String(runId), String(at));
}
