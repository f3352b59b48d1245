/**
 * A Prometheus counter that follows a running total kept elsewhere (a worker's NFE count, its busy
 * milliseconds): at each scrape it moves by what the total gained since the last one, so the code
 * that keeps the total does not have to know about metrics, and a value that grows mid-batch shows
 * mid-batch. A total never makes the counter go down.
 */
import { Counter, type Registry } from 'prom-client';

export function totalCounter(registry: Registry, name: string, help: string, total: () => number): Counter {
  let seen = 0;
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = total();
      if (now > seen) {
        this.inc(now - seen);
        seen = now;
      }
    },
  });
}
