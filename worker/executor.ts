import {
  addCounters,
  zeroCounters,
  type AdvanceCommand,
  type CandidateId,
  type Command,
  type CommandResult,
  type ComputeCounters,
  type FetchedSample,
  type MutateCommand,
  type RecoverCommand,
  type RolloutCommand,
  type ScoredId,
} from '../proto/commands.js';
import type { NoiseAddress, NoisePurpose } from '../random/noise-address.js';
import { NoiseSource } from '../random/noise-source.js';
import type { Sampler } from '../samplers/sampler.js';
import type { GenerativeModel } from './models/generator.js';
import { LocalRewardScorer, type RewardScorer } from './reward-scorer.js';
import { coalescingModel } from './coalescing-model.js';
import { NoisePrefetch, type NoiseDraw } from './noise-prefetch.js';
import { StateStore, type TrajectoryState } from './state-store.js';
import { NO_SNAPSHOTS, type Snapshots } from './snapshot-folder.js';
import { thumbnail } from './thumbnail.js';
import { EvoSearchError, type ErrorCode } from '../errors/evosearch-error.js';

/** Executors are dropped rather than closed: a dropped one's helper thread stops when it is collected. */
const helpers = new FinalizationRegistry<{ prefetch: NoisePrefetch | null }>((helper) => void helper.prefetch?.close());

/** Scored samples to hand back as thumbnails (outputs for the report). */
interface ThumbnailRequest {
  readonly side: number;
  readonly into: FetchedSample[];
}

/** A latent or a reward went NaN or infinite: reported with where, never absorbed. */
export class NonFiniteValueError extends EvoSearchError {
  readonly code: ErrorCode = 'model';
  override readonly name = 'NonFiniteValueError';
  constructor(readonly what: string, readonly id: CandidateId, readonly step: number) {
    super(`${what} of candidate ${id} at step ${step} is not finite (NaN or Inf); the model or its inputs are broken`);
  }
}

export interface ExecutorOptions {
  /** Told the latents of every denoiser call as it is counted (progress only; see WorkerPool.execute). */
  readonly onCount?: (latents: number) => void;
  /** Latents per model call. The plan, not the placement, fixes results: batch size never changes them. */
  readonly batchSize: number;
  /** Who scores decoded samples (default: the model's own rewards, here). */
  readonly scorer?: RewardScorer;
  /**
   * With the default scorer: every score carries the guidance reward's embedding of its sample
   * (WorkerSetup.scoreEmbeddings; fitness sharing needs it). Default off: it costs a pass of the
   * reward's image tower per batch.
   */
  readonly scoreEmbeddings?: boolean;
  /**
   * Draw sampler noise on a helper thread while the model runs (default off). It pays where the
   * model runs elsewhere (a GPU) and this thread only waits in session.run; on the CPU provider the
   * helper competes with onnxruntime's own threads. Results are the same either way.
   */
  readonly noiseAhead?: boolean;
  /**
   * Where snapshot commands write and read, by name: the host's choice (worker/snapshot-folder.ts).
   * Without it every snapshot and restore fails, saying so.
   */
  readonly snapshots?: Snapshots;
}

/**
 * Executes commands against the states this worker holds: the model runtime's side of the command
 * vocabulary in proto/commands.ts. It owns no policy: it does what the coordinator says, counts the
 * compute it spends, and draws every random number from its address.
 */
export class CommandExecutor {
  readonly store = new StateStore();
  private readonly noise: NoiseSource;
  private readonly scorer: RewardScorer;
  private readonly latentSize: number;
  /** The noiseAhead helper, started at its first use and shared with this executor's scratch executors. */
  private helper: { prefetch: NoisePrefetch | null } = { prefetch: null };

  constructor(
    private readonly model: GenerativeModel,
    private readonly sampler: Sampler,
    private readonly seed: number | bigint,
    private readonly options: ExecutorOptions,
  ) {
    this.noise = new NoiseSource(seed);
    this.latentSize = model.denoiser.latentSize;
    this.scorer = options.scorer ?? new LocalRewardScorer(model.rewards, options.scoreEmbeddings === true);
    if (options.noiseAhead === true) helpers.register(this, this.helper);
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
  }

