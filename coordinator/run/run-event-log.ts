/**
 * An embedded run's own event log, `events.jsonl` in its folder: the events a coordinator keeps for the
 * runs it serves (coordinator/service/run-index.ts, the same file name and format: one RunEvent's
 * proto3 JSON a line), written by `evosearch run` and `resume` so that `evosearch view` can follow a run
 * another process is writing. One append per event (started, each round, workers, and how it ended),
 * synced, taken in order off the run's path: a round waits for none of them. A reader skips a torn
 * last line (the process died mid-append).
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { TurnQueue } from '../../async/timeouts-and-turns.js';
import { appendFileDurable } from '../../files/durable-write.js';
import { runEventOf, runEventToJson, type RunEventKind, type RunEventPayloads } from '../../proto/coordinator-messages.js';
import { EVENTS_FILE } from '../service/run-index.js';

export class RunEventLog {
  private readonly turns = new TurnQueue();
  private failure: Error | null = null;
  /** Whether the log's end was looked at: a line torn by a process killed mid-append is ended first. */
  private checkedEnd = false;

  constructor(readonly folder: string, private readonly runId: string, private readonly warn: (message: string) => void) {}

  /** Queues one event; a write that fails is warned about once and the log stops (the run goes on). */
  append<K extends RunEventKind>(kind: K, payload: RunEventPayloads[K]): void {
    if (this.failure !== null) return;
    let line: string;
    try {
      line = `${JSON.stringify(runEventToJson(runEventOf(kind, payload, this.runId, new Date().toISOString())))}\n`;
    } catch (error) {
      this.stop(error as Error);
      return;
    }
    void this.turns
      .run(async () => {
        if (this.failure !== null) return;
        const file = join(this.folder, EVENTS_FILE);
        const text = this.checkedEnd || (await endsMidLine(file)) === false ? line : `\n${line}`;
        this.checkedEnd = true;
        await appendFileDurable(file, text);
      })
      .catch((error: Error) => this.stop(error));
  }

  /** Resolves once every event queued so far is written (or the log has stopped). */
  flushed(): Promise<void> {
    return this.turns.run(() => undefined);
  }

  private stop(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    this.warn(`${EVENTS_FILE} not written from here on (evosearch view cannot follow this run): ${error.message}`);
  }
}

/** Whether `file` ends inside a line (its last byte is not a newline); false for an empty or missing file. */
async function endsMidLine(file: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return false;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return false;
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    return last[0] !== 10;
  } finally {
    await handle.close();
  }
}
