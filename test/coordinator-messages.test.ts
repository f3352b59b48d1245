import { WireError } from '../proto/wire-error.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { z } from 'zod';
import { ConfigError, parseRunConfig } from '../config/resolve-run-config.js';
import { runConfigSchema, type RunConfigInput } from '../config/run-config-schema.js';
import {
  COORDINATOR_PROTO_FILE,
  coordinatorType,
  fieldError,
  planSummaryFromWire,
  planSummaryToWire,
  runConfigFromWire,
  runConfigToWire,
  runEventFromJson,
  runEventFromWire,
  runEventOf,
  runEventToJson,
  runEventToWire,
  workerEventFromJson,
  workerEventToJson,
  RUN_EVENT_KINDS,
  type RunEventPayloads,
  type TypedRunEvent,
  type WireObject,
} from '../proto/coordinator-messages.js';
import { coordinatorService, UndecodableRequest, type SubmitRequest } from '../proto/coordinator-service.js';

/** A run configuration with every field of the schema set (the mirror test below keeps it whole). */
const FULL: RunConfigInput = {
  model: 'analytic:gmm?dimension=4',
  method: 'particles',
  preset: 'flux',
  seed: Number.MAX_SAFE_INTEGER,
  budgetNfe: 123456,
  sampler: {
    kind: 'ddim',
    steps: 30,
    eta: 0.5,
    shift: 3,
    mu: -0.25,
    use_dynamic_shifting: true,
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    prediction_type: 'v_prediction',
    timestep_spacing: 'trailing',
    steps_offset: 1,
    set_alpha_to_one: false,
    clip_sample: false,
  },
  evosearch: { evolutionSchedule: [0, 10, 20], populationSchedule: [8, 4, 4, 2], elites: 1, mutationRate: 0.3, tournamentFraction: 0.5, tournamentSize: 2, archive: true, selection: 'sharing', sharingRadius: 0.5, sharingAlpha: 2 },
  bestOfN: { n: 16 },
  particles: { particles: 8, lambda: 10, potential: 'diff', resampling: { start: 2, end: 28, interval: 5 }, adaptive: true, fitness: 'rollout' },
  guidanceScale: 7.5,
  prompt: 'a small yellow square',
  negativePrompt: '',
  rewards: '/models/rewards.json',
  providers: ['cuda', 'cpu'],
  cuda: { deviceId: 1, tf32: true, convAlgoSearch: 'heuristic', memoryLimit: '8GiB' },
  workers: 3,
  cluster: 'nats://127.0.0.1:4222',
  workersAt: ['10.0.0.1:50051', 'gpu-2:50051'],
  batchSize: 64,
  callRows: 'off',
  out: 'runs/x',
  logLevel: 'debug',
  progress: false,
  snapshots: true,
};

/** What the other side reads from the bytes of a Submit carrying `config`. */
function overTheWire(config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const bytes = coordinatorService.submit.requestSerialize({ protocolVersion: 2, config: runConfigToWire(config) });
  const request = coordinatorService.submit.requestDeserialize(bytes);
  assert.ok(!(request instanceof UndecodableRequest));
  return runConfigFromWire((request as SubmitRequest).config ?? {});
}

/** The dotted paths of a zod object's keys, nested objects opened. */
function schemaPaths(schema: z.ZodObject, prefix = ''): string[] {
  return Object.entries(schema.shape).flatMap(([key, field]) => {
    const inner = field instanceof z.ZodOptional ? field.unwrap() : field;
    return inner instanceof z.ZodObject ? [`${prefix}${key}`, ...schemaPaths(inner, `${prefix}${key}.`)] : [`${prefix}${key}`];
  });
}

/** The dotted TS paths a message has (the mapping's keys), nested messages opened. */
function messagePaths(type: protobuf.Type, prefix = ''): string[] {
  const paths = new Set<string>();
  for (const field of type.fieldsArray) {
    const choice = field.partOf !== null && field.options?.proto3_optional !== true ? field.partOf : null;
    const key = choice?.name ?? (type.name === 'SamplerOverrides' ? field.protoName : field.name);
    paths.add(`${prefix}${key}`);
    const nested = field.resolvedType;
    if (choice === null && nested instanceof protobuf.Type && !['UInt32List', 'StringList'].includes(nested.name)) for (const p of messagePaths(nested, `${prefix}${key}.`)) paths.add(p);
  }
  return [...paths];
}