  async execute(command: Command): Promise<CommandResult> {
    const counters = zeroCounters();
    switch (command.kind) {
      case 'init':
        await this.normalsFor(command.ids.map((id) => ({ purpose: 'init', lineage: id, step: 0 })), (k, normals) => {
          this.store.put(command.ids[k]!, { latent: normals.slice(), step: 0, memory: { previousX0: null }, cachedOutput: null });
        });
        return result('init', counters);
      case 'advance':
        return await this.advance(command, counters);
      case 'rollout':
        return await this.rollout(command, counters);
      case 'mutate':
        await this.mutate(command);
        return result('mutate', counters);
      case 'copy':
        for (const { from, to } of command.items) this.store.put(to, StateStore.clone(this.store.get(from, 'copy')));
        return result('copy', counters);
      case 'drop':
        for (const id of command.ids) this.store.drop(id);
        return result('drop', counters);
      case 'fetch':
        return await this.fetch(command.ids, counters);
      case 'export':
        return {
          kind: 'export',
          scores: [],
          samples: [],
          counters,
          states: command.ids.map((id) => {
            const state = StateStore.clone(this.store.get(id, 'export'));
            return { id, step: state.step, latent: state.latent, previousX0: state.memory.previousX0, cachedOutput: state.cachedOutput };
          }),
        };
      case 'recover':
        return await this.recover(command, counters);
      case 'score': {
        const rows = await this.scorer.score(command.samples, command.count);
        counters.rewardCalls += command.count;
        return { kind: 'score', scores: rows.map((row, id) => ({ id, ...row })), samples: [], counters };
      }
      case 'import':
        for (const { as, state } of command.states) {
          if (state.latent.length !== this.latentSize) throw new RangeError(`import: state ${state.id} has ${state.latent.length} floats, this worker's model takes ${this.latentSize}`);
          // Structured clone may hand over views at any offset: copy into fresh, aligned arrays.
          this.store.put(as, StateStore.clone({ latent: state.latent, step: state.step, memory: { previousX0: state.previousX0 }, cachedOutput: state.cachedOutput }));
        }
        return result('import', counters);
      case 'snapshot': {
        const snapshots = this.options.snapshots ?? NO_SNAPSHOTS;
        const written = snapshots.write(command.name, [...this.store.entries()].sort(([a], [b]) => a - b));
        if (command.dropName !== undefined) snapshots.remove(command.dropName);
        return { ...result('snapshot', counters), snapshot: written };
      }
      case 'restore': {
        // Every state is checked before any is kept: a refused restore leaves this worker as it was.
        const states = (this.options.snapshots ?? NO_SNAPSHOTS).read(command.name, command.sha256, command.ids);
        for (const [id, state] of states) {
          if (state.latent.length !== this.latentSize) throw new RangeError(`restore: state ${id} in snapshot '${command.name}' has ${state.latent.length} floats, this worker's model takes ${this.latentSize}`);
          if (this.store.has(id)) throw new Error(`restore: state ${id} exists here already; a restore must not overwrite this worker's own states`);
        }
        for (const [id, state] of states) this.store.put(id, state);
        return result('restore', counters);
      }
    }
  }

  /** Stops the noise helper thread, if one was started; draws made after run on this thread. */
  async close(): Promise<void> {
    await this.helper.prefetch?.close();
  }

  /** An executor of the same model, sampler and seed with no states: recovery works in one. */
  private scratch(model = this.model): CommandExecutor {
    const executor = new CommandExecutor(model, this.sampler, this.seed, this.options);
    // Recovery makes an executor per recipe branch: they share one helper thread.
    executor.helper = this.helper;
    return executor;
  }

  private prefetch(): NoisePrefetch | null {
    if (this.options.noiseAhead !== true) return null;
    return (this.helper.prefetch ??= new NoisePrefetch(this.seed));
  }

  /**
   * Calls use(k, normals) with the normals of addresses[k], in order; `normals` is valid during the
   * call only. With the helper, each batch is drawn by both threads at once, the next one asked for
   * before this one is used.
   */
  private async normalsFor(addresses: readonly NoiseAddress[], use: (k: number, normals: Float32Array) => void): Promise<void> {
    const prefetch = this.prefetch();
    if (prefetch === null) {
      const normals = new Float32Array(this.latentSize);
      addresses.forEach((address, k) => use(k, this.noise.normals(address, normals)));
      return;
    }
    const batch = this.options.batchSize;
    const ask = (start: number) => (start < addresses.length ? prefetch.request(addresses.slice(start, start + batch), this.latentSize) : null);
    let next = ask(0);
    for (let start = 0; next !== null; start += batch) {
      const draw = next;
      next = ask(start + batch);
      (await draw).forEach((normals, i) => use(start + i, normals));
      draw.release();
    }
  }

