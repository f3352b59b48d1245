/**
 * A worker's metrics (`evosearch worker --metrics-listen`). The counts are the worker server's own
 * (worker/grpc-server.ts keeps them for its Health RPC too); they are read at each scrape.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { totalCounter } from './total-counter.js';
import type { WireMeter } from './wire-meter.js';

/** The worker server's running counts, since it started, all runs together. */
export interface WorkerCounts {
  /** Runs set up on it now. */
  readonly runs: number;
  readonly batchesInFlight: number;
  readonly batches: number;
  /** NFEs done; moves while a batch runs. */
  readonly nfe: number;
  /** Time batches ran on its threads, summed over batches running at once, ms. */
  readonly busyMs: number;
  /** Of that, time inside the model runtime's session.run, ms. */
  readonly modelMs: number;
}

export class WorkerMetrics {
  /** Every gRPC message of its server (coordinators' and other workers' calls, and its answers). */
  readonly wire: WireMeter;

  constructor(registry: Registry, counts: () => WorkerCounts) {
    const gauge = (name: string, help: string, value: (c: WorkerCounts) => number) =>
      new Gauge({ name, help, registers: [registry], collect() { this.set(value(counts())); } });
    gauge('evosearch_worker_runs', 'Runs set up on this worker now (each holds a model instance and a thread)', (c) => c.runs);
    gauge('evosearch_worker_batches_in_flight', 'Command batches running on this worker now', (c) => c.batchesInFlight);
    totalCounter(registry, 'evosearch_worker_batches_total', 'Command batches this worker finished', () => counts().batches);
    totalCounter(registry, 'evosearch_worker_nfe_total', 'Denoiser evaluations (NFEs) this worker did, all runs; rate() is NFE/s; moves while a batch runs', () => counts().nfe);
    totalCounter(registry, 'evosearch_worker_busy_seconds_total', 'Seconds command batches ran on this worker, summed over batches running at once; rate() is the busy share (above 1 with several runs at once)', () => counts().busyMs / 1000);
    totalCounter(registry, 'evosearch_worker_model_seconds_total', 'Of the busy seconds, those inside the model runtime (onnxruntime session.run)', () => counts().modelMs / 1000);
    const sent = new Counter({ name: 'evosearch_worker_wire_sent_bytes_total', help: 'Bytes of the gRPC messages this worker sent (serialized, before gRPC framing and TLS)', registers: [registry] });
    const received = new Counter({ name: 'evosearch_worker_wire_received_bytes_total', help: 'Bytes of the gRPC messages this worker received (serialized, before gRPC framing and TLS)', registers: [registry] });
    this.wire = { sent: (bytes) => sent.inc(bytes), received: (bytes) => received.inc(bytes) };
  }
}
