/**
 * Sigmas and timesteps of the EvoSearch authors' FlowDPMSolverMultistepScheduler (EvoSearch-codes
 * FLUX/fm_solvers.py, after Wan2.1's wan/utils/fm_solvers.py) as their pipelines drive it:
 *
 *   s = np.linspace(1, 0, N + 1)[:N]                     (get_sampling_sigmas, float64)
 *   s = shift * s / (1 + (shift - 1) * s)                 (float64)
 *   timesteps = (s * T).astype(int64)                     (truncation: 0.68 * 1000 gives 679)
 *   sigmas = float32(concat(s, [0]))                      (final_sigmas_type 'zero')
 *
 * The shift is applied once overall (the pipeline shifts and set_timesteps is called with shift 1, or the
 * other way round; shift 1 is the identity in float64), which is what the reference vectors show.
 */
import { npLinspace, npTruncToInt } from './numpy-compat.js';
import { staticShift } from './flow-shift.js';
import type { FlowSchedule } from './flow-match-schedule.js';

export function flowSdeSchedule(numTrainTimesteps: number, steps: number, shift: number): FlowSchedule {
  const grid = npLinspace(1, 0, steps + 1);
  const sigmas = new Float32Array(steps + 1);
  const timesteps: number[] = [];
  for (let i = 0; i < steps; i++) {
    const s = staticShift(shift, grid[i]);
    sigmas[i] = s;
    timesteps.push(npTruncToInt(s * numTrainTimesteps));
  }
  sigmas[steps] = 0;
  return { sigmas, timesteps };
}