function objectPaths(value: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(value).flatMap(([key, v]) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? [`${prefix}${key}`, ...objectPaths(v as Record<string, unknown>, `${prefix}${key}.`)] : [`${prefix}${key}`]));
}

const throwsField = (f: () => unknown, field: RegExp) => assert.throws(f, (e: unknown) => e instanceof WireError && field.test(e.field), `expected a WireError naming ${field}`);

describe('RunConfig: the run configuration as a typed message', () => {
  it('mirrors the schema: every schema field has a message field and the reverse (a field added to one is missing from the other)', () => {
    const schema = schemaPaths(runConfigSchema).sort();
    assert.deepEqual(messagePaths(coordinatorType('RunConfig')).sort(), schema);
    assert.deepEqual(objectPaths(FULL as Record<string, unknown>).sort(), schema, 'FULL leaves a field out: add it');
  });

  it('a configuration with every field comes through the bytes as it went in, and the schema takes it', () => {
    const read = overTheWire(FULL as Record<string, unknown>);
    assert.deepEqual(read, FULL);
    assert.deepEqual(parseRunConfig(read, 'test'), FULL);
  });

  it('keeps presence: an empty schedule is not an absent one, an empty prompt is not none, and each side of a oneof comes back as itself', () => {
    assert.deepEqual(overTheWire({}), {});
    assert.deepEqual(overTheWire({ evosearch: { evolutionSchedule: [], populationSchedule: [4] } }), { evosearch: { evolutionSchedule: [], populationSchedule: [4] } });
    assert.deepEqual(overTheWire({ evosearch: {} }), { evosearch: {} });
    assert.deepEqual(overTheWire({ negativePrompt: '', seed: 0, progress: false }), { negativePrompt: '', seed: 0, progress: false });
    assert.deepEqual(overTheWire({ callRows: 16, cuda: { memoryLimit: 2 ** 40 } }), { callRows: 16, cuda: { memoryLimit: 2 ** 40 } });
    assert.deepEqual(overTheWire({ callRows: 'off', cuda: { memoryLimit: '512MiB' } }), { callRows: 'off', cuda: { memoryLimit: '512MiB' } });
    assert.deepEqual(overTheWire({ callRows: undefined, model: 'analytic:gmm' }), { model: 'analytic:gmm' });
  });

  it('refuses, naming the field, what the message cannot carry: an unknown key, a wrong type, a number it would truncate', () => {
    throwsField(() => runConfigToWire({ nonsense: true }), /^RunConfig\.nonsense$/);
    throwsField(() => runConfigToWire({ sampler: { steps: 2.5 } }), /^RunConfig\.sampler\.steps$/);
    throwsField(() => runConfigToWire({ sampler: { useDynamicShifting: true } }), /^RunConfig\.sampler\.useDynamicShifting$/);
    throwsField(() => runConfigToWire({ seed: -1 }), /^RunConfig\.seed$/);
    throwsField(() => runConfigToWire({ seed: 2 ** 53 }), /^RunConfig\.seed$/);
    throwsField(() => runConfigToWire({ workers: 2 ** 32 }), /^RunConfig\.workers$/);
    throwsField(() => runConfigToWire({ model: 7 }), /^RunConfig\.model$/);
    throwsField(() => runConfigToWire({ providers: 'cpu' }), /^RunConfig\.providers$/);
    throwsField(() => runConfigToWire({ evosearch: { populationSchedule: [4, -2] } }), /^RunConfig\.evosearch\.populationSchedule\[1\]$/);
    throwsField(() => runConfigToWire({ callRows: 'on' }), /^RunConfig\.callRows$/);
    throwsField(() => runConfigToWire({ cuda: { memoryLimit: true } }), /^RunConfig\.cuda\.memoryLimit$/);
    throwsField(() => runConfigToWire({ particles: 8 }), /^RunConfig\.particles$/);
    assert.equal(fieldError('RunConfig.seed', 'x').code, 'config', 'a run configuration that does not fit is the user\'s input (exit 2)');
  });

  it('what the message carries but the schema refuses is refused on arrival by the schema, naming the field as a local run does', () => {
    assert.throws(() => parseRunConfig(overTheWire({ sampler: { steps: 0 } }), 'submitted run'), (e: unknown) => e instanceof ConfigError && e.field === 'sampler.steps');
    assert.throws(() => parseRunConfig(overTheWire({ method: 'hill-climbing' }), 'submitted run'), (e: unknown) => e instanceof ConfigError && e.field === 'method');
    assert.throws(() => parseRunConfig(overTheWire({ providers: [] }), 'submitted run'), (e: unknown) => e instanceof ConfigError && e.field === 'providers');
  });

  it('a uint64 past 2^53 from another client is refused naming the field, not rounded', () => {
    const type = coordinatorType('SubmitRequest');
    const bytes = Buffer.from(type.encode(type.fromObject({ protocolVersion: 2, config: { seed: '18446744073709551615' } })).finish());
    const request = coordinatorService.submit.requestDeserialize(bytes) as SubmitRequest;
    throwsField(() => runConfigFromWire(request.config!), /^RunConfig\.seed$/);
  });

  it('bytes that are not a SubmitRequest decode to UndecodableRequest (the server answers INVALID_ARGUMENT), not a throw', () => {
    const decoded = coordinatorService.submit.requestDeserialize(Buffer.from([0x0a, 0xff, 0xff, 0xff]));
    assert.ok(decoded instanceof UndecodableRequest, String(decoded));
    assert.equal(decoded.message, 'SubmitRequest');
  });
});

