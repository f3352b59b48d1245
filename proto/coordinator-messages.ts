/**
 * The coordinator's messages (proto/coordinator.proto) as the project's TypeScript values, both ways,
 * checked on the way: the one place that knows how a run configuration, a run event, a plan summary or
 * a worker event is spelled on the wire.
 *
 * A "wire object" is what protobufjs encodes from and decodes to: a plain object keyed by each field's
 * JS name (lowerCamelCase of the .proto name). The mapping is the same for every message, driven by
 * the .proto itself (so a field added there needs no code here):
 *
 *  - a TS key is the field's JS name, except in SamplerOverrides, whose keys are the .proto names
 *    (`use_dynamic_shifting`: diffusers' names, which the run configuration keeps);
 *  - string, bool and double are themselves; uint32 and uint64 are whole numbers from 0 to 2^32 - 1
 *    and 2^53 - 1 (a JS number is exact to there). A value of another type, or out of range, is refused
 *    naming its field: never truncated (protobufjs would wrap -1 to 4294967295);
 *  - a field with presence (`optional`, a message) is absent as undefined or null; a field without it
 *    (a plain proto3 scalar) must be there when encoding, and reads back as its value or its default;
 *    repeated and map fields are arrays and records, absent meaning empty;
 *  - UInt32List and StringList are arrays that can be absent (an empty schedule is not an unset one);
 *  - a oneof other than RunEvent's payload is a value of several types under the oneof's name: the
 *    member is the one whose type takes the value (`callRows`: a number, or 'off' for the Off message;
 *    `memoryLimit`: bytes or a size string);
 *  - RunEvent's payload oneof is the event kind: `{ runId, at, event: 'round', payload: {...} }`.
 *
 * What the values mean (ranges, names, combinations) is checked above this layer: a run configuration
 * by its schema (config/run-config-schema.ts) where it arrives.
 */
import protobuf from 'protobufjs';
import { fileURLToPath } from 'node:url';
import { WireError } from './wire-error.js';
import type { ComputeCounters } from './commands.js';

export const COORDINATOR_PROTO_FILE = fileURLToPath(new URL('../../proto/coordinator.proto', import.meta.url));
const PACKAGE = 'evosearch.coordinator.v1';

/** The coordinator's .proto, loaded once, its types resolved. */
export const coordinatorProto = protobuf.loadSync(COORDINATOR_PROTO_FILE).resolveAll();
export const coordinatorType = (name: string): protobuf.Type => coordinatorProto.lookupType(`${PACKAGE}.${name}`);

/** A plain object as protobufjs encodes from and decodes to (see the header). */
export type WireObject = Record<string, unknown>;

/**
 * A value that does not fit its message: a WireError naming the field (Message.path.to.it). Code
 * 'config': most often a run configuration the user wrote; a peer's bad message is wrapped by whoever
 * read it.
 */
export const fieldError = (field: string, problem: string): WireError => new WireError(field, problem, 'config');

// ---- the payloads, as the project's code holds them --------------------------------------------

export interface BestSample {
  readonly candidate: number;
  readonly reward: number;
  readonly metrics: Readonly<Record<string, number>>;
}

/** The run after a round, as the live view shows it (RoundDetail in coordinator.proto says what each field means). */
export interface RoundDetail {
  readonly generation: number;
  readonly generations: number;
  readonly scored: number;
  readonly populationMax?: number;
  readonly populationMean?: number;
  readonly population: readonly ScoredCandidate[];
  readonly best?: BestSample;
  readonly lineage: readonly LineageNode[];
  readonly workers: readonly WorkerActivity[];
  readonly lostWorkers: number;
  readonly rebuiltStates: number;
}

export interface ScoredCandidate {
  readonly id: number;
  readonly reward: number;
  readonly metrics: Readonly<Record<string, number>>;
  readonly parent?: number;
  readonly origin: string;
  readonly generation: number;
}

