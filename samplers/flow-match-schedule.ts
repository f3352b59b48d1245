/**
 * Sigmas and timesteps of diffusers' FlowMatchEulerDiscreteScheduler (__init__ then set_timesteps), with
 * float32 rounding where diffusers uses float32 tensors or arrays, so the lists match bit for bit.
 *
 * __init__:  sigmas = linspace(1, T, T)[::-1] / T  (float32), statically shifted in float32 unless
 *            use_dynamic_shifting; sigma_max = sigmas[0], sigma_min = sigmas[-1].
 * set_timesteps(N, mu) with sigmas=None ('default' input, used by SD3 and most pipelines):
 *            t = np.linspace(sigma_max*T, sigma_min*T, N) (float64), sigmas = t / T, then shifted in float64
 *            (static: shifted a second time, which is what diffusers does; or the dynamic time shift).
 * set_timesteps(sigmas=np.linspace(1, 1/N, N), mu) ('flux' input, what FluxPipeline passes):
 *            the given sigmas are cast to float32 and shifted in float32.
 * Then sigmas become float32, timesteps = sigmas * T in float32, and a final sigma 0 is appended.
 */
import { npLinspace } from './numpy-compat.js';
import { staticShift, staticShiftF32, timeShift, timeShiftF32, type TimeShiftType } from './flow-shift.js';

export const FLOW_SIGMA_SCHEDULES = ['default', 'flux'] as const;
/** Which sigmas the pipeline hands set_timesteps: none ('default') or FluxPipeline's linspace(1, 1/N, N). */
export type FlowSigmaSchedule = (typeof FLOW_SIGMA_SCHEDULES)[number];

export interface FlowMatchScheduleOptions {
  readonly numTrainTimesteps: number;
  readonly steps: number;
  readonly shift: number;
  /** The dynamic shift's mu, or null for the static shift. */
  readonly mu: number | null;
  readonly timeShiftType: TimeShiftType;
  readonly sigmaSchedule: FlowSigmaSchedule;
}

export interface FlowSchedule {
  /** N + 1 float32 sigmas, the last 0. */
  readonly sigmas: Float32Array;
  /** N timesteps (float32 values for flow-match Euler). */
  readonly timesteps: readonly number[];
}

const f32 = Math.fround;

export function flowMatchSchedule(o: FlowMatchScheduleOptions): FlowSchedule {
  const T = o.numTrainTimesteps;
  const N = o.steps;
  const dynamic = o.mu !== null;
  const sigmas = new Float32Array(N + 1);
  if (o.sigmaSchedule === 'default') {
    const initSigma = (k: number): number => {
      const s = f32(k / T);
      return dynamic ? s : staticShiftF32(o.shift, s);
    };
    const sigmaMax = initSigma(T);
    const sigmaMin = initSigma(1);
    const grid = npLinspace(sigmaMax * T, sigmaMin * T, N);
    for (let i = 0; i < N; i++) {
      const s = grid[i] / T;
      sigmas[i] = dynamic ? timeShift(o.timeShiftType, o.mu as number, s) : staticShift(o.shift, s);
    }
  } else {
    const grid = npLinspace(1, 1 / N, N);
    for (let i = 0; i < N; i++) {
      const s = f32(grid[i]);
      sigmas[i] = dynamic ? timeShiftF32(o.timeShiftType, o.mu as number, s) : staticShiftF32(o.shift, s);
    }
  }
  sigmas[N] = 0;
  const timesteps: number[] = [];
  for (let i = 0; i < N; i++) timesteps.push(f32(sigmas[i] * T));
  return { sigmas, timesteps };
}