const AT = '2026-12-01T10:00:00.000Z';
/** One payload of every kind, as this side holds them. */
const PAYLOADS: { readonly [K in keyof RunEventPayloads]: RunEventPayloads[K] } = {
  started: { method: 'evosearch', model: 'analytic:gmm', prompt: 'a red circle', budgetNfe: 2_000_000, plannedNfe: 1_999_950, workers: ['127.0.0.1:5001 analytic:gmm', '127.0.0.1:5002 analytic:gmm'] },
  resumed: { afterRound: 3, nfe: 4500 },
  round: { round: 4, label: 'generation 4', best: -0.125, nfe: 6000, plannedNfe: 20000, roundMs: 812 },
  workers: { added: ['127.0.0.1:5003'], workers: ['127.0.0.1:5001', '127.0.0.1:5002', '127.0.0.1:5003'] },
  finished: { best: { candidate: 17, reward: -0.01, metrics: { clip: 0.31 } }, spent: { nfe: 20000, forwardPasses: 40000, decodes: 120, rewardCalls: 120 }, wallMs: 98765, workers: ['127.0.0.1:5001'] },
  failed: { error: 'no workers' },
  cancelled: { error: 'cancelled by a client' },
  interrupted: { error: 'the coordinator is stopping', folder: '/srv/runs/r1', resume: 'evosearch resume r1 --cluster nats://h:4222' },
};
const eventsOfEveryKind = (): TypedRunEvent[] => RUN_EVENT_KINDS.map((kind) => runEventOf(kind, PAYLOADS[kind], 'r1', AT));

function streamed(event: TypedRunEvent): TypedRunEvent {
  const m = coordinatorService.watch;
  return runEventFromWire(m.responseDeserialize(m.responseSerialize(runEventToWire(event))));
}

