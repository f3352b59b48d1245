/**
 * An embedded run's own event log, `events.jsonl` in its folder: the events a coordinator keeps for the
 * runs it serves (coordinator/service/run-index.ts, the same file name and format: one RunEvent's
 * proto3 JSON a line), written by `evosearch run` and `resume` so that `evosearch view` can follow a run
 * another process is writing. One append per event (started, each round, workers, and how it ended),
 * synced, taken in order off the run's path: a round waits for none of them. A reader skips a torn
 * last line (the process died mid-append).
 */
import { join } from 'node:path';
import { TurnQueue } from '../../async/timeouts-and-turns.js';
import { appendFileDurable } from '../../files/durable-write.js';
import { runEventOf, runEventToJson, type RunEventKind, type RunEventPayloads } from '../../proto/coordinator-messages.js';
import { EVENTS_FILE } from '../service/run-index.js';

export class RunEventLog {
  private readonly turns = new TurnQueue();
  private failure: Error | null = null;

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
    void this.turns.run(() => (this.failure === null ? appendFileDurable(join(this.folder, EVENTS_FILE), line) : undefined)).catch((error: Error) => this.stop(error));
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
