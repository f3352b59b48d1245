/**
 * Commands and results (proto/commands.ts) as the messages of proto/worker.proto, and back. Tensors
 * leave the messages on the way out (each becomes a TensorRef: its index in the frame's tensor table)
 * and come back by index on the way in. What arrives is checked here, at the boundary, before any of it
 * reaches a worker or the search: a missing part, an unknown enum value or command kind, a tensor that
 * is not there or has the wrong length is a WireError naming the field.
 */
import type { CandidateId, Command, CommandResult, ComputeCounters, FetchedSample, MutationItem, ScoredId, SnapshotFile, TransferredState } from './commands.js';
import { snapshotTokenProblem } from './snapshot-name.js';
import { workerEnum } from './worker-proto.js';
import { WireError, wireList as list, wireRecord as record, type Wire } from './wire-error.js';

const NOISE_PURPOSE = workerEnum('NoisePurpose');
const COMMAND_KIND = workerEnum('CommandKind');

/** Command kinds whose wire name differs from the TypeScript one (`import` and `export` are reserved words in several languages). */
const WIRE_NAME: Partial<Record<Command['kind'], string>> = { export: 'exportStates', import: 'importStates' };
const KIND_OF_WIRE_NAME: Readonly<Record<string, Command['kind']>> = { exportStates: 'export', importStates: 'import' };

const kindValue = (kind: Command['kind']) => COMMAND_KIND[`COMMAND_KIND_${kind.toUpperCase()}`]!;
const kindOfValue = new Map(Object.entries(COMMAND_KIND).map(([name, value]) => [value, name.slice('COMMAND_KIND_'.length).toLowerCase() as Command['kind']]));

// ---- out: TypeScript -> messages -------------------------------------------------------------------

/** The tensors of one frame stream, in the order their TensorRefs name them. */
export class TensorTable {
  readonly tensors: Float32Array[] = [];

  ref(tensor: Float32Array): { index: number } {
    this.tensors.push(tensor);
    return { index: this.tensors.length - 1 };
  }
}

export function commandsToWire(commands: readonly Command[], table: TensorTable): Wire {
  return { commands: commands.map((c) => commandToWire(c, table)) };
}

export function resultsToWire(results: readonly CommandResult[], table: TensorTable): Wire {
  return { results: results.map((r) => resultToWire(r, table)) };
}

function commandToWire(command: Command, table: TensorTable): Wire {
  return { [WIRE_NAME[command.kind] ?? command.kind]: commandBody(command, table) };
}

function commandBody(c: Command, table: TensorTable): Wire {
  switch (c.kind) {
    case 'init':
    case 'drop':
    case 'fetch':
    case 'export':
      return { ids: c.ids };
    case 'advance':
      return { ids: c.ids, from: c.from, to: c.to, purpose: NOISE_PURPOSE[`NOISE_PURPOSE_${c.purpose.toUpperCase()}`], score: c.score ?? false, ...(c.thumbnails !== undefined ? { thumbnails: c.thumbnails } : {}) };
    case 'rollout':
      return { items: c.items.map((i) => ({ source: i.source, from: i.from, archive: i.archive, finalId: i.finalId })), ...(c.thumbnails !== undefined ? { thumbnails: c.thumbnails } : {}) };
    case 'mutate':
      return { step: c.step, items: c.items.map((i) => ({ parent: i.parent, child: i.child, ...(i.op === 'xT' ? { xTBeta: i.beta } : { sdeSigma: i.sigma }) })) };
    case 'copy':
      return { items: c.items };
    case 'import':
      return { states: c.states.map((s) => ({ asId: s.as, state: stateToWire(s.state, table) })) };
    case 'recover':
      return { rebuild: c.rebuild.map((r) => ({ id: r.id, recipe: r.recipe.map((x) => commandToWire(x, table)) })), piece: c.piece.map((x) => commandToWire(x, table)) };
    case 'score':
      return { samples: table.ref(c.samples), count: c.count };
    case 'snapshot':
      return { name: c.name, ...(c.dropName !== undefined ? { dropName: c.dropName } : {}) };
    case 'restore':
      return { name: c.name, sha256: c.sha256, ids: c.ids };
  }
}

function stateToWire(s: TransferredState, table: TensorTable): Wire {
  return { id: s.id, step: s.step, latent: table.ref(s.latent), previousX0: s.previousX0 === null ? null : table.ref(s.previousX0), cachedOutput: s.cachedOutput === null ? null : table.ref(s.cachedOutput) };
}

