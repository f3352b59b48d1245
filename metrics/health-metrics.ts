/** The process's health as two gauges, for dashboards and alerts on the same scrape as its counts. */
import { Gauge, type Registry } from 'prom-client';
import type { ProcessHealth } from './process-health.js';

export function healthMetrics(registry: Registry, health: ProcessHealth): void {
  new Gauge({
    name: 'evosearch_ready',
    help: 'Whether this process is ready to take work (1) or not (0): what /readyz and the gRPC health service say',
    registers: [registry],
    collect() {
      this.set(health.status().ready ? 1 : 0);
    },
  });
  new Gauge({
    name: 'evosearch_event_loop_stall_seconds',
    help: 'The longest the event loop was held up within the last 10 s (liveness fails past 5 s)',
    registers: [registry],
    collect() {
      this.set(health.liveness.lagMs / 1000);
    },
  });
}