  private async recover(command: RecoverCommand, counters: ComputeCounters): Promise<CommandResult> {
    const work = this.scratch();
    await this.rebuild(command.rebuild, work, counters);
    const results: CommandResult[] = [];
    for (const piece of command.piece) results.push(await work.execute(piece));
    for (const [id, state] of work.store.entries()) {
      if (this.store.has(id)) throw new Error(`recover: state ${id} exists here already; a recovery must not overwrite this worker's own states`);
      this.store.put(id, state);
    }
    return { kind: 'recover', scores: [], samples: [], counters, results };
  }

  /**
   * Remakes states from their recipes into `into`. Recipes of relatives share their ancestors'
   * commands, so they are merged into a tree and each shared prefix runs once: the walk forks a copy
   * of the path's states where recipes part. Each path only touches its own lineage's ids, so a fork
   * computes exactly what running that recipe alone would. All paths walk at once over a model that
   * merges their one-state calls into batches, so a rebuild costs about what the original rounds did.
   */
  private async rebuild(items: RecoverCommand['rebuild'], into: CommandExecutor, counters: ComputeCounters): Promise<void> {
    interface Node {
      readonly command: Command | null;
      readonly children: Map<string, Node>;
      readonly targets: CandidateId[];
    }
    const root: Node = { command: null, children: new Map(), targets: [] };
    for (const { id, recipe } of items) {
      let node = root;
      for (const step of recipe) {
        const key = JSON.stringify(step);
        let child = node.children.get(key);
        if (child === undefined) node.children.set(key, (child = { command: step, children: new Map(), targets: [] }));
        node = child;
      }
      node.targets.push(id);
    }
    const walk = async (node: Node, path: CommandExecutor): Promise<void> => {
      if (node.command !== null) addCounters(counters, (await path.execute(node.command)).counters);
      for (const id of node.targets) into.store.put(id, StateStore.clone(path.store.get(id, 'recover')));
      const children = [...node.children.values()];
      // The last child may use the path itself; the others get a copy of it, taken before any child runs.
      const paths = children.map((_, i) => (i === children.length - 1 ? path : path.fork()));
      await Promise.all(children.map((child, i) => walk(child, paths[i]!)));
    };
    await walk(root, this.scratch(coalescingModel(this.model, this.options.batchSize)));
  }

  /** A scratch executor holding copies of this one's states. */
  private fork(): CommandExecutor {
    const copy = this.scratch();
    for (const [id, state] of this.store.entries()) copy.store.put(id, StateStore.clone(state));
    return copy;
  }

  private async advance(command: AdvanceCommand, counters: ComputeCounters): Promise<CommandResult> {
    const states = command.ids.map((id) => this.store.get(id, 'advance'));
    states.forEach((state, i) => {
      if (state.step !== command.from) throw new Error(`advance: candidate ${command.ids[i]} is at step ${state.step}, the command says ${command.from}`);
    });
    await this.run(states, command.ids, command.purpose, command.from, command.to, counters);
    if (!command.score) return result('advance', counters);
    const thumbs: FetchedSample[] | undefined = command.thumbnails !== undefined ? [] : undefined;
    const request = thumbs && { side: command.thumbnails!, into: thumbs };
    const scores = command.to === this.sampler.steps
      ? await this.score(states.map((s) => s.latent), command.ids, command.to, counters, request)
      : await this.scoreX0Prediction(states, command.ids, command.to, counters, request);
    return { kind: 'advance', scores, samples: thumbs ?? [], counters };
  }

  private async rollout(command: RolloutCommand, counters: ComputeCounters): Promise<CommandResult> {
    const finals: Float32Array[] = [];
    // Items that start at the same step advance together, in batches.
    const byStart = new Map<number, number[]>();
    command.items.forEach((item, i) => {
      const group = byStart.get(item.from) ?? [];
      group.push(i);
      byStart.set(item.from, group);
    });
    for (const [from, indices] of byStart) {
      const items = indices.map((i) => command.items[i]!);
      const copies = items.map((item) => {
        const source = this.store.get(item.source, 'rollout');
        if (source.step !== from) throw new Error(`rollout: candidate ${item.source} is at step ${source.step}, the command says ${from}`);
        return StateStore.clone(source);
      });
      const lineages = items.map((item) => item.finalId);
      const keepAt = (step: number) => items.forEach((item, k) => {
        for (const kept of item.archive) if (kept.step === step) this.store.put(kept.id, StateStore.clone(copies[k]!));
      });
      await this.run(copies, lineages, 'rollout', from, this.sampler.steps, counters, keepAt);
      items.forEach((item, k) => {
        this.store.put(item.finalId, copies[k]!);
        finals[indices[k]!] = copies[k]!.latent;
      });
    }
    const thumbs: FetchedSample[] | undefined = command.thumbnails !== undefined ? [] : undefined;
    const scores = await this.score(finals, command.items.map((item) => item.source), this.sampler.steps, counters, thumbs && { side: command.thumbnails!, into: thumbs });
    return { kind: 'rollout', scores, samples: thumbs ?? [], counters };
  }

