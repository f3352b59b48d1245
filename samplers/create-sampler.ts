/**
 * The one way the rest of the system gets a sampler: validate the config (defaults filled as diffusers
 * fills them) and build the matching implementation. Throws SamplerConfigError for a bad config.
 */
import type { Sampler, SolverMemory } from './sampler.js';
import { resolveSamplerConfig, type SamplerConfig } from './sampler-config.js';
import { DdimSampler } from './ddim.js';
import { DdpmSampler } from './ddpm.js';
import { FlowEulerSampler } from './flow-euler.js';
import { FlowSdeDpmppSampler } from './flow-sde-dpmpp.js';

export function createSampler(config: SamplerConfig): Sampler {
  const resolved = resolveSamplerConfig(config);
  switch (resolved.kind) {
    case 'ddim':
      return new DdimSampler(resolved);
    case 'ddpm':
      return new DdpmSampler(resolved);
    case 'flow-euler':
      return new FlowEulerSampler(resolved);
    case 'flow-sde-dpmpp':
      return new FlowSdeDpmppSampler(resolved);
  }
}

/** A fresh per-trajectory memory: no previous step, so a multistep solver starts at first order. */
export function newSolverMemory(): SolverMemory {
  return { previousX0: null };
}
