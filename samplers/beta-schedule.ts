/**
 * Training noise schedules of the VP (DDPM-family) schedulers: betas and alphas_cumprod exactly as
 * diffusers' DDIMScheduler/DDPMScheduler.__init__ compute them with float32 torch tensors.
 *
 *   linear:        betas = torch.linspace(beta_start, beta_end, T, dtype=float32)
 *   scaled_linear: betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=float32) ** 2
 *   alphas = 1.0 - betas;  alphas_cumprod = torch.cumprod(alphas, dim=0)
 *
 * The float32 rounding is reproduced, not approximated: alphas_cumprod matches the reference vectors
 * bit for bit (test/samplers.reference.test.ts), so any difference in a step is the step's own arithmetic.
 */
import { fmaF32 } from './float32.js';

export const BETA_SCHEDULES = ['linear', 'scaled_linear'] as const;
export type BetaSchedule = (typeof BETA_SCHEDULES)[number];

const f32 = Math.fround;

/**
 * torch.linspace(start, end, steps, dtype=torch.float32) on CPU (aten/src/ATen/native/cpu/
 * RangeFactoriesKernel.cpp, linspace_kernel): start and end are cast to float32, step = (end - start) /
 * (steps - 1) in float32, the first half is start + step*i and the second half end - step*(steps-1-i),
 * each a fused multiply-add in float32 (the kernel is compiled with FMA contraction; plain
 * multiply-then-add disagrees with diffusers' alphas_cumprod in the last bit at some timesteps).
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? fmaF32(step, i, s) : fmaF32(-step, steps - i - 1, e);
  }
  return out;
}

/** diffusers' `betas` for the given schedule (float32). */
export function makeBetas(schedule: BetaSchedule, numTrainTimesteps: number, betaStart: number, betaEnd: number): Float32Array {
  switch (schedule) {
    case 'linear':
      return torchLinspaceF32(betaStart, betaEnd, numTrainTimesteps);
    case 'scaled_linear': {
      // beta_start**0.5 is a Python float (float64) before torch casts it to float32.
      const roots = torchLinspaceF32(Math.sqrt(betaStart), Math.sqrt(betaEnd), numTrainTimesteps);
      for (let i = 0; i < roots.length; i++) roots[i] = f32(roots[i] * roots[i]);
      return roots;
    }
  }
}

/**
 * alphas_cumprod = cumprod(1 - betas). `1 - beta` is a float32 subtraction; torch's CPU cumprod
 * accumulates in double (at::acc_type<float, false>) and stores each partial product as float32.
 */
export function alphasCumprod(betas: Float32Array): Float32Array {
  const out = new Float32Array(betas.length);
  let product = 1;
  for (let i = 0; i < betas.length; i++) {
    product *= f32(1 - betas[i]);
    out[i] = product;
  }
  return out;
}