  private async mutate(command: MutateCommand): Promise<void> {
    const { items } = command;
    await this.normalsFor(items.map((item) => ({ purpose: 'mutate', lineage: item.child, step: command.step })), (k, eps) => {
      const item = items[k]!;
      const parent = this.store.get(item.parent, 'mutate');
      if (parent.step !== command.step) throw new Error(`mutate: parent ${item.parent} is at step ${parent.step}, the command says ${command.step}`);
      const child = StateStore.clone(parent);
      child.cachedOutput = null;
      const x = child.latent;
      if (item.op === 'xT') {
        const keep = Math.sqrt(1 - item.beta * item.beta);
        for (let i = 0; i < x.length; i++) x[i] = keep * x[i]! + item.beta * eps[i]!;
      } else {
        for (let i = 0; i < x.length; i++) x[i] = x[i]! + item.sigma * eps[i]!;
      }
      this.store.put(item.child, child);
    });
  }

  private async fetch(ids: readonly CandidateId[], counters: ComputeCounters): Promise<CommandResult> {
    const { decoder } = this.model;
    const samples: FetchedSample[] = [];
    const out = new Float32Array(decoder.sampleSize);
    for (const id of ids) {
      await decoder.decode(this.store.get(id, 'fetch').latent, 1, out);
      counters.decodes += 1;
      samples.push({ id, data: out.slice(), shape: decoder.sampleShape });
    }
    return { kind: 'fetch', scores: [], samples, counters };
  }

  /**
   * Steps `states` from `from` to `to` in batches. `lineages[i]` addresses the sampler noise of
   * states[i]; `afterStep(s)` runs once all states are at index s.
   */
  private async run(
    states: TrajectoryState[],
    lineages: readonly number[],
    purpose: NoisePurpose,
    from: number,
    to: number,
    counters: ComputeCounters,
    afterStep?: (step: number) => void,
  ): Promise<void> {
    const size = this.latentSize;
    const batchSize = this.options.batchSize;
    const inputs = new Float32Array(size * batchSize);
    const outputs = new Float32Array(size * batchSize);
    const noise = new Float32Array(size);
    const ahead = this.chunkNoise(states.length, lineages, purpose, from, to);
    for (let step = from; step < to; step++) {
      const time = this.sampler.time(step);
      const stochastic = this.sampler.isStochastic(step);
      for (let start = 0; start < states.length; start += batchSize) {
        // Asked for before the model call, so that the helper draws it while the model runs.
        ahead?.askUpTo(stochastic ? 2 : 1);
        const chunk = states.slice(start, start + batchSize);
        // States that already paid for this step's model output (a one-step x0 score) reuse it.
        const needing = chunk.filter((s) => s.cachedOutput === null);
        needing.forEach((s, k) => inputs.set(s.latent, k * size));
        if (needing.length > 0) {
          await this.model.denoiser.predict(inputs, needing.length, time, outputs);
          this.count(counters, needing.length);
        }
        const draw = stochastic && ahead !== null ? ahead.take() : null;
        const drawn = draw !== null ? await draw : null;
        let next = 0;
        chunk.forEach((state, c) => {
          const lineage = lineages[start + c]!;
          let modelOutput = state.cachedOutput;
          if (modelOutput === null) {
            modelOutput = outputs.subarray(next * size, (next + 1) * size);
            next += 1;
          }
          assertFinite(modelOutput, 'model output', lineage, step);
          const eps = !stochastic ? null : drawn !== null ? drawn[c]! : this.noise.normals({ purpose, lineage, step }, noise);
          this.sampler.step(step, state.latent, modelOutput, eps, state.latent, state.memory);
          state.cachedOutput = null;
          state.step = step + 1;
        });
        draw?.release();
      }
      afterStep?.(step + 1);
    }
  }