function resultToWire(r: CommandResult, table: TensorTable): Wire {
  return {
    kind: kindValue(r.kind),
    scores: r.scores.map((s) => ({ id: s.id, reward: s.reward, metrics: s.metrics ?? {}, embedding: s.embedding === undefined ? null : table.ref(s.embedding) })),
    samples: r.samples.map((s) => ({ id: s.id, data: table.ref(s.data), shape: s.shape })),
    counters: r.counters,
    states: (r.states ?? []).map((s) => stateToWire(s, table)),
    results: (r.results ?? []).map((x) => resultToWire(x, table)),
    snapshot: r.snapshot ?? null,
  };
}

// ---- in: messages -> TypeScript, checked ----------------------------------------------------------

export function commandsFromWire(batch: Wire, tensors: readonly Float32Array[]): Command[] {
  return list(batch.commands, 'commands').map((c, i) => commandFromWire(c, `commands[${i}]`, tensors));
}

export function resultsFromWire(batch: Wire, tensors: readonly Float32Array[]): CommandResult[] {
  return list(batch.results, 'results').map((r, i) => resultFromWire(r, `results[${i}]`, tensors));
}

function commandFromWire(c: unknown, at: string, tensors: readonly Float32Array[]): Command {
  const message = record(c, at);
  const member = message.kind;
  if (typeof member !== 'string') throw new WireError(at, 'a command of a kind this side does not know (a peer of a newer release?): refused, since skipping it would change the answer');
  const kind = KIND_OF_WIRE_NAME[member] ?? (member as Command['kind']);
  const body = record(message[member], `${at}.${member}`);
  const field = (name: string) => `${at}.${member}.${name}`;
  const ids = () => list(body.ids, field('ids')) as CandidateId[];
  switch (kind) {
    case 'init':
    case 'drop':
    case 'fetch':
    case 'export':
      return { kind, ids: ids() };
    case 'advance': {
      const purpose = enumName(NOISE_PURPOSE, body.purpose, 'NOISE_PURPOSE_', field('purpose')) as 'advance' | 'rollout';
      const from = body.from as number;
      const to = body.to as number;
      if (!(from < to)) throw new WireError(field('to'), `must be past from (${from}), got ${to}`);
      return { kind, ids: ids(), from, to, purpose, ...(body.score === true ? { score: true } : {}), ...(body.thumbnails !== undefined ? { thumbnails: body.thumbnails as number } : {}) };
    }
    case 'rollout':
      return {
        kind,
        items: list(body.items, field('items')).map((x, i) => {
          const item = record(x, `${field('items')}[${i}]`);
          return { source: item.source as number, from: item.from as number, archive: list(item.archive, `${field('items')}[${i}].archive`).map((a, j) => pick(record(a, `${field('items')}[${i}].archive[${j}]`), 'step', 'id') as { step: number; id: number }), finalId: item.finalId as number };
        }),
        ...(body.thumbnails !== undefined ? { thumbnails: body.thumbnails as number } : {}),
      };
    case 'mutate':
      return {
        kind,
        step: body.step as number,
        items: list(body.items, field('items')).map((x, i): MutationItem => {
          const item = record(x, `${field('items')}[${i}]`);
          const parent = item.parent as number;
          const child = item.child as number;
          if (item.op === 'xTBeta') return { parent, child, op: 'xT', beta: item.xTBeta as number };
          if (item.op === 'sdeSigma') return { parent, child, op: 'sde', sigma: item.sdeSigma as number };
          throw new WireError(`${field('items')}[${i}]`, 'names no mutation (x_t_beta or sde_sigma)');
        }),
      };
    case 'copy':
      return { kind, items: list(body.items, field('items')).map((x, i) => pick(record(x, `${field('items')}[${i}]`), 'from', 'to') as { from: number; to: number }) };
    case 'import':
      return {
        kind,
        states: list(body.states, field('states')).map((x, i) => {
          const item = record(x, `${field('states')}[${i}]`);
          return { as: item.asId as number, state: stateFromWire(item.state, `${field('states')}[${i}].state`, tensors) };
        }),
      };
    case 'recover':
      return {
        kind,
        rebuild: list(body.rebuild, field('rebuild')).map((x, i) => {
          const item = record(x, `${field('rebuild')}[${i}]`);
          return { id: item.id as number, recipe: list(item.recipe, `${field('rebuild')}[${i}].recipe`).map((r, j) => commandFromWire(r, `${field('rebuild')}[${i}].recipe[${j}]`, tensors)) };
        }),
        piece: list(body.piece, field('piece')).map((r, j) => commandFromWire(r, `${field('piece')}[${j}]`, tensors)),
      };
    case 'score': {
      const samples = tensor(body.samples, field('samples'), tensors);
      const count = body.count as number;
      if (count < 1 || samples.length % count !== 0) throw new WireError(field('count'), `${count} samples cannot share ${samples.length} floats`);
      return { kind, samples, count };
    }
    case 'snapshot':
      return { kind, name: snapshotName(body.name, field('name')), ...(body.dropName !== undefined ? { dropName: snapshotName(body.dropName, field('drop_name')) } : {}) };
    case 'restore':
      return { kind, name: snapshotName(body.name, field('name')), sha256: body.sha256 as string, ids: ids() };
    default:
      throw new WireError(at, `unknown command ${member}`);
  }
}

