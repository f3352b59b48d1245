/**
 * A run's WorkerSetup (proto/worker-setup.ts) as the RunSetup message of proto/worker.proto (with the
 * SamplerConfig of proto/sampler.proto), and back, checked at the boundary: a missing part is a
 * WireError naming the field. The sampler's own values (ranges, names) are checked where it is built
 * (samplers/sampler-config.ts), which names the field too.
 */
import type { SamplerConfig } from '../samplers/index.js';
import type { WorkerSetup } from './worker-setup.js';
import { snapshotName } from './command-messages.js';
import { workerProtoRoot } from './worker-proto.js';
import { WireError, wireList as list, wireRecord as record, type Wire } from './wire-error.js';

/** The sampler kinds' members of SamplerConfig's oneof. */
const SAMPLER_MEMBER = { ddim: 'ddim', ddpm: 'ddpm', 'flow-euler': 'flowEuler', 'flow-sde-dpmpp': 'flowSdeDpmpp' } as const satisfies Record<SamplerConfig['kind'], string>;
const KIND_OF_MEMBER = Object.fromEntries(Object.entries(SAMPLER_MEMBER).map(([kind, member]) => [member, kind])) as Readonly<Record<string, SamplerConfig['kind']>>;
const MESSAGE_OF_MEMBER = { ddim: 'DdimSampler', ddpm: 'DdpmSampler', flowEuler: 'FlowEulerSampler', flowSdeDpmpp: 'FlowSdeDpmppSampler' } as const;
/** DDIM and DDPM keep their shared schedule fields in a VpSchedule. */
const VP_MEMBERS = new Set(['ddim', 'ddpm']);

const samplerField = (type: string) => workerProtoRoot.lookupType(`evosearch.sampler.v1.${type}`).fields;
const camel = (snake: string) => snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export function setupToWire(setup: WorkerSetup): Wire {
  return {
    model: setup.model,
    sampler: samplerToWire(setup.sampler),
    seed: setup.seed,
    batchSize: setup.batchSize,
    ...(setup.callRows === 'off' ? { rowsAsTheyCome: true } : setup.callRows !== undefined ? { fixedRows: setup.callRows } : {}),
    ...optional({ prompt: setup.prompt, negativePrompt: setup.negativePrompt, guidanceScale: setup.guidanceScale, rewards: setup.rewards, intraOpThreads: setup.intraOpThreads }),
    providers: setup.providers ?? [],
    cuda: setup.cuda === undefined ? null : optional({ deviceId: setup.cuda.deviceId, tf32: setup.cuda.tf32 }),
    rewardWorkers: setup.rewardWorkers === undefined ? null : { addresses: setup.rewardWorkers.addresses, runId: setup.rewardWorkers.runId },
    ...optional({ snapshotScope: setup.snapshotScope }),
    scoreEmbeddings: setup.scoreEmbeddings === true,
  };
}

export function setupFromWire(message: unknown, at = 'setup'): WorkerSetup {
  const setup = record(message, at);
  const text = (name: string) => {
    if (typeof setup[name] !== 'string' || setup[name] === '') throw new WireError(`${at}.${snake(name)}`, 'missing');
    return setup[name] as string;
  };
  const seed = text('seed');
  if (!/^\d{1,20}$/.test(seed) || BigInt(seed) >= 2n ** 64n) throw new WireError(`${at}.seed`, `must be the decimal digits of a 64-bit unsigned integer, got '${seed}'`);
  const batchSize = setup.batchSize as number;
  if (!(batchSize >= 1)) throw new WireError(`${at}.batch_size`, `must be at least 1, got ${batchSize}`);
  const callRows = setup.callRows === 'rowsAsTheyCome' ? 'off' : setup.callRows === 'fixedRows' ? (setup.fixedRows as number) : undefined;
  if (typeof callRows === 'number' && callRows < 1) throw new WireError(`${at}.fixed_rows`, `must be at least 1, got ${callRows}`);
  const cuda = setup.cuda === null || setup.cuda === undefined ? undefined : record(setup.cuda, `${at}.cuda`);
  const reward = setup.rewardWorkers === null || setup.rewardWorkers === undefined ? undefined : record(setup.rewardWorkers, `${at}.reward_workers`);
  const providers = setup.providers as string[];
  return {
    model: text('model'),
    sampler: samplerFromWire(setup.sampler, `${at}.sampler`),
    seed,
    batchSize,
    ...(callRows !== undefined ? { callRows } : {}),
    ...(optional({ prompt: setup.prompt, negativePrompt: setup.negativePrompt, guidanceScale: setup.guidanceScale, rewards: setup.rewards, intraOpThreads: setup.intraOpThreads }) as Partial<WorkerSetup>),
    ...(providers.length > 0 ? { providers } : {}),
    ...(cuda !== undefined ? { cuda: optional({ deviceId: cuda.deviceId, tf32: cuda.tf32 }) } : {}),
    ...(reward !== undefined ? { rewardWorkers: { addresses: reward.addresses as string[], runId: reward.runId as string } } : {}),
    ...(setup.snapshotScope !== undefined && setup.snapshotScope !== null ? { snapshotScope: snapshotName(setup.snapshotScope, `${at}.snapshot_scope`) } : {}),
    ...(setup.scoreEmbeddings === true ? { scoreEmbeddings: true } : {}),
  };
}

/**
 * Every field of the TypeScript config goes across by its camelCase name; one the message has no field
 * for is an error here, on the sending side, never a value silently dropped.
 */
export function samplerToWire(config: SamplerConfig): Wire {
  const member = SAMPLER_MEMBER[config.kind];
  const own = samplerField(MESSAGE_OF_MEMBER[member]);
  const schedule = samplerField('VpSchedule');
  const body: Wire = {};
  const vp: Wire = {};
  for (const [key, value] of Object.entries(config)) {
    if (key === 'kind' || value === undefined) continue;
    const name = camel(key);
    if (VP_MEMBERS.has(member) && name in schedule) vp[name] = value;
    else if (name in own && name !== 'schedule') body[name] = value;
    else throw new WireError(`sampler.${key}`, `the ${config.kind} sampler message has no such field (proto/sampler.proto)`);
  }
  if (VP_MEMBERS.has(member)) body.schedule = vp;
  return { [member]: body };
}

export function samplerFromWire(message: unknown, at: string): SamplerConfig {
  const sampler = record(message, at);
  const member = sampler.kind as string | undefined;
  const kind = member === undefined ? undefined : KIND_OF_MEMBER[member];
  if (member === undefined || kind === undefined) throw new WireError(at, `names no sampler this side knows (one of ${Object.keys(SAMPLER_MEMBER).join(', ')})`);
  const body = record(sampler[member], `${at}.${snake(member)}`);
  const fields: Wire = { kind };
  const take = (from: Wire) => {
    for (const [name, value] of Object.entries(from)) if (name !== 'schedule' && value !== undefined && value !== null) fields[snake(name)] = value;
  };
  if (VP_MEMBERS.has(member)) take(record(body.schedule, `${at}.${member}.schedule`));
  take(body);
  return fields as unknown as SamplerConfig;
}

/** The entries of `values` that are set (proto3 optional fields: absent means not sent). */
function optional(values: Wire): Wire {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

