/**
 * The sigma shifts of flow-matching schedulers (diffusers FlowMatchEulerDiscreteScheduler and the EvoSearch
 * FlowDPMSolverMultistepScheduler). A shift > 1 spends more of the steps at high noise, which large
 * rectified-flow models (SD3, FLUX, Wan) were trained to expect.
 */
import { addF32, divF32, mulF32, subF32 } from './float32.js';

export const TIME_SHIFT_TYPES = ['exponential', 'linear'] as const;
export type TimeShiftType = (typeof TIME_SHIFT_TYPES)[number];

/** Static shift in float64 (numpy float64 arrays): shift * s / (1 + (shift - 1) * s). */
export function staticShift(shift: number, s: number): number {
  return (shift * s) / (1 + (shift - 1) * s);
}

/**
 * The same static shift evaluated with float32 tensors or arrays, where each Python scalar is first cast
 * to float32 (torch's CPU scalar ops and numpy's weak-scalar promotion both do) and every operation rounds.
 */
export function staticShiftF32(shift: number, s: number): number {
  return divF32(mulF32(shift, s), addF32(1, mulF32(shift - 1, s)));
}

/**
 * Dynamic (resolution-dependent) shift, FlowMatchEulerDiscreteScheduler.time_shift with sigma = 1.0:
 * exponential: e^mu / (e^mu + (1/t - 1)),  linear: mu / (mu + (1/t - 1)). float64.
 */
export function timeShift(type: TimeShiftType, mu: number, t: number): number {
  const m = type === 'exponential' ? Math.exp(mu) : mu;
  return m / (m + (1 / t - 1));
}

/** The dynamic shift applied to a float32 numpy array (FluxPipeline passes float32 sigmas). */
export function timeShiftF32(type: TimeShiftType, mu: number, t: number): number {
  const m = type === 'exponential' ? Math.exp(mu) : mu;
  return divF32(m, addF32(m, subF32(divF32(1, t), 1)));
}

/**
 * diffusers' `calculate_shift` (pipeline_flux.py): mu grows linearly with the image token count from
 * base_shift at base_seq_len to max_shift at max_seq_len.
 */
export function calculateShift(imageSeqLen: number, baseSeqLen: number, maxSeqLen: number, baseShift: number, maxShift: number): number {
  const m = (maxShift - baseShift) / (maxSeqLen - baseSeqLen);
  const b = baseShift - m * baseSeqLen;
  return imageSeqLen * m + b;
}
