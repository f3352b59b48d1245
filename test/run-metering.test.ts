/**
 * A run's running totals become the deltas its process's counters add (coordinator/run/run-metering.ts):
 * each change is reported once, a resumed run's replayed NFEs never, and totals that do not move add
 * nothing. The counters are a real CoordinatorMetrics on its own registry.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RunMetering } from '../coordinator/run/run-metering.js';
import { noPlacementYet } from '../coordinator/engine/dispatch/placement-stats.js';
import { CoordinatorMetrics, RUN_STATES } from '../metrics/coordinator-metrics.js';
import { processRegistry } from '../metrics/registry.js';

async function values(registry: ReturnType<typeof processRegistry>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const metric of await registry.getMetricsAsJSON()) {
    if (!metric.name.startsWith('evosearch_coordinator_')) continue;
    for (const value of metric.values) out[`${(value as { metricName?: string }).metricName ?? metric.name}${Object.keys(value.labels).length > 0 ? JSON.stringify(value.labels) : ''}`] = value.value;
  }
  return out;
}

describe('a run\'s metering', () => {
  it('reports each change once, as a delta, and not the rounds a resume replays', async () => {
    const registry = processRegistry();
    const metrics = new CoordinatorMetrics(registry, () => ({ runsByState: Object.fromEntries(RUN_STATES.map((s) => [s, 0])) as never, queueDepth: 0, workersWanted: 0 }));
    const placement = noPlacementYet();
    const metering = new RunMetering(metrics.runs, 2, 1000);
    metering.report({ nfe: 1000, placement, workers: 2 });
    let now = await values(registry);
    assert.deepEqual([now.evosearch_coordinator_nfe_total, now.evosearch_coordinator_workers_joined_total], [0, 0], 'the replayed rounds were counted by the attempt that ran them');
    metering.report({ nfe: 1600, placement, workers: 3 });
    placement.lostWorkers = 1;
    placement.rebuiltStates = 12;
    placement.rebuildCounters.nfe = 240;
    metering.report({ nfe: 2000, placement, workers: 3 });
    metering.report({ nfe: 2000, placement, workers: 3 });
    now = await values(registry);
    assert.deepEqual(
      [now.evosearch_coordinator_nfe_total, now.evosearch_coordinator_workers_joined_total, now.evosearch_coordinator_workers_lost_total, now.evosearch_coordinator_rebuilt_states_total, now.evosearch_coordinator_rebuilt_nfe_total],
      [1000, 1, 1, 12, 240],
    );
    metrics.runs.checkpointWritten(0.004);
    metrics.runs.workerWire.sent(100);
    metrics.clientWire.received(7);
    now = await values(registry);
    assert.equal(now.evosearch_coordinator_checkpoint_write_seconds_count, 1);
    assert.equal(now['evosearch_coordinator_wire_sent_bytes_total{"peer":"workers"}'], 100);
    assert.equal(now['evosearch_coordinator_wire_received_bytes_total{"peer":"clients"}'], 7);
    assert.equal(now['evosearch_coordinator_wire_sent_bytes_total{"peer":"clients"}'], 0, 'every series is there from the start');
  });
});
