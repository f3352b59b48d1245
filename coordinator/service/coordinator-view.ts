/**
 * The coordinator's live view (`--view-listen`): view/'s server over the runs this coordinator serves.
 * What a caller sees is decided as for the gRPC API (coordinator-server.ts's mayUse: a client its own
 * runs, an admin all, this machine's loopback token all); events are the runs' own (the Watch stream's,
 * every one so far and then live); cancel is the coordinator's cancel path (a running run stops between
 * rounds); a download is the Files call's set of files, once the run has finished; thumbnails come from
 * each run's journal (coordinator/checkpoint/journal-thumbnails.ts), so a run nobody watches keeps none.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RunPlan } from '../../config/run-plan.js';
import { LAST_EVENT_KINDS, type TypedRunEvent } from '../../proto/coordinator-messages.js';
import type { RunState } from '../../proto/coordinator-service.js';
import type { TransportSecurity } from '../../proto/transport-security.js';
import type { PeerIdentity } from '../../security/peer-roles.js';
import { identityOf, type Principal } from '../../view/principal.js';
import { isUuid } from '../../view/request-route.js';
import type { Cancellable, Following, RunListing, RunSource, ViewableRun } from '../../view/run-source.js';
import { TokenBook } from '../../view/token-file.js';
import { ViewServer } from '../../view/view-server.js';
import { JournalThumbnails } from '../checkpoint/journal-thumbnails.js';
import { servableRunFiles } from './run-files.js';

/** A served run as the view reads it (the coordinator's own run objects have these fields). */
export interface ServedRunState {
  readonly id: string;
  readonly plan: RunPlan;
  readonly folder: string;
  readonly submittedAt: string;
  readonly state: RunState;
  readonly best: number | null;
  readonly owner: string | null;
  readonly events: readonly TypedRunEvent[];
  readonly listeners: Set<(event: TypedRunEvent) => void>;
}

/** What the coordinator lends its view: its runs, its authorization rule, its cancel path. */
export interface ServedRuns {
  all(): Iterable<ServedRunState>;
  get(runId: string): ServedRunState | undefined;
  mayUse(run: ServedRunState, caller: PeerIdentity | null): boolean;
  /** Cancels as the gRPC Cancel does; the run's state after asking. */
  cancel(run: ServedRunState): string;
  /** Files of the folder that are the service's own, not the run's (never sent). */
  skipFile(name: string): boolean;
}

export interface CoordinatorViewOptions {
  /** host:port of the view (loopback unless another host is given). */
  readonly listen: string;
  /** The tokens file for browsers without a certificate (`evosearch token` makes it). */
  readonly tokens?: string;
}

const TERMINAL = new Set<string>(['finished', 'failed', 'cancelled', 'interrupted']);
/** Runs whose journal index and latest decoded rounds the view keeps (the latest looked at; each at most 64 MiB). */
const THUMBNAIL_RUNS = 8;

export interface CoordinatorView {
  readonly server: ViewServer;
  /** The page's address; under plaintext it carries this process's loopback token in its fragment. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startCoordinatorView(options: CoordinatorViewOptions, runs: ServedRuns, transport: TransportSecurity, logger: Logger): Promise<CoordinatorView> {
  const tokens = options.tokens === undefined ? undefined : new TokenBook(options.tokens, (message) => logger.warn(message));
  // Plaintext (loopback, --insecure): this machine's users, as plaintext gRPC; a fresh token keeps other
  // sites a browser visits from reading or cancelling runs through it.
  const localToken = transport.kind === 'plaintext-loopback' ? `evs_${randomBytes(32).toString('base64url')}` : undefined;
  const server = await ViewServer.start({
    listen: options.listen,
    source: new CoordinatorRunSource(runs),
    tls: transport.kind === 'mtls' ? transport.identity : null,
    credentials: { ...(tokens !== undefined ? { tokens } : {}), ...(localToken !== undefined ? { localToken } : {}) },
    logger,
  });
  return { server, url: localToken === undefined ? server.url : `${server.url}#token=${localToken}`, close: () => server.close() };
}

export class CoordinatorRunSource implements RunSource {
  readonly title = 'EvoSearch coordinator';
  private readonly journals = new Map<string, JournalThumbnails>();

  constructor(private readonly runs: ServedRuns) {}

  isRunId(runId: string): boolean {
    return isUuid(runId);
  }

  list(caller: Principal): RunListing[] {
    const who = identityOf(caller);
    return [...this.runs.all()].filter((run) => this.runs.mayUse(run, who)).map(listingOf);
  }

  find(runId: string, caller: Principal): ViewableRun | undefined {
    const run = this.runs.get(runId);
    if (run === undefined || !this.runs.mayUse(run, identityOf(caller))) return undefined;
    const runs = this.runs;
    const journal = () => this.journalOf(run);
    return {
      listing: () => listingOf(run),
      cancellable: (): Cancellable => (TERMINAL.has(run.state) ? { possible: false, why: `run ${run.id} is ${run.state}` } : { possible: true }),
      follow: (onEvent) => follow(run, onEvent),
      cancel: async () => runs.cancel(run),
      files: () => (run.state === 'finished' ? { files: servableRunFiles(run.folder, (name) => runs.skipFile(name)) } : { refused: `run ${run.id} is ${run.state}; its files come when it has finished` }),
      // A round's journal line follows its event by a moment (it is written while the next round runs).
      thumbnail: (round, candidate) => journal().get(round, candidate, round < runRounds(run) ? 5000 : 0),
    };
  }

  private journalOf(run: ServedRunState): JournalThumbnails {
    let journal = this.journals.get(run.id);
    if (journal === undefined) journal = new JournalThumbnails(run.folder);
    this.journals.delete(run.id);
    this.journals.set(run.id, journal);
    while (this.journals.size > THUMBNAIL_RUNS) this.journals.delete(this.journals.keys().next().value!);
    return journal;
  }
}

/** Rounds the run has reported (a round's thumbnails are worth waiting for only once it has). */
function runRounds(run: ServedRunState): number {
  for (let i = run.events.length - 1; i >= 0; i--) {
    const event = run.events[i]!;
    if (event.event === 'round') return event.payload.round + 1;
  }
  return 0;
}

function listingOf(run: ServedRunState): RunListing {
  return { runId: run.id, state: run.state, model: run.plan.model, method: run.plan.method, prompt: run.plan.prompt ?? null, submittedAt: run.submittedAt, best: run.best };
}

/** The run's events so far, then live ones until its last (the coordinator tells its listeners as it records each). */
function follow(run: ServedRunState, onEvent: (event: TypedRunEvent) => void): Following {
  const past = [...run.events];
  if (TERMINAL.has(run.state)) return { past, ended: true, stop: () => undefined };
  const listener = (event: TypedRunEvent) => {
    if (LAST_EVENT_KINDS.has(event.event)) run.listeners.delete(listener);
    onEvent(event);
  };
  run.listeners.add(listener);
  return { past, ended: false, stop: () => run.listeners.delete(listener) };
}