export interface LineageNode {
  readonly id: number;
  readonly origin: string;
  readonly generation: number;
  readonly step: number;
  readonly reward?: number;
  readonly thumbnailRound?: number;
  readonly thumbnailCandidate?: number;
}

export interface WorkerActivity {
  readonly worker: string;
  readonly busyMs: number;
  readonly busyShare: number;
  readonly modelMs?: number;
  readonly states: number;
  readonly lost: boolean;
}

/** What each run event carries (the message of the same name in coordinator.proto says what each means). */
export interface RunEventPayloads {
  readonly started: { readonly method: string; readonly model: string; readonly prompt?: string; readonly budgetNfe: number; readonly plannedNfe: number; readonly workers: readonly string[] };
  readonly resumed: { readonly afterRound: number; readonly nfe: number };
  readonly round: { readonly round: number; readonly label: string; readonly best?: number; readonly nfe: number; readonly plannedNfe: number; readonly roundMs: number; readonly detail?: RoundDetail };
  readonly workers: { readonly added: readonly string[]; readonly workers: readonly string[] };
  readonly finished: { readonly best?: BestSample; readonly spent: ComputeCounters; readonly wallMs: number; readonly workers: readonly string[] };
  readonly failed: { readonly error: string };
  readonly cancelled: { readonly error: string };
  readonly interrupted: { readonly error: string; readonly folder: string; readonly resume: string };
}
export type RunEventKind = keyof RunEventPayloads;
/** The kinds, in the .proto's order (checked against it when this module loads). */
export const RUN_EVENT_KINDS: readonly RunEventKind[] = ['started', 'resumed', 'round', 'workers', 'finished', 'failed', 'cancelled', 'interrupted'];
/** The kinds after which a run's event stream ends. */
export const LAST_EVENT_KINDS: ReadonlySet<RunEventKind> = new Set(['finished', 'failed', 'cancelled', 'interrupted']);

/** One event of a run, as the project's code holds it: its run, when, its kind and that kind's payload. */
export type TypedRunEvent = { [K in RunEventKind]: { readonly runId: string; readonly at: string; readonly event: K; readonly payload: RunEventPayloads[K] } }[RunEventKind];

/** What a client shows of a submitted or resumed run (RunPlanSummary). */
export interface PlanSummary {
  readonly model: string;
  readonly method: string;
  readonly preset: string;
  readonly seed: number;
  readonly budgetNfe: number;
  readonly plannedNfe: number;
  readonly prompt?: string;
}

/** What each worker membership subject carries (WorkerJoined, WorkerLeft, WorkerLost). */
export interface WorkerEventPayloads {
  readonly joined: { readonly id: string; readonly address: string; readonly model: string; readonly build: string; readonly at: string };
  readonly left: { readonly id: string; readonly address: string; readonly at: string };
  readonly lost: { readonly id: string; readonly address: string; readonly lastHeartbeat: string; readonly at: string };
}
export type WorkerEventKind = keyof WorkerEventPayloads;
const WORKER_EVENT_MESSAGES: Readonly<Record<WorkerEventKind, string>> = { joined: 'WorkerJoined', left: 'WorkerLeft', lost: 'WorkerLost' };

// ---- the generic mapping (the header's rules) ----------------------------------------------------

/** Messages whose TS keys are the .proto names. */
const PROTO_NAMED_KEYS = new Set(['SamplerOverrides']);
/** Message fields a message is not whole without (proto3 cannot say so). */
const REQUIRED_MESSAGES = new Set(['RunFinished.spent', 'SubmitReply.plan']);
const LIST_WRAPPERS = new Set(['UInt32List', 'StringList']);
const OFF = 'Off';
const UINT32_MAX = 0xffff_ffff;
/** How protobufjs gives decoded messages to the mapping: plain scalars at least at their defaults, unset optional fields and oneof members left out, unset messages null (messageCodec of worker-service.ts decodes so too). */
const DECODED: protobuf.IConversionOptions = { longs: Number, defaults: true, oneofs: true };