describe('RunEvent: a run event as a typed message', () => {
  it('every kind comes through the Watch stream\'s bytes and through its proto3 JSON as it went in', () => {
    for (const event of eventsOfEveryKind()) {
      assert.deepEqual(event.payload, PAYLOADS[event.event], `${event.event}: runEventOf changed a whole payload`);
      assert.deepEqual(streamed(event), event, event.event);
      assert.deepEqual(runEventFromJson(JSON.parse(JSON.stringify(runEventToJson(event)))), event, `${event.event} (JSON)`);
    }
  });

  it('the loose payloads a run publishes become typed: null is absent, a missing list is empty, an absent prompt stays absent', () => {
    const round = runEventOf('round', { round: 0, label: 'init', best: null, nfe: 250, plannedNfe: 990, roundMs: 3 }, 'r1', AT);
    assert.deepEqual(round, { runId: 'r1', at: AT, event: 'round', payload: { round: 0, label: 'init', nfe: 250, plannedNfe: 990, roundMs: 3 } });
    const started = runEventOf('started', { method: 'evosearch', model: 'analytic:gmm', prompt: undefined, budgetNfe: 1000, plannedNfe: 990, workers: [] }, 'r1', AT);
    assert.ok(started.event === 'started' && !('prompt' in started.payload));
    const finished = runEventOf('finished', { best: null, spent: { nfe: 1, forwardPasses: 1, decodes: 0, rewardCalls: 0 }, wallMs: 5 }, 'r1', AT);
    assert.deepEqual(finished.payload, { spent: { nfe: 1, forwardPasses: 1, decodes: 0, rewardCalls: 0 }, wallMs: 5, workers: [] });
  });

  it('refuses, naming it, a payload field that does not fit, a missing one, an unknown one, and an unknown kind', () => {
    throwsField(() => runEventOf('round', { round: 0, label: 'init', nfe: 'many', plannedNfe: 990, roundMs: 3 }, 'r1', AT), /^RunEvent\.round\.nfe$/);
    throwsField(() => runEventOf('round', { round: 0, label: 'init', plannedNfe: 990, roundMs: 3 }, 'r1', AT), /^RunEvent\.round\.nfe$/);
    throwsField(() => runEventOf('workers', { added: [], workers: [], joinedAt: AT }, 'r1', AT), /^RunEvent\.workers\.joinedAt$/);
    throwsField(() => runEventOf('finished', { wallMs: 5 }, 'r1', AT), /^RunEvent\.finished\.spent$/);
    throwsField(() => runEventOf('exploded', { error: 'x' }, 'r1', AT), /^RunEvent\.event$/);
    throwsField(() => runEventOf('failed', { error: 'x' }, 42 as unknown as string, AT), /^RunEvent\.runId$/);
  });

  it('a RunEvent with no payload is refused naming the payload; one without its run or time too', () => {
    const type = coordinatorType('RunEvent');
    const decode = (wire: WireObject) => runEventFromWire(coordinatorService.watch.responseDeserialize(Buffer.from(type.encode(type.fromObject(wire)).finish())));
    throwsField(() => decode({ runId: 'r1', at: AT }), /^RunEvent\.payload$/);
    throwsField(() => decode({ at: AT, failed: { error: 'x' } }), /^RunEvent\.runId$/);
    throwsField(() => decode({ runId: 'r1', failed: { error: 'x' } }), /^RunEvent\.at$/);
    throwsField(() => decode({ runId: 'r1', at: AT, finished: { wallMs: 1 } }), /^RunEvent\.finished\.spent$/);
  });

  it('its proto3 JSON is what a subscriber in another language reads with the .proto alone (plain protobufjs here)', () => {
    const event = runEventOf('round', PAYLOADS.round, 'r1', AT);
    const json = runEventToJson(event);
    assert.deepEqual(json, { runId: 'r1', at: AT, round: { round: 4, label: 'generation 4', best: -0.125, nfe: '6000', plannedNfe: '20000', roundMs: 812 } });
    const independent = protobuf.loadSync(COORDINATOR_PROTO_FILE).lookupType('evosearch.coordinator.v1.RunEvent');
    assert.equal(independent.verify(independent.fromObject(json)), null);
    assert.deepEqual(independent.toObject(independent.fromObject(json), { longs: Number, oneofs: true }), { runId: 'r1', at: AT, payload: 'round', round: { round: 4, label: 'generation 4', best: -0.125, nfe: 6000, plannedNfe: 20000, roundMs: 812 } });
  });
});

describe('RunPlanSummary and the worker events', () => {
  it('a plan summary comes through; a missing prompt stays absent', () => {
    const summary = { model: 'analytic:gmm', method: 'evosearch', preset: 'sd21', seed: 4, budgetNfe: 3000, plannedNfe: 2950 };
    const type = coordinatorType('RunPlanSummary');
    const back = planSummaryFromWire(type.toObject(type.decode(type.encode(type.fromObject(planSummaryToWire(summary))).finish()), { longs: Number, defaults: true, oneofs: true }));
    assert.deepEqual(back, summary);
    throwsField(() => planSummaryToWire({ ...summary, plannedNfe: undefined } as never), /^RunPlanSummary\.plannedNfe$/);
  });

  it('a worker event is its message\'s proto3 JSON, and reads back', () => {
    const lost = { id: 'w1', address: '10.0.0.2:50051', lastHeartbeat: '2026-12-01T09:59:50.000Z', at: AT };
    assert.deepEqual(workerEventToJson('lost', lost), lost);
    assert.deepEqual(workerEventFromJson('lost', JSON.parse(JSON.stringify(workerEventToJson('lost', lost)))), lost);
    throwsField(() => workerEventToJson('joined', { id: 'w1', address: 'a:1', model: 'm', at: AT } as never), /^WorkerJoined\.build$/);
  });
});

