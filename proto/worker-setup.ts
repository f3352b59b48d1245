import type { SamplerConfig } from '../samplers/index.js';

/** Everything a worker needs to serve a run: which model, which sampler, which seed. */
export interface WorkerSetup {
  /** Model spec: `analytic:gmm[?key=value&...]`, or an ONNX bundle folder (a path or `bundle:<path>`). */
  readonly model: string;
  readonly sampler: SamplerConfig;
  /** The run seed, as a decimal string so a 64-bit seed survives structured clone and JSON. */
  readonly seed: string;
  readonly batchSize: number;
  /**
   * Every model call runs exactly this many rows (worker/fixed-shape-model.ts); 'off': as the work
   * comes; absent: the worker's default for where its denoiser landed (`callRowsFor`).
   */
  readonly callRows?: number | 'off';
  /** Conditioning of text-to-image/video bundles (absent for the analytic model). */
  readonly prompt?: string;
  readonly negativePrompt?: string;
  readonly guidanceScale?: number;
  /** A rewards.json to score with instead of the bundle's own (absolute path; a gRPC worker takes only those under its model roots). */
  readonly rewards?: string;
  /** Execution providers to try, in order. */
  readonly providers?: readonly string[];
  /** Options of the CUDA provider, when it is in the list. */
  readonly cuda?: CudaProviderOptions;
  /** onnxruntime threads per session (default: one per core). */
  readonly intraOpThreads?: number;
  /** Score on these reward workers instead of here (a denoising-only worker), under this run id. */
  readonly rewardWorkers?: { readonly addresses: readonly string[]; readonly runId: string };
  /**
   * The run the workers' snapshots belong to: its id, the same across its resumes (a worker knows a run
   * by its session, new at each resume), so a resumed run finds the snapshots of the run it resumes. A
   * token (proto/snapshot-name.ts); absent: the session.
   */
  readonly snapshotScope?: string;
  /**
   * Every score also carries the guidance reward's image embedding of its sample (the run's selection
   * is fitness sharing). Absent or false: no embeddings, so default runs pay nothing for them.
   */
  readonly scoreEmbeddings?: boolean;
}

/**
 * Options of onnxruntime's CUDA execution provider, as configuration sets them; onnxruntime's own
 * default applies where one is absent. Only these two: onnxruntime-node 1.29's binding passes just the
 * device id to the provider, and TF32 is switched off through the CUDA libraries' environment. Its
 * other options (a memory limit, cuDNN's algorithm search) cannot reach the provider from here: a
 * 32 MiB gpu_mem_limit sent as an `ep.cuda.*` session entry did not stop a 64 MiB weight on an H200
 * (bench/reports/cuda-runtime; bench/cuda-options.ts is the probe to try them on a new binding).
 * worker/runtime/providers.ts turns them into the provider entry and the process environment.
 */
export interface CudaProviderOptions {
  /** The GPU, as an index among the GPUs this process sees (after CUDA_VISIBLE_DEVICES). Default 0. */
  readonly deviceId?: number;
  /** TF32 tensor-core math for float32 matrix products and convolutions (onnxruntime's default: on). */
  readonly tf32?: boolean;
}
