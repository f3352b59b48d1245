/**
 * What test/kubernetes-manifests.test.ts needs to judge deploy/kubernetes/ without a cluster: the
 * manifests as `kubectl kustomize` renders them, checked against Kubernetes' own schemas offline
 * (two ways, since each misses what the other sees), and the questions a schema cannot answer, each a
 * function that lists what is wrong so that a test can also hand it a broken copy and see it refused.
 *
 * The schemas are those of the npm packages kubernetes-models 4.5.1 (Kubernetes 1.33's OpenAPI),
 * @kubernetes-models/keda 0.4.2 (KEDA 2.10.1's CRDs) and @kubernetes-models/prometheus-operator 4.4.4
 * (the operator's v0.65.1 CRDs): the newest of that family that run on Node 20 (their next majors
 * need Node 22). Each object is checked:
 * - by the package's validator (ajv, compiled from the OpenAPI schema): types, required fields,
 *   enums and formats. It lets unknown fields through (the schemas set no additionalProperties),
 *   as a misspelt `minReplicaCont` would be, which the API server refuses (kubectl's
 *   --validate=strict) or, on a CRD, drops without a word;
 * - by TypeScript against the package's interfaces, generated from the same schemas: an object
 *   literal typed as `IDeployment` may hold only the fields the schema names, at every depth (the
 *   compiler's excess-property check), which is the unknown-field check the validator lacks.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import YAML from 'yaml';

/** A Kubernetes object as rendered: JSON-like, at least apiVersion, kind and metadata.name. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** `kind/name` as a message names an object. */
export function nameOf(object: KubeObject): string {
  return `${object.kind}/${object.metadata?.name ?? '?'}`;
}

/** An executable on PATH (or one of `also`), or null. */
export function findExecutable(name: string, also: readonly string[] = []): string | null {
  const which = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim() !== '') return which.stdout.trim();
  return also.find((p) => existsSync(p)) ?? null;
}