  /**
   * The sampler noise of run()'s chunks, drawn ahead on the helper thread (null without one). The
   * chunks that need noise are known before any model call: noise never depends on model output.
   */
  private chunkNoise(count: number, lineages: readonly number[], purpose: NoisePurpose, from: number, to: number): { askUpTo(depth: number): void; take(): NoiseDraw } | null {
    const prefetch = this.prefetch();
    if (prefetch === null) return null;
    const batchSize = this.options.batchSize;
    const chunks: NoiseAddress[][] = [];
    for (let step = from; step < to; step++) {
      if (!this.sampler.isStochastic(step)) continue;
      for (let start = 0; start < count; start += batchSize) chunks.push(lineages.slice(start, start + batchSize).map((lineage) => ({ purpose, lineage, step })));
    }
    const asked: NoiseDraw[] = [];
    let next = 0;
    return {
      /** Keeps the draws of the next `depth` chunks that need noise asked for. */
      askUpTo: (depth) => {
        while (asked.length < depth && next < chunks.length) asked.push(prefetch.request(chunks[next++]!, this.latentSize));
      },
      take: () => asked.shift()!,
    };
  }

  /** One-step x0 prediction at `step`; the model output is kept for the next advance. */
  private async scoreX0Prediction(states: TrajectoryState[], ids: readonly CandidateId[], step: number, counters: ComputeCounters, thumbnails?: ThumbnailRequest): Promise<ScoredId[]> {
    const size = this.latentSize;
    const time = this.sampler.time(step);
    const predictions: Float32Array[] = [];
    for (let start = 0; start < states.length; start += this.options.batchSize) {
      const chunk = states.slice(start, start + this.options.batchSize);
      const inputs = new Float32Array(size * chunk.length);
      chunk.forEach((s, k) => inputs.set(s.latent, k * size));
      const outputs = new Float32Array(size * chunk.length);
      await this.model.denoiser.predict(inputs, chunk.length, time, outputs);
      this.count(counters, chunk.length);
      chunk.forEach((state, k) => {
        state.cachedOutput = outputs.slice(k * size, (k + 1) * size);
        const x0 = new Float32Array(size);
        this.sampler.predictX0(step, state.latent, state.cachedOutput, x0);
        predictions.push(x0);
      });
    }
    return await this.score(predictions, ids, step, counters, thumbnails);
  }

  /** Decodes and scores latents in batches; the first reward is the guidance reward. */
  private async score(latents: readonly Float32Array[], ids: readonly CandidateId[], step: number, counters: ComputeCounters, thumbnails?: ThumbnailRequest): Promise<ScoredId[]> {
    const { decoder } = this.model;
    const batchSize = this.options.batchSize;
    const scores: ScoredId[] = [];
    const samples = new Float32Array(decoder.sampleSize * batchSize);
    for (let start = 0; start < latents.length; start += batchSize) {
      const n = Math.min(batchSize, latents.length - start);
      const inputs = new Float32Array(this.latentSize * n);
      for (let k = 0; k < n; k++) {
        assertFinite(latents[start + k]!, 'latent', ids[start + k]!, step);
        inputs.set(latents[start + k]!, k * this.latentSize);
      }
      await decoder.decode(inputs, n, samples);
      counters.decodes += n;
      if (thumbnails !== undefined) {
        for (let k = 0; k < n; k++) {
          const sample = samples.subarray(k * decoder.sampleSize, (k + 1) * decoder.sampleSize);
          thumbnails.into.push({ id: ids[start + k]!, ...thumbnail(sample, decoder.sampleShape, thumbnails.side) });
        }
      }
      const rows = await this.scorer.score(n === batchSize ? samples : samples.subarray(0, n * decoder.sampleSize), n);
      counters.rewardCalls += n;
      for (let k = 0; k < n; k++) {
        const id = ids[start + k]!;
        const row = rows[k]!;
        if (!Number.isFinite(row.reward)) throw new NonFiniteValueError(`reward '${this.scorer.guidanceName}'`, id, step);
        scores.push({ id, reward: row.reward, ...(row.metrics !== undefined ? { metrics: row.metrics } : {}), ...(row.embedding !== undefined ? { embedding: row.embedding } : {}) });
      }
    }
    return scores;
  }

  private count(counters: ComputeCounters, latents: number): void {
    counters.nfe += latents;
    counters.forwardPasses += latents * this.model.denoiser.forwardPassesPerNfe;
    this.options.onCount?.(latents);
  }
}

function result(kind: Command['kind'], counters: ComputeCounters, scores: ScoredId[] = []): CommandResult {
  return { kind, scores, samples: [], counters };
}

function assertFinite(values: Float32Array, what: string, id: CandidateId, step: number): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) throw new NonFiniteValueError(what, id, step);
  }
}
