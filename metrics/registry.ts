/**
 * A server's own metrics registry, never prom-client's global one: two servers in one process (the
 * tests, an embedded run) each keep their own counts, and nothing another library registers globally
 * shows up. It carries prom-client's default process metrics (CPU, memory, event loop lag, GC,
 * handles), under their usual names (process_*, nodejs_*), so the usual dashboards read them.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export type { Registry } from 'prom-client';

export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}
