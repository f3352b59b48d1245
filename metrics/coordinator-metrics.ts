/**
 * A coordinator's metrics (`evosearch coordinator --metrics-listen`): its runs by state, its queue,
 * what the runs spend and move, and how many workers its runs could use (for an autoscaler). Labels
 * carry only fixed words (a state, a kind of peer): never a run id, a prompt or a client's name.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RunMeter } from './run-meter.js';
import type { WireMeter } from './wire-meter.js';

/** The states a served run can be in (proto/coordinator.proto RunSummary.state). */
export const RUN_STATES = ['queued', 'running', 'finished', 'failed', 'cancelled', 'interrupted'] as const;
export type RunStateName = (typeof RUN_STATES)[number];

/** What the coordinator knows now, read at each scrape. */
export interface CoordinatorCounts {
  readonly runsByState: Readonly<Record<RunStateName, number>>;
  /** Runs accepted and waiting for a slot (coordinator/service/admission.ts). */
  readonly queueDepth: number;
  /** coordinator/service/workers-wanted.ts. */
  readonly workersWanted: number;
}

/** Seconds: a tiny bundle's round writes in milliseconds, a large run's in seconds. */
const CHECKPOINT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class CoordinatorMetrics {
  /** The coordinator service's own traffic with its clients. */
  readonly clientWire: WireMeter;
  /** Told by every run this coordinator serves (they share the counters). */
  readonly runs: RunMeter;

  constructor(registry: Registry, counts: () => CoordinatorCounts) {
    new Gauge({
      name: 'evosearch_coordinator_runs',
      help: 'Runs this coordinator knows (its runs dir included), by state',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const now = counts().runsByState;
        for (const state of RUN_STATES) this.set({ state }, now[state]);
      },
    });
    new Gauge({ name: 'evosearch_coordinator_queue_depth', help: 'Runs accepted and waiting for a slot (--max-running)', registers: [registry], collect() { this.set(counts().queueDepth); } });
    new Gauge({
      name: 'evosearch_coordinator_workers_wanted',
      help: 'Workers the queued and running runs could keep busy: per run, its largest round\'s states divided by the rows one worker runs per model call (rounded up), summed',
      registers: [registry],
      collect() {
        this.set(counts().workersWanted);
      },
    });
    const nfe = new Counter({ name: 'evosearch_coordinator_nfe_total', help: 'Denoiser evaluations (NFEs) the rounds of this coordinator\'s runs spent; rate() is NFE/s', registers: [registry] });
    const sent = new Counter({ name: 'evosearch_coordinator_wire_sent_bytes_total', help: 'Bytes of the gRPC messages this coordinator sent (serialized, before gRPC framing and TLS), by peer', labelNames: ['peer'], registers: [registry] });
    const received = new Counter({ name: 'evosearch_coordinator_wire_received_bytes_total', help: 'Bytes of the gRPC messages this coordinator received (serialized, before gRPC framing and TLS), by peer', labelNames: ['peer'], registers: [registry] });
    const checkpoint = new Histogram({ name: 'evosearch_coordinator_checkpoint_write_seconds', help: 'Time to write one round\'s checkpoint (journal line and manifest, synced)', buckets: CHECKPOINT_BUCKETS, registers: [registry] });
    const joined = new Counter({ name: 'evosearch_coordinator_workers_joined_total', help: 'Workers that joined a run while it ran (each run counts its own)', registers: [registry] });
    const lost = new Counter({ name: 'evosearch_coordinator_workers_lost_total', help: 'Workers a run lost while it ran (their states were rebuilt on the others)', registers: [registry] });
    const rebuilt = new Counter({ name: 'evosearch_coordinator_rebuilt_states_total', help: 'States rebuilt from their recipes: a lost worker\'s, or a resumed run\'s that no snapshot gave back', registers: [registry] });
    const rebuiltNfe = new Counter({ name: 'evosearch_coordinator_rebuilt_nfe_total', help: 'NFEs the rebuilt states took (not in evosearch_coordinator_nfe_total)', registers: [registry] });
    // Zero from the start, so rate() and alerts see the series before the first byte.
    for (const peer of ['workers', 'clients']) {
      sent.inc({ peer }, 0);
      received.inc({ peer }, 0);
    }
    this.clientWire = { sent: (bytes) => sent.inc({ peer: 'clients' }, bytes), received: (bytes) => received.inc({ peer: 'clients' }, bytes) };
    this.runs = {
      workerWire: { sent: (bytes) => sent.inc({ peer: 'workers' }, bytes), received: (bytes) => received.inc({ peer: 'workers' }, bytes) },
      nfeSpent: (n) => nfe.inc(n),
      checkpointWritten: (seconds) => checkpoint.observe(seconds),
      workersJoined: (n) => joined.inc(n),
      workersLost: (n) => lost.inc(n),
      statesRebuilt: (states, n) => {
        rebuilt.inc(states);
        rebuiltNfe.inc(n);
      },
    };
  }
}
