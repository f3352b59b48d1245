/**
 * Inference timesteps of the VP schedulers, as DDIMScheduler.set_timesteps and DDPMScheduler.set_timesteps
 * compute them (the two share this code in diffusers), with numpy's float64 and integer semantics:
 *
 *   linspace: np.linspace(0, T - 1, N).round()[::-1].astype(np.int64)
 *   leading:  (np.arange(0, N) * (T // N)).round()[::-1].astype(np.int64) + steps_offset
 *   trailing: np.round(np.arange(T, 0, -T / N)).astype(np.int64) - 1
 *
 * `steps_offset` only affects `leading`, as in diffusers.
 */
import { npArange, npLinspace, npRint } from './numpy-compat.js';

export const TIMESTEP_SPACINGS = ['leading', 'trailing', 'linspace'] as const;
export type TimestepSpacing = (typeof TIMESTEP_SPACINGS)[number];

/** Integer timesteps, highest first, exactly as diffusers lists them. Length is usually N (see trailing). */
export function vpTimesteps(spacing: TimestepSpacing, numTrainTimesteps: number, steps: number, stepsOffset: number): number[] {
  switch (spacing) {
    case 'linspace': {
      const grid = npLinspace(0, numTrainTimesteps - 1, steps);
      const out: number[] = [];
      for (let i = grid.length - 1; i >= 0; i--) out.push(npRint(grid[i]));
      return out;
    }
    case 'leading': {
      const ratio = Math.floor(numTrainTimesteps / steps);
      const out: number[] = [];
      for (let i = steps - 1; i >= 0; i--) out.push(i * ratio + stepsOffset);
      return out;
    }
    case 'trailing': {
      const ratio = numTrainTimesteps / steps;
      // np.arange's float length ceil(T / ratio) can exceed N when T / (T / N) rounds above N; the caller
      // checks the length, since diffusers would silently run N + 1 steps.
      return Array.from(npArange(numTrainTimesteps, 0, -ratio), (t) => npRint(t) - 1);
    }
  }
}