function stateFromWire(s: unknown, at: string, tensors: readonly Float32Array[]): TransferredState {
  const state = record(s, at);
  const latent = tensor(state.latent, `${at}.latent`, tensors);
  const optional = (name: string) => (state[name] === null || state[name] === undefined ? null : tensor(state[name], `${at}.${name}`, tensors));
  return { id: state.id as number, step: state.step as number, latent, previousX0: optional('previousX0'), cachedOutput: optional('cachedOutput') };
}

function resultFromWire(r: unknown, at: string, tensors: readonly Float32Array[]): CommandResult {
  const result = record(r, at);
  const kind = kindOfValue.get(result.kind as number);
  if (kind === undefined || result.kind === 0) throw new WireError(`${at}.kind`, `not a command kind this side knows (${String(result.kind)})`);
  const scores = list(result.scores, `${at}.scores`).map((x, i): ScoredId => {
    const score = record(x, `${at}.scores[${i}]`);
    const metrics = record(score.metrics ?? {}, `${at}.scores[${i}].metrics`) as Record<string, number>;
    const embedding = score.embedding === null || score.embedding === undefined ? undefined : tensor(score.embedding, `${at}.scores[${i}].embedding`, tensors);
    return { id: score.id as number, reward: score.reward as number, ...(Object.keys(metrics).length > 0 ? { metrics } : {}), ...(embedding !== undefined ? { embedding } : {}) };
  });
  const samples = list(result.samples, `${at}.samples`).map((x, i): FetchedSample => {
    const sample = record(x, `${at}.samples[${i}]`);
    const shape = list(sample.shape, `${at}.samples[${i}].shape`) as number[];
    const data = tensor(sample.data, `${at}.samples[${i}].data`, tensors);
    const floats = shape.reduce((a, n) => a * n, 1);
    if (floats !== data.length) throw new WireError(`${at}.samples[${i}].data`, `holds ${data.length} floats, its shape ${shape.join('x')} says ${floats}`);
    return { id: sample.id as number, data, shape };
  });
  const states = list(result.states, `${at}.states`).map((x, i) => stateFromWire(x, `${at}.states[${i}]`, tensors));
  const results = list(result.results, `${at}.results`).map((x, i) => resultFromWire(x, `${at}.results[${i}]`, tensors));
  const counters = pick(record(result.counters ?? { nfe: 0, forwardPasses: 0, decodes: 0, rewardCalls: 0 }, `${at}.counters`), 'nfe', 'forwardPasses', 'decodes', 'rewardCalls') as unknown as ComputeCounters;
  return {
    kind,
    scores,
    samples,
    counters,
    ...(kind === 'export' ? { states } : {}),
    ...(kind === 'recover' ? { results } : {}),
    ...(result.snapshot !== null && result.snapshot !== undefined ? { snapshot: snapshotFromWire(result.snapshot, `${at}.snapshot`) } : {}),
  };
}

function snapshotFromWire(value: unknown, at: string): SnapshotFile {
  const snapshot = record(value, at);
  return { ...(pick(snapshot, 'ids', 'bytes', 'sha256') as unknown as Omit<SnapshotFile, 'name'>), name: snapshotName(snapshot.name, `${at}.name`) };
}

/** A snapshot name or scope as it arrives: a token, never a path (proto/snapshot-name.ts). */
export function snapshotName(value: unknown, at: string): string {
  const problem = snapshotTokenProblem(value);
  if (problem !== null) throw new WireError(at, problem);
  return value as string;
}

function pick(from: Wire, ...names: string[]): Wire {
  const out: Wire = {};
  for (const name of names) out[name] = from[name];
  return out;
}

function enumName(values: Readonly<Record<string, number>>, value: unknown, prefix: string, at: string): string {
  const name = Object.entries(values).find(([, v]) => v === value)?.[0];
  if (name === undefined || value === 0) throw new WireError(at, `${String(value)} is not one of ${Object.keys(values).filter((n) => values[n] !== 0).join(', ')}`);
  return name.slice(prefix.length).toLowerCase();
}

function tensor(ref: unknown, at: string, tensors: readonly Float32Array[]): Float32Array {
  const index = record(ref, at).index as number;
  const found = tensors[index];
  if (found === undefined) throw new WireError(at, `names tensor ${index}, but the frame carries ${tensors.length}`);
  return found;
}
