/** Public surface of the sampler math. */
export type { PredictionType, Sampler, SolverMemory, StepTime } from './sampler.js';
export { createSampler, newSolverMemory } from './create-sampler.js';
export {
  DDIM_DEFAULTS,
  DDPM_DEFAULTS,
  FLOW_EULER_DEFAULTS,
  FLOW_SDE_DPMPP_DEFAULTS,
  SAMPLER_KINDS,
  SDE_SOLVER_ORDERS,
  SDE_SOLVER_TYPES,
  VP_PREDICTION_TYPES,
  resolveSamplerConfig,
  type DdimSamplerConfig,
  type DdpmSamplerConfig,
  type FlowEulerSamplerConfig,
  type FlowSdeDpmppSamplerConfig,
  type ResolvedDdimConfig,
  type ResolvedDdpmConfig,
  type ResolvedFlowEulerConfig,
  type ResolvedFlowSdeDpmppConfig,
  type ResolvedSamplerConfig,
  type SamplerConfig,
  type SamplerKind,
  type VpPredictionType,
  type VpSamplerFields,
} from './sampler-config.js';
export { SamplerConfigError } from './sampler-config-error.js';
export { SamplerStepError } from './sampler-step-error.js';
export { DdimSampler } from './ddim.js';
export { DdpmSampler } from './ddpm.js';
export { FlowEulerSampler } from './flow-euler.js';
export { FlowSdeDpmppSampler } from './flow-sde-dpmpp.js';
export { BETA_SCHEDULES, alphasCumprod, makeBetas, type BetaSchedule } from './beta-schedule.js';
export { TIMESTEP_SPACINGS, vpTimesteps, type TimestepSpacing } from './timesteps.js';
export { TIME_SHIFT_TYPES, calculateShift, type TimeShiftType } from './flow-shift.js';
export { FLOW_SIGMA_SCHEDULES, flowMatchSchedule, type FlowSigmaSchedule } from './flow-match-schedule.js';
export { flowSdeSchedule } from './flow-sde-schedule.js';
