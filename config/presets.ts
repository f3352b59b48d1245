import type { SamplerConfig } from '../samplers/index.js';

/**
 * The EvoSearch authors' defaults for the three model families of the paper (docs/algorithms.md,
 * parameter table; all with N = 50). A preset fixes the sampler, the schedules and the baselines'
 * settings; a config file or flags override any of it.
 */
export interface Preset {
  readonly name: PresetName;
  readonly description: string;
  readonly sampler: SamplerConfig;
  /** Classifier-free guidance scale of the model family (used by text-conditioned bundles). */
  readonly guidanceScale: number;
  readonly evosearch: {
    readonly evolutionSchedule: readonly number[];
    readonly populationSchedule: readonly number[];
    readonly elites: number;
    readonly mutationRate: number;
    readonly tournamentFraction: number;
  };
  /** FK steering's reference launch: lambda 10, 4 particles, resampling every 20 steps, potential max. */
  readonly particles: {
    readonly lambda: number;
    readonly potential: 'max';
    readonly interval: number;
  };
}

export const PRESET_NAMES = ['sd21', 'flux', 'wan'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

const particles = { lambda: 10, potential: 'max', interval: 20 } as const;

export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  sd21: {
    name: 'sd21',
    description: 'Stable Diffusion 2.1: DDIM eta=1, 50 steps, CFG 7.5; E=[0,20,30,40], K=[42,26,26,26,30], 5 elites (5000 NFEs)',
    sampler: {
      kind: 'ddim',
      steps: 50,
      eta: 1,
      num_train_timesteps: 1000,
      beta_start: 0.00085,
      beta_end: 0.012,
      beta_schedule: 'scaled_linear',
      prediction_type: 'epsilon',
      timestep_spacing: 'leading',
      steps_offset: 1,
      set_alpha_to_one: false,
      clip_sample: false,
    },
    guidanceScale: 7.5,
    evosearch: { evolutionSchedule: [0, 20, 30, 40], populationSchedule: [42, 26, 26, 26, 30], elites: 5, mutationRate: 0.2, tournamentFraction: 0.9 },
    particles,
  },
  flux: {
    name: 'flux',
    description: 'FLUX.1-dev: SDE DPM-Solver++ (flow), shift 1, 50 steps, guidance 7.5; E=[5,20,30,40], K=[14,7,7,7,10], 3 elites (29.3 trajectories)',
    sampler: { kind: 'flow-sde-dpmpp', steps: 50, shift: 1, num_train_timesteps: 1000 },
    guidanceScale: 7.5,
    evosearch: { evolutionSchedule: [5, 20, 30, 40], populationSchedule: [14, 7, 7, 7, 10], elites: 3, mutationRate: 0.2, tournamentFraction: 0.9 },
    particles,
  },
  wan: {
    name: 'wan',
    description: 'Wan2.1-1.3B: SDE DPM-Solver++ (flow), shift 5, 50 steps, CFG 5; E=[5,20,30,45], K=[10,5,5,5,5], 2 elites (20 trajectories)',
    sampler: { kind: 'flow-sde-dpmpp', steps: 50, shift: 5, num_train_timesteps: 1000 },
    guidanceScale: 5,
    evosearch: { evolutionSchedule: [5, 20, 30, 45], populationSchedule: [10, 5, 5, 5, 5], elites: 2, mutationRate: 0.2, tournamentFraction: 0.9 },
    particles,
  },
};