/** Every object of a multi-document YAML text; a document that does not parse is an error naming it. */
export function parseObjects(text: string, source: string): KubeObject[] {
  return YAML.parseAllDocuments(text).flatMap((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${source}, document ${i + 1}: ${doc.errors[0]!.message}`);
    const value = doc.toJSON() as KubeObject | null;
    return value === null ? [] : [value];
  });
}

/** `kubectl kustomize DIR`'s objects. */
export async function renderKustomization(kubectl: string, dir: string): Promise<KubeObject[]> {
  const { stdout } = await promisify(execFile)(kubectl, ['kustomize', dir], { maxBuffer: 64 * 1024 * 1024 });
  return parseObjects(stdout, `kubectl kustomize ${dir}`);
}

/**
 * The object without its null fields, as the API server reads them (null is "not set"):
 * `kubectl create --dry-run=client -o yaml` writes `creationTimestamp: null`, which a schema of
 * strings would otherwise refuse.
 */
export function withoutNulls<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => withoutNulls(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)])) as T;
  }
  return value;
}

/** The npm module that models `apiVersion`/`kind` (its class is named `kind`, its interface `I` + kind). */
function modelModule(apiVersion: string, kind: string): string {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  const pkg = group === 'keda.sh' ? '@kubernetes-models/keda' : group === 'monitoring.coreos.com' ? '@kubernetes-models/prometheus-operator' : 'kubernetes-models';
  return `${pkg}/${apiVersion}/${kind}`;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/**
 * What the schema validator says is wrong with each object: one line per object with problems. An
 * object of a kind no package models is a problem too: nothing passes unchecked.
 */
export async function schemaProblems(objects: readonly KubeObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const object of objects) {
    let model: ModelClass | undefined;
    try {
      model = ((await import(modelModule(object.apiVersion, object.kind))) as Record<string, ModelClass>)[object.kind];
    } catch {
      model = undefined;
    }
    if (model === undefined) {
      problems.push(`${nameOf(object)}: no schema for ${object.apiVersion} ${object.kind} (${modelModule(object.apiVersion, object.kind)})`);
      continue;
    }
    try {
      new model(withoutNulls(object)).validate();
    } catch (error) {
      problems.push(`${nameOf(object)}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/**
 * What TypeScript says of each object typed by its schema's interface: unknown fields at any depth,
 * and wrong types. `root` is the repository root (the packages resolve from its node_modules). One
 * compilation for all the objects (about 5 s: some 260 declaration files).
 */
export function fieldProblems(objects: readonly KubeObject[], root: string): string[] {
  // Never written to disk: the compiler host below serves it. Inside the repository, so that its
  // imports resolve from the repository's node_modules (and as ESM: package.json's type).
  const file = join(root, 'test', '.kubernetes-field-check.ts');
  const lines: string[] = [];
  const objectAtLine: (KubeObject | null)[] = [];
  objects.forEach((object, i) => {
    lines.push(`import type { I${object.kind} as T${i} } from '${modelModule(object.apiVersion, object.kind)}';`);
    objectAtLine.push(null);
  });
  objects.forEach((object, i) => {
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(withoutNulls(object))};`);
    objectAtLine.push(object);
  });
  const text = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => (name === file ? ts.createSourceFile(name, text, language) : getSourceFile(name, language, ...rest));
  host.fileExists = (name) => name === file || fileExists(name);
  host.readFile = (name) => (name === file ? text : readFile(name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (d.file === undefined || d.start === undefined || d.file.fileName !== file) return `${d.file?.fileName ?? 'typescript'}: ${message}`;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const object = objectAtLine[line];
    // An import that does not resolve: a kind without a model, which schemaProblems names too.
    return object === null || object === undefined ? `no model: ${message}` : `${nameOf(object)}: ${message.length > 400 ? `${message.slice(0, 400)}…` : message}`;
  });
}

// ---- reading rendered objects -------------------------------------------------------------------

/** The parts of a pod spec the checks read (the schemas have checked their shapes already). */
export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: Record<string, unknown>;
}

export interface Probe {
  httpGet?: { path?: string; port: number | string };
}

export interface Volume {
  name: string;
  secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
  configMap?: { name: string; defaultMode?: number; items?: { key: string; path: string }[] };
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  emptyDir?: Record<string, unknown>;
  hostPath?: { path: string };
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; fsGroup?: number };
  terminationGracePeriodSeconds?: number;
  shareProcessNamespace?: boolean;
  automountServiceAccountToken?: boolean;
  hostname?: string;
}

/** A workload's pod template: its labels and spec. */
export interface Workload {
  readonly object: KubeObject;
  readonly labels: Record<string, string>;
  readonly pod: PodSpec;
}

export function workloads(objects: readonly KubeObject[]): Workload[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind))
    .map((o) => {
      const template = (o.spec as { template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec } }).template;
      return { object: o, labels: template.metadata?.labels ?? {}, pod: template.spec };
    });
}

/** A label selector: a Service's (a plain map) or a structured one (matchLabels, matchExpressions). */
export type Selector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | Record<string, string>;

/** Whether a selector selects `labels`; an empty one selects nothing here (a check wants a target). */
export function selects(selector: Selector, labels: Record<string, string>): boolean {
  const s = selector as { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  const isStructured = 'matchLabels' in s || 'matchExpressions' in s;
  const matchLabels = isStructured ? s.matchLabels ?? {} : (selector as Record<string, string>);
  if (Object.keys(matchLabels).length === 0 && (!isStructured || (s.matchExpressions ?? []).length === 0)) return false;
  if (!Object.entries(matchLabels).every(([k, v]) => labels[k] === v)) return false;
  return (isStructured ? s.matchExpressions ?? [] : []).every((e) => {
    const has = e.key in labels;
    switch (e.operator) {
      case 'In':
        return has && (e.values ?? []).includes(labels[e.key]!);
      case 'NotIn':
        return !has || !(e.values ?? []).includes(labels[e.key]!);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
      default:
        return false;
    }
  });
}

/** The Secrets (or ConfigMaps) of a list of objects, by name: their keys and decoded contents. */
export function dataByName(objects: readonly KubeObject[], kind: 'Secret' | 'ConfigMap'): Map<string, Map<string, string>> {
  const found = new Map<string, Map<string, string>>();
  for (const o of objects.filter((x) => x.kind === kind)) {
    const data = new Map<string, string>();
    for (const [k, v] of Object.entries((o.data as Record<string, string> | undefined) ?? {})) data.set(k, kind === 'Secret' ? Buffer.from(v, 'base64').toString('utf8') : v);
    for (const [k, v] of Object.entries((o.stringData as Record<string, string> | undefined) ?? {})) data.set(k, v);
    found.set(o.metadata.name, data);
  }
  return found;
}

/**
 * `--flag=value` and `--flag value` of an argument list, as the CLI reads them; a flag given twice
 * keeps its last value (commander's rule).
 */
export function flagValues(args: readonly string[]): Map<string, string | true> {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    if (eq > 0) flags.set(arg.slice(0, eq), arg.slice(eq + 1));
    else if (i + 1 < args.length && !args[i + 1]!.startsWith('--')) flags.set(arg, args[++i]!);
    else flags.set(arg, true);
  }
  return flags;
}

/** The port of `host:port` (IPv6 in brackets too), or null. */
export function portOf(address: string): number | null {
  const match = /:(\d+)$/.exec(address);
  return match === null ? null : Number(match[1]);
}