describe('forward compatibility: a side one field (or one event kind) ahead still talks to the other', () => {
  // The .proto of a later release: a field added to RunConfig, to its SamplerOverrides and to a payload,
  // and an event kind this release does not know.
  const later = protobuf.parse(
    readFileSync(COORDINATOR_PROTO_FILE, 'utf8')
      .replace('message RunConfig {', 'message RunConfig {\n  optional string scheduler_profile = 90;')
      .replace('message SamplerOverrides {', 'message SamplerOverrides {\n  optional double sigma_max = 90;')
      .replace('message RoundFinished {', 'message RoundFinished {\n  double diversity = 90;\n  repeated string notes = 91;')
      .replace('    RunInterrupted interrupted = 17;', '    RunInterrupted interrupted = 17;\n    RunPaused paused = 90;')
      .concat('\nmessage RunPaused { string reason = 1; }\n'),
  ).root;
  const laterType = (name: string) => later.lookupType(`evosearch.coordinator.v1.${name}`);
  const encodeLater = (name: string, value: WireObject) => Buffer.from(laterType(name).encode(laterType(name).fromObject(value)).finish());
  const decodeLater = (name: string, bytes: Buffer) => laterType(name).toObject(laterType(name).decode(bytes), { longs: Number, defaults: true, oneofs: true });

  it('Submit: a later client\'s extra fields are skipped by this coordinator, which reads the rest; this client\'s message reads on a later coordinator', () => {
    const laterRequest = { protocolVersion: 2, config: { ...runConfigToWire({ seed: 4, sampler: { steps: 30 } }), schedulerProfile: 'karras', sampler: { steps: 30, sigmaMax: 80 } } };
    const ours = coordinatorService.submit.requestDeserialize(encodeLater('SubmitRequest', laterRequest)) as SubmitRequest;
    assert.deepEqual(runConfigFromWire(ours.config!), { seed: 4, sampler: { steps: 30 } });
    const theirs = decodeLater('SubmitRequest', coordinatorService.submit.requestSerialize({ protocolVersion: 2, config: runConfigToWire(FULL as Record<string, unknown>) }));
    assert.equal((theirs.config as WireObject).seed, Number.MAX_SAFE_INTEGER);
    assert.equal((theirs.config as WireObject).schedulerProfile, undefined);
    assert.deepEqual((theirs.config as { evosearch: WireObject }).evosearch.populationSchedule, { values: [8, 4, 4, 2] });
  });

  it('RunEvent: a later coordinator\'s extra payload fields are skipped; its new kind is refused by name, not guessed; this side\'s events read on a later client', () => {
    const m = coordinatorService.watch;
    const round = { runId: 'r1', at: AT, round: { round: 1, label: 'g1', nfe: 10, plannedNfe: 20, roundMs: 5, diversity: 0.7, notes: ['x'] } };
    assert.deepEqual(runEventFromWire(m.responseDeserialize(encodeLater('RunEvent', round))), { runId: 'r1', at: AT, event: 'round', payload: { round: 1, label: 'g1', nfe: 10, plannedNfe: 20, roundMs: 5 } });
    throwsField(() => runEventFromWire(m.responseDeserialize(encodeLater('RunEvent', { runId: 'r1', at: AT, paused: { reason: 'maintenance' } }))), /^RunEvent\.payload$/);
    for (const event of eventsOfEveryKind()) {
      const theirs = decodeLater('RunEvent', m.responseSerialize(runEventToWire(event)));
      assert.equal(theirs.payload, event.event);
      assert.equal(theirs.runId, 'r1');
    }
    assert.equal((decodeLater('RunEvent', m.responseSerialize(runEventToWire(runEventOf('round', PAYLOADS.round, 'r1', AT)))).round as WireObject).diversity, 0);
  });
});