const keyOf = (type: protobuf.Type, field: protobuf.Field): string => (PROTO_NAMED_KEYS.has(type.name) ? field.protoName : field.name);
/** A oneof the .proto wrote (proto3 `optional` makes one of its own per field, which is not a choice). */
const choiceOf = (field: protobuf.Field): protobuf.OneOf | null => (field.partOf !== null && field.options?.proto3_optional !== true ? field.partOf : null);
/** Absence means something (proto3 `optional`, a oneof member, a message); protobufjs's own hasPresence says no for messages. */
const hasPresence = (field: protobuf.Field): boolean => field.partOf !== null || field.resolvedType instanceof protobuf.Type;
const isPlainObject = (v: unknown): v is WireObject => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
const shown = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'string' ? `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'` : typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`);

function scalarToWire(kind: string, value: unknown, at: string): unknown {
  switch (kind) {
    case 'string':
      if (typeof value === 'string') return value;
      break;
    case 'bool':
      if (typeof value === 'boolean') return value;
      break;
    case 'double':
      if (typeof value === 'number') return value;
      break;
    case 'uint32':
      if (Number.isInteger(value) && (value as number) >= 0 && (value as number) <= UINT32_MAX) return value;
      throw fieldError(at, `must be a whole number from 0 to ${UINT32_MAX}, got ${shown(value)}`);
    case 'uint64':
      if (Number.isSafeInteger(value) && (value as number) >= 0) return value;
      throw fieldError(at, `must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, got ${shown(value)}`);
  }
  throw fieldError(at, `must be a ${kind === 'bool' ? 'boolean' : kind === 'double' ? 'number' : kind}, got ${shown(value)}`);
}

function scalarFromWire(kind: string, value: unknown, at: string): unknown {
  if (kind !== 'uint64') return value;
  // Longs come as numbers (DECODED); a Long or a string (another toObject setting, JSON) is read too.
  const n = typeof value === 'number' ? value : Number(String(value));
  if (!Number.isSafeInteger(n) || n < 0) throw fieldError(at, `${String(value)} is past what this side reads exactly (2^53 - 1)`);
  return n;
}

function fieldToWire(field: protobuf.Field, value: unknown, at: string): unknown {
  const type = field.resolvedType;
  if (field.map) {
    if (!isPlainObject(value)) throw fieldError(at, `must be an object of ${field.type}, got ${shown(value)}`);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scalarToWire(field.type, v, `${at}.${k}`)]));
  }
  const one = (v: unknown, where: string): unknown => (type instanceof protobuf.Type ? messageToWire(type, v, where) : scalarToWire(field.type, v, where));
  if (field.repeated) {
    if (!Array.isArray(value)) throw fieldError(at, `must be a list, got ${shown(value)}`);
    return value.map((v, i) => one(v, `${at}[${i}]`));
  }
  if (type instanceof protobuf.Type && LIST_WRAPPERS.has(type.name)) {
    if (!Array.isArray(value)) throw fieldError(at, `must be a list, got ${shown(value)}`);
    const kind = type.fields.values!.type;
    return { values: value.map((v, i) => scalarToWire(kind, v, `${at}[${i}]`)) };
  }
  if (type instanceof protobuf.Type && type.name === OFF) {
    if (value !== 'off') throw fieldError(at, `must be 'off', got ${shown(value)}`);
    return {};
  }
  return one(value, at);
}

/** Does `value` have the type of this member of a oneof (the header's rule for choosing it)? */
function takes(field: protobuf.Field, value: unknown): boolean {
  const type = field.resolvedType;
  if (type instanceof protobuf.Type) return type.name === OFF ? value === 'off' : isPlainObject(value);
  if (field.type === 'string') return typeof value === 'string';
  if (field.type === 'bool') return typeof value === 'boolean';
  return typeof value === 'number';
}

/** A TS value to the wire object of `type`, checked (WireError names the first bad field). */
export function messageToWire(type: protobuf.Type, value: unknown, path: string = type.name): WireObject {
  if (!isPlainObject(value)) throw fieldError(path, `must be an object, got ${shown(value)}`);
  const wire: WireObject = {};
  const known = new Set<string>();
  for (const choice of type.oneofsArray) {
    if (choice.fieldsArray.length === 1 && choice.fieldsArray[0]!.options?.proto3_optional === true) continue;
    known.add(choice.name);
    const v = value[choice.name];
    if (v === undefined || v === null) continue;
    const member = choice.fieldsArray.find((f) => takes(f, v));
    if (member === undefined) throw fieldError(`${path}.${choice.name}`, `must be one of ${choice.fieldsArray.map((f) => (f.resolvedType?.name === OFF ? "'off'" : f.type)).join(' | ')}, got ${shown(v)}`);
    wire[member.name] = fieldToWire(member, v, `${path}.${choice.name}`);
  }
  for (const field of type.fieldsArray) {
    if (choiceOf(field) !== null) continue;
    const key = keyOf(type, field);
    known.add(key);
    const v = value[key];
    const at = `${path}.${key}`;
    if (v === undefined || v === null) {
      if (!hasPresence(field) && !field.repeated && !field.map) throw fieldError(at, 'missing');
      if (REQUIRED_MESSAGES.has(`${type.name}.${field.name}`)) throw fieldError(at, 'missing');
      continue;
    }
    wire[field.name] = fieldToWire(field, v, at);
  }
  for (const [key, v] of Object.entries(value)) if (!known.has(key) && v !== undefined) throw fieldError(`${path}.${key}`, `not a field of ${type.name}`);
  return wire;
}

function fieldFromWire(field: protobuf.Field, value: unknown, at: string): unknown {
  const type = field.resolvedType;
  if (field.map) return Object.fromEntries(Object.entries(value as WireObject).map(([k, v]) => [k, scalarFromWire(field.type, v, `${at}.${k}`)]));
  const one = (v: unknown, where: string): unknown => (type instanceof protobuf.Type ? messageFromWire(type, v as WireObject, where) : scalarFromWire(field.type, v, where));
  if (field.repeated) return (value as unknown[]).map((v, i) => one(v, `${at}[${i}]`));
  if (type instanceof protobuf.Type && LIST_WRAPPERS.has(type.name)) return (((value as WireObject).values as unknown[] | undefined) ?? []).map((v, i) => scalarFromWire(type.fields.values!.type, v, `${at}[${i}]`));
  if (type instanceof protobuf.Type && type.name === OFF) return 'off';
  return one(value, at);
}

const DEFAULTS: Readonly<Record<string, unknown>> = { string: '', bool: false, double: 0, uint32: 0, uint64: 0 };

/** The TS value of a decoded wire object of `type` (WireError names a missing required message). */
export function messageFromWire(type: protobuf.Type, wire: WireObject, path: string = type.name): WireObject {
  const value: WireObject = {};
  for (const field of type.fieldsArray) {
    const choice = choiceOf(field);
    const key = choice === null ? keyOf(type, field) : choice.name;
    const v = wire[field.name];
    if (v === undefined || v === null) {
      if (REQUIRED_MESSAGES.has(`${type.name}.${field.name}`)) throw fieldError(`${path}.${key}`, 'missing');
      // Decoded without defaults (another toObject setting): a plain scalar reads as its default.
      if (choice === null && !hasPresence(field) && !field.repeated && !field.map) value[key] = DEFAULTS[field.type];
      else if (field.repeated) value[key] = [];
      else if (field.map) value[key] = {};
      continue;
    }
    value[key] = fieldFromWire(field, v, `${path}.${key}`);
  }
  return value;
}

/** A wire object through protobufjs's own conversion: what the other side decodes from its bytes. */
const normalized = (type: protobuf.Type, wire: WireObject): WireObject => type.toObject(type.fromObject(wire), DECODED);

// ---- each message ---------------------------------------------------------------------------------

const RUN_CONFIG = coordinatorType('RunConfig');
const PLAN_SUMMARY = coordinatorType('RunPlanSummary');
const RUN_EVENT = coordinatorType('RunEvent');

/**
 * A run configuration (config/run-config-schema.ts's shape) to its RunConfig message. Refuses a key
 * the message does not have and a value of the wrong type, naming it; the values are the schema's to judge.
 */
export function runConfigToWire(config: Readonly<Record<string, unknown>>): WireObject {
  return messageToWire(RUN_CONFIG, config);
}

/** A decoded RunConfig as the run configuration's plain object, for the schema (parseRunConfig) to validate. */
export function runConfigFromWire(wire: WireObject): Record<string, unknown> {
  // Every RunConfig field has presence: what the client left out stays out, for the preset to fill.
  return messageFromWire(RUN_CONFIG, wire);
}

export function planSummaryToWire(plan: PlanSummary): WireObject {
  return messageToWire(PLAN_SUMMARY, plan);
}

export function planSummaryFromWire(wire: WireObject, path = 'RunPlanSummary'): PlanSummary {
  return messageFromWire(PLAN_SUMMARY, wire, path) as unknown as PlanSummary;
}

/** The RunEvent message of an event (WireError: a kind or a payload field the message does not take). */
export function runEventToWire(event: TypedRunEvent): WireObject {
  const { runId, at, event: kind, payload } = event as { runId: unknown; at: unknown; event: unknown; payload: unknown };
  if (typeof kind !== 'string' || !(RUN_EVENT_KINDS as readonly string[]).includes(kind)) throw fieldError('RunEvent.event', `${shown(kind)} is not an event kind (${RUN_EVENT_KINDS.join(' | ')})`);
  const member = RUN_EVENT.fields[kind]!;
  return {
    runId: scalarToWire('string', runId, 'RunEvent.runId'),
    at: scalarToWire('string', at, 'RunEvent.at'),
    [kind]: messageToWire(member.resolvedType as protobuf.Type, payload, `RunEvent.${kind}`),
  };
}

/**
 * The event of a decoded RunEvent. No payload is an error naming it: the event is of a kind this side
 * does not know (a newer coordinator's), or the sender left it out.
 */
export function runEventFromWire(wire: WireObject): TypedRunEvent {
  const kinds = RUN_EVENT_KINDS.filter((k) => wire[k] !== undefined && wire[k] !== null);
  if (kinds.length !== 1) throw fieldError('RunEvent.payload', kinds.length === 0 ? `missing: an event of run ${String(wire.runId ?? '?')} of a kind this side does not know, or none (this side knows ${RUN_EVENT_KINDS.join(', ')})` : `has ${kinds.join(' and ')} (one is allowed)`);
  const kind = kinds[0]!;
  const runId = typeof wire.runId === 'string' ? wire.runId : '';
  const at = typeof wire.at === 'string' ? wire.at : '';
  if (runId === '') throw fieldError('RunEvent.runId', 'missing');
  if (at === '') throw fieldError('RunEvent.at', 'missing');
  const payload = messageFromWire(RUN_EVENT.fields[kind]!.resolvedType as protobuf.Type, wire[kind] as WireObject, `RunEvent.${kind}`);
  return { runId, at, event: kind, payload } as TypedRunEvent;
}

/**
 * An event from its parts, checked against its message and read back as the other side would read it
 * (null becomes absent, absent lists empty). Loose payloads (Record<string, unknown>, as
 * coordinator/run/cluster-session.ts publishes them) become typed here, or WireError names the field.
 */
export function runEventOf<K extends RunEventKind>(kind: K, payload: RunEventPayloads[K], runId: string, at: string): TypedRunEvent;
export function runEventOf(kind: string, payload: unknown, runId: string, at: string): TypedRunEvent;
export function runEventOf(kind: string, payload: unknown, runId: string, at: string): TypedRunEvent {
  return runEventFromWire(normalized(RUN_EVENT, runEventToWire({ runId, at, event: kind, payload } as TypedRunEvent)));
}

/** The proto3 JSON of an event's RunEvent (events.jsonl, NATS): lowerCamelCase names, uint64 as strings. */
export function runEventToJson(event: TypedRunEvent): WireObject {
  return RUN_EVENT.toObject(RUN_EVENT.fromObject(runEventToWire(event)), protobuf.util.toJSONOptions);
}

/** The event of a RunEvent's proto3 JSON (fields this side does not know are skipped). */
export function runEventFromJson(json: unknown): TypedRunEvent {
  if (!isPlainObject(json)) throw fieldError('RunEvent', `must be a JSON object, got ${shown(json)}`);
  return runEventFromWire(normalized(RUN_EVENT, json));
}

export function workerEventToJson<K extends WorkerEventKind>(kind: K, event: WorkerEventPayloads[K]): WireObject {
  const type = coordinatorType(WORKER_EVENT_MESSAGES[kind]);
  return type.toObject(type.fromObject(messageToWire(type, event)), protobuf.util.toJSONOptions);
}

export function workerEventFromJson<K extends WorkerEventKind>(kind: K, json: unknown): WorkerEventPayloads[K] {
  const type = coordinatorType(WORKER_EVENT_MESSAGES[kind]);
  if (!isPlainObject(json)) throw fieldError(type.name, `must be a JSON object, got ${shown(json)}`);
  return messageFromWire(type, normalized(type, json)) as unknown as WorkerEventPayloads[K];
}

/** A cluster member's entry in NATS KV (Member in coordinator.proto). */
export interface MemberEntry {
  readonly id: string;
  readonly address: string;
  readonly model: string;
  readonly build: string;
  readonly startedAt: string;
  readonly heartbeatAt: string;
}

const MEMBER = coordinatorType('Member');

/** The proto3 JSON of a member's entry, as the KV bucket holds it. */
export function memberToJson(entry: MemberEntry): WireObject {
  return MEMBER.toObject(MEMBER.fromObject(messageToWire(MEMBER, entry)), protobuf.util.toJSONOptions);
}

/** A member's entry from the KV bucket's JSON; WireError when it is not one (missing id or address, a heartbeat that is not a time). */
export function memberFromJson(json: unknown): MemberEntry {
  if (!isPlainObject(json)) throw fieldError('Member', `must be a JSON object, got ${shown(json)}`);
  const entry = messageFromWire(MEMBER, normalized(MEMBER, json)) as unknown as MemberEntry;
  if (entry.id === '') throw fieldError('Member.id', 'missing');
  if (!/^\S+:\d+$/.test(entry.address)) throw fieldError('Member.address', `must be host:port, got ${shown(entry.address)}`);
  if (Number.isNaN(Date.parse(entry.heartbeatAt))) throw fieldError('Member.heartbeatAt', `must be an RFC 3339 time, got ${shown(entry.heartbeatAt)}`);
  return entry;
}

// ---- the .proto agrees with this file ------------------------------------------------------------

/** Scalar types the mapping reads and writes: a .proto edit that uses another fails at load, not on a run. */
const SCALARS = new Set(Object.keys(DEFAULTS));
for (const type of [RUN_CONFIG, PLAN_SUMMARY, RUN_EVENT, MEMBER, ...Object.values(WORKER_EVENT_MESSAGES).map(coordinatorType)]) checkTypes(type, new Set());
function checkTypes(type: protobuf.Type, seen: Set<string>): void {
  if (seen.has(type.name)) return;
  seen.add(type.name);
  for (const field of type.fieldsArray) {
    if (field.resolvedType instanceof protobuf.Type) checkTypes(field.resolvedType, seen);
    else if (!SCALARS.has(field.type)) throw new Error(`${type.name}.${field.name} is a ${field.type}, which proto/coordinator-messages.ts does not map`);
  }
}
const protoKinds = RUN_EVENT.oneofs.payload!.fieldsArray.map((f) => f.name);
if (protoKinds.join() !== RUN_EVENT_KINDS.join()) throw new Error(`RunEvent's payloads are ${protoKinds.join(', ')} in coordinator.proto, ${RUN_EVENT_KINDS.join(', ')} here`);
