/**
 * deploy/kubernetes/ without a Kubernetes cluster: every overlay rendered by `kubectl kustomize`, each
 * object checked against Kubernetes' and KEDA's schemas offline (test/support/kubernetes-manifests.ts
 * says how), then what a schema cannot see: the flags the containers pass are the CLI's, the ports the
 * probes and Services use are the ones the processes listen on, the Secrets and files they mount are
 * the ones deploy/kubernetes/make-secrets.sh makes, the PodDisruptionBudget and the autoscalers aim at
 * the workers. Last, the rendered NATS, coordinator and worker containers are started here as
 * processes, with their own arguments, environment and the files make-secrets.sh made, and a client
 * certificate submits a run through them.
 *
 * kubectl (with its built-in kustomize) renders the overlays; without it those tests skip, saying so.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { buildCoordinatorCommand } from '../cli/coordinator-command.js';
import { buildWorkerCommand } from '../cli/worker-command.js';
import { closeNats, connectNats } from '../cluster/nats-connection.js';
import { repoRoot } from './support/repo-root.js';
import {
  dataByName,
  fieldProblems,
  findExecutable,
  flagValues,
  nameOf,
  parseObjects,
  portOf,
  renderKustomization,
  schemaProblems,
  selects,
  workloads,
  type Container,
  type KubeObject,
  type PodSpec,
  type Selector,
  type Volume,
  type Workload,
} from './support/kubernetes-manifests.js';

const ROOT = repoRoot();
const K8S = join(ROOT, 'deploy', 'kubernetes');
const OVERLAYS = ['cpu', 'gpu', 'gpu-keda', 'gpu-hpa'] as const;
const KUBECTL = findExecutable('kubectl');
const NO_KUBECTL = 'kubectl is not installed here: the overlays cannot be rendered (kubectl kustomize), so they are not checked';
const NATS_SERVER = findExecutable('nats-server', ['/usr/sbin/nats-server', '/usr/local/bin/nats-server']);

/** The evosearch subcommands the containers run, as the CLI defines them (its commander definitions). */
const COMMANDS: Record<string, () => Command> = { coordinator: buildCoordinatorCommand, worker: buildWorkerCommand };

/** The gauge the autoscalers read (metrics/coordinator-metrics.ts). */
const WORKERS_WANTED = 'evosearch_coordinator_workers_wanted';

/** One overlay, rendered, with what the checks look up in it. */
interface Render {
  readonly overlay: string;
  readonly objects: KubeObject[];
  /** The one Namespace object's name, which every namespaced object must carry. */
  readonly namespace: string;
  readonly configMaps: Map<string, Map<string, string>>;
}

/** What make-secrets.sh made (into a temporary folder), parsed: its secrets.yaml and its files. */
interface MadeSecrets {
  readonly dir: string;
  readonly objects: KubeObject[];
  readonly secrets: Map<string, Map<string, string>>;
}

let renders: Render[] = [];
let made: MadeSecrets | null = null;
let secretsDir: string | null = null;

// ---- the checks: each lists what is wrong with a render --------------------------------------------

/** The evosearch containers of a render: those whose first argument is one of COMMANDS. */
function evosearchContainers(objects: readonly KubeObject[]): { workload: Workload; container: Container; command: string }[] {
  return workloads(objects).flatMap((workload) =>
    workload.pod.containers.filter((c) => (c.image ?? '').includes('evosearch')).map((container) => ({ workload, container, command: container.args?.[0] ?? '' })),
  );
}

/** A Kubernetes CPU quantity rounded up to whole cores, as a resourceFieldRef with divisor 1 gives it. */
function wholeCores(quantity: string | number | undefined): number | null {
  if (quantity === undefined) return null;
  const text = String(quantity);
  const cores = text.endsWith('m') ? Number(text.slice(0, -1)) / 1000 : Number(text);
  return Number.isFinite(cores) ? Math.ceil(cores) : null;
}

/**
 * What each `$(VAR)` of a container's arguments becomes: the container's own environment, resolved
 * from the render (ConfigMaps) and sample values for what only a running pod knows. A variable the
 * container does not define is left as written by Kubernetes, so it is a problem.
 */
function environmentOf(container: Container, render: Pick<Render, 'namespace' | 'configMaps'>, secrets: Map<string, Map<string, string>> | null, pod: { ip: string; name: string }): Map<string, string> {
  const env = new Map<string, string>();
  for (const from of container.envFrom ?? []) {
    if (from.secretRef !== undefined) for (const [k, v] of secrets?.get(from.secretRef.name) ?? []) env.set(k, v);
    if (from.configMapRef !== undefined) for (const [k, v] of render.configMaps.get(from.configMapRef.name) ?? []) env.set(k, v);
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env.set(e.name, e.value);
    const from = e.valueFrom ?? {};
    if (from.fieldRef !== undefined) {
      const field = from.fieldRef.fieldPath;
      env.set(e.name, field === 'status.podIP' ? pod.ip : field === 'metadata.namespace' ? render.namespace : field === 'metadata.name' ? pod.name : `<${field}>`);
    }
    if (from.resourceFieldRef !== undefined) {
      const [kind, resource] = from.resourceFieldRef.resource!.split('.') as ['limits' | 'requests', string];
      const cores = resource === 'cpu' ? wholeCores(container.resources?.[kind]?.[resource]) : null;
      env.set(e.name, cores === null ? `<${from.resourceFieldRef.resource}>` : String(cores));
    }
    if (from.configMapKeyRef !== undefined) {
      // The schema leaves name optional (the empty default ConfigMap's): no name finds nothing.
      const value = render.configMaps.get(from.configMapKeyRef.name ?? '')?.get(from.configMapKeyRef.key ?? '');
      if (value !== undefined) env.set(e.name, value);
    }
    if (from.secretKeyRef !== undefined) {
      const value = secrets?.get(from.secretKeyRef.name ?? '')?.get(from.secretKeyRef.key ?? '');
      env.set(e.name, value ?? '<secret>');
    }
  }
  return env;
}

const SAMPLE_POD = { ip: '10.1.2.3', name: 'evosearch-worker-5f9c7-abcde' };

/** The container's arguments with `$(VAR)` replaced; `undefinedVars` collects what is not defined. */
function expandArgs(args: readonly string[], env: Map<string, string>, undefinedVars: string[] = []): string[] {
  return args.map((arg) =>
    arg.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => {
      const value = env.get(name);
      if (value === undefined) {
        undefinedVars.push(name);
        return whole;
      }
      return value;
    }),
  );
}

/** The flags of a command that the CLI defines, long names (negations included). */
function cliFlags(command: Command): Set<string> {
  return new Set(command.options.map((o) => o.long).filter((l): l is string => l !== undefined));
}

/**
 * The arguments of every evosearch container, parsed by the CLI's own commander definition (without
 * running it): an unknown flag, a value the flag refuses (its choices), a flag without its value, a
 * required flag missing, a `$(VAR)` the container does not define, are each a problem.
 */
function cliProblems(render: Render): string[] {
  const problems: string[] = [];
  for (const { workload, container, command } of evosearchContainers(render.objects)) {
    const where = `${nameOf(workload.object)} container ${container.name}`;
    const build = COMMANDS[command];
    if (build === undefined) {
      problems.push(`${where}: runs '${command}', not one of the evosearch commands ${Object.keys(COMMANDS).join(', ')}`);
      continue;
    }
    const undefinedVars: string[] = [];
    const args = expandArgs(container.args!.slice(1), environmentOf(container, render, null, SAMPLE_POD), undefinedVars);
    for (const name of undefinedVars) problems.push(`${where}: $(${name}) is not in the container's environment, so Kubernetes passes it as written`);
    const cli = build();
    const known = cliFlags(cli);
    for (const arg of args) {
      // One style, so that a value is never taken for a flag or the reverse: --flag=value.
      if (!arg.startsWith('--')) problems.push(`${where}: argument '${arg}' is not a --flag (write values as --flag=value)`);
    }
    cli.exitOverride();
    cli.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    try {
      const { operands, unknown } = cli.parseOptions(args);
      if (unknown.length > 0) problems.push(`${where}: \`evosearch ${command}\` has no flag ${unknown[0]} (its flags: ${[...known].join(' ')})`);
      if (operands.length > 0) problems.push(`${where}: \`evosearch ${command}\` takes no argument '${operands[0]}'`);
    } catch (error) {
      problems.push(`${where}: \`evosearch ${command}\` refuses its arguments: ${(error as Error).message}`);
    }
    for (const option of cli.options.filter((o) => o.mandatory)) {
      if (cli.getOptionValue(option.attributeName()) === undefined) problems.push(`${where}: \`evosearch ${command}\` needs ${option.long}`);
    }
  }
  return problems;
}

/** A container port by name or number, or null. */
function containerPort(container: Container, port: number | string): number | null {
  if (typeof port === 'number') return (container.ports ?? []).some((p) => p.containerPort === port) ? port : null;
  return (container.ports ?? []).find((p) => p.name === port)?.containerPort ?? null;
}

/** The probes of a container, by kind. */
function probes(container: Container): [string, { httpGet?: { path?: string; port: number | string } }][] {
  return (['startupProbe', 'livenessProbe', 'readinessProbe'] as const).flatMap((kind) => (container[kind] === undefined ? [] : [[kind, container[kind]!] as [string, { httpGet?: { path?: string; port: number | string } }]]));
}

/** A nats-server configuration's top-level `key: value` (or `key = value`). */
function natsSetting(config: string, key: string): string | null {
  const match = new RegExp(`^\\s*${key}\\s*[:=]\\s*("?)([^"\\s#]+)\\1`, 'm').exec(config);
  return match === null ? null : match[2]!;
}

/** The NATS server's configuration text of a render (the ConfigMap its StatefulSet mounts), joined. */
function natsConfigOf(render: Render): { container: Container; workload: Workload; files: Map<string, string> } | null {
  const workload = workloads(render.objects).find((w) => w.pod.containers.some((c) => c.command?.[0] === 'nats-server'));
  if (workload === undefined) return null;
  const container = workload.pod.containers.find((c) => c.command?.[0] === 'nats-server')!;
  const volume = (workload.pod.volumes ?? []).find((v) => v.configMap !== undefined);
  return { container, workload, files: render.configMaps.get(volume?.configMap?.name ?? '') ?? new Map() };
}

/**
 * Ports: what the probes, Services, annotations and advertised addresses name is what the processes
 * listen on (--listen, --metrics-listen; nats.conf's port and http_port), and a listener the kubelet
 * or another pod reaches listens on every address of the pod (0.0.0.0), not loopback.
 */
function portProblems(render: Render): string[] {
  const problems: string[] = [];
  for (const { workload, container, command } of evosearchContainers(render.objects)) {
    const where = `${nameOf(workload.object)} container ${container.name}`;
    const flags = flagValues(expandArgs(container.args ?? [], environmentOf(container, render, null, SAMPLE_POD)));
    const listen = flags.get('--listen');
    const metricsListen = flags.get('--metrics-listen');
    const advertise = flags.get('--advertise');
    if (typeof listen !== 'string' || !listen.startsWith('0.0.0.0:')) problems.push(`${where}: --listen ${String(listen)} is not 0.0.0.0:PORT, so other pods cannot reach it`);
    if (typeof metricsListen !== 'string' || !metricsListen.startsWith('0.0.0.0:')) problems.push(`${where}: --metrics-listen ${String(metricsListen)} is not 0.0.0.0:PORT, so the kubelet's probes cannot reach it`);
    const grpcPort = typeof listen === 'string' ? portOf(listen) : null;
    const metricsPort = typeof metricsListen === 'string' ? portOf(metricsListen) : null;
    if (containerPort(container, 'grpc') !== grpcPort) problems.push(`${where}: its port 'grpc' is ${containerPort(container, 'grpc')}, --listen's is ${grpcPort}`);
    if (containerPort(container, 'metrics') !== metricsPort) problems.push(`${where}: its port 'metrics' is ${containerPort(container, 'metrics')}, --metrics-listen's is ${metricsPort}`);
    if (typeof advertise !== 'string' || portOf(advertise) !== grpcPort) problems.push(`${where}: --advertise ${String(advertise)} is not at --listen's port ${grpcPort}`);
    if (command === 'worker' && advertise !== `${SAMPLE_POD.ip}:${grpcPort}`) problems.push(`${where}: --advertise ${String(advertise)} is not the pod's IP (status.podIP) at port ${grpcPort}: the coordinator dials what the worker advertises`);
    for (const [kind, probe] of probes(container)) {
      if (probe.httpGet === undefined) {
        problems.push(`${where}: its ${kind} is not an HTTP probe of the metrics port`);
        continue;
      }
      const port = containerPort(container, probe.httpGet.port);
      if (port === null || port !== metricsPort) problems.push(`${where}: its ${kind} probes port ${probe.httpGet.port} (${port}), not --metrics-listen's ${metricsPort}`);
      const wanted = kind === 'readinessProbe' ? '/readyz' : '/livez';
      if (probe.httpGet.path !== wanted) problems.push(`${where}: its ${kind} asks for ${probe.httpGet.path}, not ${wanted}`);
    }
    if (probes(container).length < 2) problems.push(`${where}: needs a liveness and a readiness probe`);
    const annotated = (workload.object.spec as { template: { metadata?: { annotations?: Record<string, string> } } }).template.metadata?.annotations?.['prometheus.io/port'];
    if (annotated !== undefined && Number(annotated) !== metricsPort) problems.push(`${where}: prometheus.io/port says ${annotated}, --metrics-listen's port is ${metricsPort}`);
  }
  const nats = natsConfigOf(render);
  if (nats === null) problems.push('no nats-server container');
  else {
    const config = nats.files.get('nats.conf') ?? '';
    const where = `${nameOf(nats.workload.object)} container ${nats.container.name}`;
    if (containerPort(nats.container, 'client') !== Number(natsSetting(config, 'port'))) problems.push(`${where}: its port 'client' is not nats.conf's port ${natsSetting(config, 'port')}`);
    if (containerPort(nats.container, 'monitor') !== Number(natsSetting(config, 'http_port'))) problems.push(`${where}: its port 'monitor' is not nats.conf's http_port ${natsSetting(config, 'http_port')}`);
    for (const [kind, probe] of probes(nats.container)) {
      if (probe.httpGet === undefined || containerPort(nats.container, probe.httpGet.port) !== Number(natsSetting(config, 'http_port'))) problems.push(`${where}: its ${kind} is not on the monitoring port`);
    }
  }
  // A Service reaches pods through the labels of their templates and a port they declare.
  for (const service of render.objects.filter((o) => o.kind === 'Service')) {
    const spec = service.spec as { selector?: Record<string, string>; ports: { name?: string; port: number; targetPort?: number | string }[] };
    const selected = workloads(render.objects).filter((w) => spec.selector !== undefined && selects(spec.selector, w.labels));
    if (selected.length === 0) problems.push(`${nameOf(service)}: selects no pod of the render`);
    for (const port of spec.ports) {
      for (const w of selected) {
        if (!w.pod.containers.some((c) => containerPort(c, port.targetPort ?? port.port) !== null)) problems.push(`${nameOf(service)}: port ${port.name ?? port.port} targets ${port.targetPort ?? port.port}, which ${nameOf(w.object)} does not declare`);
      }
    }
  }
  for (const monitor of render.objects.filter((o) => o.kind === 'ServiceMonitor')) {
    const spec = monitor.spec as { selector: { matchLabels?: Record<string, string> }; endpoints: { port?: string }[] };
    const services = render.objects.filter((o) => o.kind === 'Service' && selects(spec.selector, o.metadata.labels ?? {}));
    for (const endpoint of spec.endpoints) {
      const with_ = services.filter((s) => (s.spec as { ports: { name?: string }[] }).ports.some((p) => p.name === endpoint.port));
      if (with_.length === 0) problems.push(`${nameOf(monitor)}: no Service it selects has a port named ${endpoint.port}`);
    }
    const coordinatorScraped = services.some((s) => selects((s.spec as { selector: Record<string, string> }).selector, evosearchContainers(render.objects).find((c) => c.command === 'coordinator')?.workload.labels ?? {}));
    if (!coordinatorScraped) problems.push(`${nameOf(monitor)}: does not scrape the coordinator, whose /metrics the autoscalers read`);
  }
  return problems;
}

/** The Secrets a render's pods reference: by volume (and its items), environment variable, envFrom. */
function secretReferences(render: Render): { where: string; name: string; keys: string[]; mode?: number }[] {
  const refs: { where: string; name: string; keys: string[]; mode?: number }[] = [];
  for (const w of workloads(render.objects)) {
    for (const v of w.pod.volumes ?? []) {
      if (v.secret !== undefined) refs.push({ where: `${nameOf(w.object)} volume ${v.name}`, name: v.secret.secretName, keys: (v.secret.items ?? []).map((i) => i.key), ...(v.secret.defaultMode !== undefined ? { mode: v.secret.defaultMode } : {}) });
    }
    for (const c of w.pod.containers) {
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref !== undefined) refs.push({ where: `${nameOf(w.object)} env ${e.name}`, name: ref.name!, keys: [ref.key!] });
      }
      for (const from of c.envFrom ?? []) if (from.secretRef !== undefined) refs.push({ where: `${nameOf(w.object)} envFrom`, name: from.secretRef.name, keys: [] });
    }
  }
  return refs;
}

/**
 * Secrets: every one a pod needs is one make-secrets.sh makes, with the keys it is asked for; none is
 * in the render itself (no secret value is committed); a mounted key is not readable by others.
 */
function secretProblems(render: Render, secrets: Map<string, Map<string, string>>): string[] {
  const problems: string[] = [];
  for (const o of render.objects.filter((x) => x.kind === 'Secret')) problems.push(`${nameOf(o)}: a Secret in the manifests; secrets come from make-secrets.sh, never from the repository`);
  for (const ref of secretReferences(render)) {
    const made = secrets.get(ref.name);
    if (made === undefined) {
      problems.push(`${ref.where}: Secret ${ref.name} is not one make-secrets.sh makes (it makes ${[...secrets.keys()].join(', ')})`);
      continue;
    }
    for (const key of ref.keys) if (!made.has(key)) problems.push(`${ref.where}: Secret ${ref.name} has no key ${key} (it has ${[...made.keys()].join(', ')})`);
    if (ref.mode !== undefined && (ref.mode & 0o007) !== 0) problems.push(`${ref.where}: Secret ${ref.name} is mounted mode 0${ref.mode.toString(8)}, readable by every user of the container`);
  }
  return problems;
}

/** The volume mounted at the longest mount path that holds `path`, and the rest of the path. */
function mountOf(container: Container, pod: PodSpec & { claims?: string[] }, path: string): { mount: NonNullable<Container['volumeMounts']>[number]; volume: Volume | undefined; rest: string } | null {
  const mounts = (container.volumeMounts ?? []).filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  if (mounts.length === 0) return null;
  const mount = mounts.sort((a, b) => b.mountPath.length - a.mountPath.length)[0]!;
  return { mount, volume: (pod.volumes ?? []).find((v) => v.name === mount.name), rest: path.slice(mount.mountPath.replace(/\/$/, '').length + 1) };
}

/** The files a container is told about: evosearch's absolute-path flag values, nats-server's config paths. */
function filesNamed(render: Render, container: Container): { what: string; path: string; writes: boolean }[] {
  if (container.command?.[0] === 'nats-server') {
    const files: { what: string; path: string; writes: boolean }[] = [];
    const config = flagValues(container.args ?? []).get('--config');
    if (typeof config === 'string') files.push({ what: '--config', path: config, writes: false });
    const text = natsConfigOf(render)?.files.get('nats.conf') ?? '';
    for (const key of ['cert_file', 'key_file', 'ca_file']) {
      const value = natsSetting(text, key);
      if (value !== null) files.push({ what: `nats.conf ${key}`, path: value, writes: false });
    }
    const store = natsSetting(text, 'store_dir');
    if (store !== null) files.push({ what: 'nats.conf store_dir', path: store, writes: true });
    for (const match of text.matchAll(/^\s*include\s+("?)([^"\s]+)\1/gm)) {
      if (typeof config === 'string') files.push({ what: 'nats.conf include', path: join(dirname(config), match[2]!), writes: false });
    }
    return files;
  }
  if (!(container.args?.[0] ?? '') .match(/^(coordinator|worker)$/)) {
    // Another program (an init container): the absolute paths of its command line.
    return [...(container.command ?? []), ...(container.args ?? [])].filter((a) => a.startsWith('/')).map((path) => ({ what: 'its command', path, writes: false }));
  }
  const writing = new Set(['--runs-dir', '--state-dir']);
  const flags = flagValues(expandArgs(container.args ?? [], environmentOf(container, render, null, SAMPLE_POD)));
  return [...flags].filter(([, v]) => typeof v === 'string' && v.startsWith('/')).map(([flag, v]) => ({ what: flag, path: v as string, writes: writing.has(flag) }));
}

/**
 * Files: every path a container is given lies on a volume it mounts (the root file system is
 * read-only); a file of a Secret or ConfigMap volume is one of its keys; a folder it writes is on a
 * writable volume.
 */
function pathProblems(render: Render, secrets: Map<string, Map<string, string>>): string[] {
  const problems: string[] = [];
  for (const w of workloads(render.objects)) {
    const claims = ((w.object.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] }).volumeClaimTemplates ?? []).map((t) => t.metadata.name);
    for (const c of [...(w.pod.initContainers ?? []), ...w.pod.containers]) {
      for (const file of filesNamed(render, c)) {
        const where = `${nameOf(w.object)} container ${c.name}: ${file.what} ${file.path}`;
        const found = mountOf(c, w.pod, file.path);
        if (found === null) {
          problems.push(`${where} is on no volume (the root file system is read-only)`);
          continue;
        }
        if (found.volume === undefined && !claims.includes(found.mount.name)) problems.push(`${where}: the mount ${found.mount.name} has no volume`);
        const keys = found.volume?.secret !== undefined ? secrets.get(found.volume.secret.secretName) : found.volume?.configMap !== undefined ? render.configMaps.get(found.volume.configMap.name) : undefined;
        if (keys !== undefined && !keys.has(found.rest)) problems.push(`${where}: ${found.volume!.secret !== undefined ? 'Secret' : 'ConfigMap'} ${found.volume!.secret?.secretName ?? found.volume!.configMap?.name} has no key ${found.rest} (it has ${[...keys.keys()].join(', ')})`);
        if (file.writes && (found.mount.readOnly === true || found.volume?.secret !== undefined || found.volume?.configMap !== undefined)) problems.push(`${where}: written to, but mounted read-only`);
      }
    }
  }
  // nats-server reads $NAME from its environment when its configuration does not define NAME.
  const nats = natsConfigOf(render);
  if (nats !== null) {
    // Outside quoted strings and comments ("$JS.API.INFO" is a subject, not a variable).
    const text = [...nats.files.values()].join('\n').replace(/"[^"\n]*"/g, '""').replace(/#.*$/gm, '');
    const defined = new Set([...text.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/gm)].map((m) => m[1]!));
    const env = environmentOf(nats.container, render, secrets, { ip: SAMPLE_POD.ip, name: 'evosearch-nats-0' });
    for (const [, name] of text.matchAll(/\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
      if (!defined.has(name!) && !env.has(name!)) problems.push(`${nameOf(nats.workload.object)}: its configuration reads $${name} from the environment, which the container does not set`);
    }
  }
  return problems;
}

/**
 * Whether the pod holds `container` until the NATS it connects to answers: an init container running
 * the wait script with that URL (a worker that finds no NATS at start never exits: wait-for-nats.cjs).
 */
function waitsForNats(workload: Workload, container: Container): string | null {
  const url = flagValues(container.args ?? []).get('--nats');
  const init = (workload.pod.initContainers ?? []).find((c) => (c.command ?? []).some((a) => a.endsWith('/wait-for-nats.cjs')));
  if (init === undefined) return `${nameOf(workload.object)}: no init container waits for NATS, and a worker that finds none at start stays up unregistered`;
  if (init.args?.[0] !== url) return `${nameOf(workload.object)}: its init container waits for ${init.args?.[0]}, the container connects to ${String(url)}`;
  if (init.image !== container.image) return `${nameOf(workload.object)}: its init container runs ${init.image}, another image to pull than ${container.image}`;
  return null;
}

/** The worker Deployment of a render: the workload whose evosearch container runs `worker`. */
function workerWorkload(render: Render): Workload | undefined {
  return evosearchContainers(render.objects).find((c) => c.command === 'worker')?.workload;
}

/**
 * The workers: the PodDisruptionBudget selects them (and nothing else), SIGTERM's drain fits the grace
 * period, node is not PID 1, the pod IP is what they advertise, the GPU comes from the device plugin.
 */
function workerProblems(render: Render): string[] {
  const problems: string[] = [];
  const worker = workerWorkload(render);
  if (worker === undefined) return ['no worker Deployment'];
  const container = worker.pod.containers.find((c) => c.args?.[0] === 'worker')!;
  const flags = flagValues(container.args ?? []);
  const pdbs = render.objects.filter((o) => o.kind === 'PodDisruptionBudget');
  const selectorOf = (p: KubeObject) => (p.spec as { selector: Selector }).selector;
  const covering = pdbs.filter((p) => selects(selectorOf(p), worker.labels));
  if (covering.length !== 1) problems.push(`${covering.length} PodDisruptionBudgets select the worker pods (${nameOf(worker.object)}); one should`);
  for (const p of covering) {
    for (const other of workloads(render.objects).filter((w) => w.object !== worker.object)) {
      if (selects(selectorOf(p), other.labels)) problems.push(`${nameOf(p)}: selects ${nameOf(other.object)} too`);
    }
    const spec = p.spec as { maxUnavailable?: number | string; minAvailable?: number | string };
    if (spec.maxUnavailable === undefined || spec.maxUnavailable === 0 || spec.maxUnavailable === '0%') problems.push(`${nameOf(p)}: no maxUnavailable above 0: a single worker would block every node drain`);
  }
  const drain = typeof flags.get('--drain-timeout') === 'string' ? Number(flags.get('--drain-timeout')) : 5;
  const grace = worker.pod.terminationGracePeriodSeconds ?? 30;
  if (grace < drain + 10) problems.push(`${nameOf(worker.object)}: terminationGracePeriodSeconds ${grace} leaves less than 10 s past --drain-timeout ${drain} to deregister and close`);
  if (worker.pod.shareProcessNamespace !== true) problems.push(`${nameOf(worker.object)}: shareProcessNamespace is not true, so node is PID 1 and ignores the signals the worker re-raises to end itself`);
  const podIp = (container.env ?? []).find((e) => e.valueFrom?.fieldRef?.fieldPath === 'status.podIP');
  if (podIp === undefined || flags.get('--advertise') !== `$(${podIp.name}):${portOf(String(flags.get('--listen')))}`) problems.push(`${nameOf(worker.object)}: --advertise is not $(POD_IP):<--listen's port> with POD_IP from status.podIP`);
  for (const name of ['CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES']) {
    if ((container.env ?? []).some((e) => e.name === name)) problems.push(`${nameOf(worker.object)}: sets ${name}; the NVIDIA device plugin chooses the GPU`);
  }
  if (flags.has('--cuda-device')) problems.push(`${nameOf(worker.object)}: --cuda-device names a GPU; the one the device plugin gives is device 0`);
  const gpus = [container.resources?.requests?.['nvidia.com/gpu'], container.resources?.limits?.['nvidia.com/gpu']];
  const cuda = String(flags.get('--providers') ?? '').split(',').includes('cuda');
  if (gpus.some((g) => g !== undefined)) {
    if (!gpus.every((g) => Number(g) === 1)) problems.push(`${nameOf(worker.object)}: nvidia.com/gpu requests ${gpus[0]} and limits ${gpus[1]}; each worker takes one GPU (both 1)`);
    if (!cuda) problems.push(`${nameOf(worker.object)}: has a GPU but no --providers=cuda`);
    if (!(container.image ?? '').includes('cuda')) problems.push(`${nameOf(worker.object)}: has a GPU but runs ${container.image}, not the CUDA image`);
  } else if (cuda) problems.push(`${nameOf(worker.object)}: --providers ${flags.get('--providers')} without a GPU (nvidia.com/gpu)`);
  const waits = waitsForNats(worker, container);
  if (waits !== null) problems.push(waits);
  const threads = flags.get('--threads');
  const cpuLimit = (container.env ?? []).find((e) => e.valueFrom?.resourceFieldRef?.resource === 'limits.cpu');
  if (threads !== `$(${cpuLimit?.name})` || container.resources?.limits?.cpu === undefined) problems.push(`${nameOf(worker.object)}: --threads is not the container's CPU limit (os.cpus() inside a container counts the node's cores)`);
  return problems;
}

/** The coordinator: one, replaced only after the old one is gone, with a host name its locks keep. */
function coordinatorProblems(render: Render): string[] {
  const found = evosearchContainers(render.objects).find((c) => c.command === 'coordinator');
  if (found === undefined) return ['no coordinator'];
  const { workload, container } = found;
  const problems: string[] = [];
  const spec = workload.object.spec as { replicas?: number; strategy?: { type?: string } };
  if (workload.object.kind === 'Deployment') {
    if (spec.replicas !== 1) problems.push(`${nameOf(workload.object)}: replicas ${spec.replicas}; one coordinator owns the runs folder`);
    if (spec.strategy?.type !== 'Recreate') problems.push(`${nameOf(workload.object)}: strategy ${spec.strategy?.type ?? 'RollingUpdate'}; a rolling update runs two coordinators on one runs folder`);
  }
  if (workload.pod.hostname === undefined) problems.push(`${nameOf(workload.object)}: no fixed hostname; a run folder lock names its host, and a lock of another host is never taken over`);
  const waits = waitsForNats(workload, container);
  if (waits !== null) problems.push(waits);
  const runsDir = flagValues(container.args ?? []).get('--runs-dir');
  const mount = typeof runsDir === 'string' ? mountOf(container, workload.pod, runsDir) : null;
  if (mount?.volume?.persistentVolumeClaim === undefined) problems.push(`${nameOf(workload.object)}: --runs-dir ${String(runsDir)} is not on a PersistentVolumeClaim: the runs would go with the pod`);
  return problems;
}

/** Every pod non-root; every container without privilege escalation, capabilities or a writable root. */
function securityProblems(render: Render): string[] {
  const problems: string[] = [];
  for (const w of workloads(render.objects)) {
    if (w.pod.securityContext?.runAsNonRoot !== true) problems.push(`${nameOf(w.object)}: runAsNonRoot is not true`);
    if (w.pod.automountServiceAccountToken !== false) problems.push(`${nameOf(w.object)}: mounts a service account token it never uses`);
    for (const c of [...(w.pod.initContainers ?? []), ...w.pod.containers]) {
      const s = c.securityContext ?? {};
      if (s.allowPrivilegeEscalation !== false) problems.push(`${nameOf(w.object)} container ${c.name}: allowPrivilegeEscalation is not false`);
      if (s.readOnlyRootFilesystem !== true) problems.push(`${nameOf(w.object)} container ${c.name}: the root file system is writable`);
      if (!(s.capabilities?.drop ?? []).includes('ALL')) problems.push(`${nameOf(w.object)} container ${c.name}: does not drop ALL capabilities`);
    }
  }
  return problems;
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass', 'CustomResourceDefinition', 'PriorityClass', 'RuntimeClass']);

/** One Namespace, and every namespaced object in it (kubectl apply puts one without it in the context's namespace). */
function namespaceProblems(render: Render): string[] {
  const namespaces = render.objects.filter((o) => o.kind === 'Namespace');
  if (namespaces.length !== 1) return [`${namespaces.length} Namespace objects; one should hold the cluster`];
  return render.objects.filter((o) => !CLUSTER_SCOPED.has(o.kind) && o.metadata.namespace !== render.namespace).map((o) => `${nameOf(o)}: in namespace ${o.metadata.namespace ?? '(none: the context\'s)'}, not ${render.namespace}`);
}

/**
 * The autoscalers: at most one, aimed at the worker Deployment, never below one worker, reading the
 * coordinator's metric in this namespace; KEDA's with a fallback (which KEDA applies to AverageValue
 * metrics only); the Deployment leaves its replica count to it.
 */
function autoscalerProblems(render: Render): string[] {
  const problems: string[] = [];
  const worker = workerWorkload(render);
  const scaled = render.objects.filter((o) => o.kind === 'ScaledObject');
  const hpas = render.objects.filter((o) => o.kind === 'HorizontalPodAutoscaler');
  if (scaled.length + hpas.length > 1) problems.push(`${scaled.length} ScaledObjects and ${hpas.length} HorizontalPodAutoscalers: each makes an HPA, and two fight over the replica count`);
  const aims = (o: KubeObject, ref: { apiVersion?: string; kind?: string; name: string }) => {
    if ((ref.kind ?? 'Deployment') !== 'Deployment' || ref.name !== worker?.object.metadata.name || (ref.apiVersion ?? 'apps/v1') !== 'apps/v1') problems.push(`${nameOf(o)}: scales ${ref.kind ?? 'Deployment'}/${ref.name}, not the worker Deployment ${worker === undefined ? '(none)' : nameOf(worker.object)}`);
  };
  for (const o of scaled) {
    const spec = o.spec as { scaleTargetRef: { apiVersion?: string; kind?: string; name: string }; minReplicaCount?: number; fallback?: { failureThreshold?: number; replicas?: number }; triggers: { type: string; metricType?: string; metadata: Record<string, string> }[] };
    aims(o, spec.scaleTargetRef);
    if ((spec.minReplicaCount ?? 0) < 1) problems.push(`${nameOf(o)}: minReplicaCount ${spec.minReplicaCount ?? '0 (the default)'}: a run submitted then would have no worker`);
    if (spec.fallback === undefined || !((spec.fallback.failureThreshold ?? 0) >= 1 && (spec.fallback.replicas ?? 0) >= 1)) problems.push(`${nameOf(o)}: no fallback (failureThreshold and replicas ≥ 1): an unreadable metric would leave the count where it was`);
    for (const trigger of spec.triggers) {
      if (spec.fallback !== undefined && (trigger.metricType ?? 'AverageValue') !== 'AverageValue') problems.push(`${nameOf(o)}: trigger ${trigger.type} is ${trigger.metricType}; KEDA applies a fallback to AverageValue metrics only`);
      if (trigger.type === 'prometheus') {
        const query = trigger.metadata.query ?? '';
        if (!query.includes(WORKERS_WANTED)) problems.push(`${nameOf(o)}: its query does not read ${WORKERS_WANTED}`);
        if (!query.includes(`namespace="${render.namespace}"`)) problems.push(`${nameOf(o)}: its query does not select namespace="${render.namespace}", the manifests' namespace`);
        if (!(Number(trigger.metadata.threshold) > 0)) problems.push(`${nameOf(o)}: threshold ${trigger.metadata.threshold} is not a positive number`);
        if (trigger.metadata.ignoreNullValues !== 'false') problems.push(`${nameOf(o)}: ignoreNullValues is not "false": a missing series would read as 0 and scale the workers down instead of falling back`);
        for (const key of ['serverAddress', 'query', 'threshold']) if (trigger.metadata[key] === undefined) problems.push(`${nameOf(o)}: the prometheus trigger has no ${key}`);
      }
    }
  }
  for (const o of hpas) {
    const spec = o.spec as { scaleTargetRef: { apiVersion?: string; kind: string; name: string }; minReplicas?: number; metrics?: { type: string; external?: { metric: { name: string } } }[] };
    aims(o, spec.scaleTargetRef);
    if ((spec.minReplicas ?? 1) < 1) problems.push(`${nameOf(o)}: minReplicas ${spec.minReplicas}`);
    if (!(spec.metrics ?? []).some((m) => m.external?.metric.name === WORKERS_WANTED)) problems.push(`${nameOf(o)}: reads no external metric ${WORKERS_WANTED}`);
  }
  if (scaled.length + hpas.length > 0 && worker !== undefined && (worker.object.spec as { replicas?: number }).replicas !== undefined) {
    problems.push(`${nameOf(worker.object)}: sets replicas although an autoscaler owns the count (every kubectl apply would reset it)`);
  }
  return problems;
}

const CHECKS: Record<string, (render: Render, secrets: Map<string, Map<string, string>>, notes: Set<string>) => string[]> = {
  'the containers\' arguments are flags of the evosearch CLI': (r) => cliProblems(r),
  'probes, Services and advertised addresses use the ports the processes listen on': (r) => portProblems(r),
  'every Secret a pod uses is one make-secrets.sh makes, with its keys': (r, s) => secretProblems(r, s),
  'every file a container is given is on a volume it mounts': (r, s) => pathProblems(r, s),
  'the workers: PDB, drain, pod IP, GPU': (r) => workerProblems(r),
  'the coordinator: one, Recreate, a fixed host name, runs on a volume': (r) => coordinatorProblems(r),
  'every container is non-root with a read-only root and no capabilities': (r) => securityProblems(r),
  'every object is in the manifests\' namespace': (r) => namespaceProblems(r),
  'the autoscaler targets the worker Deployment, at least one worker, with a fallback': (r) => autoscalerProblems(r),
};

// ---- running them --------------------------------------------------------------------------------

function renderOf(overlay: string, objects: KubeObject[]): Render {
  const namespace = objects.find((o) => o.kind === 'Namespace')?.metadata.name ?? '(none)';
  return { overlay, objects, namespace, configMaps: dataByName(objects, 'ConfigMap') };
}

function skipWithoutKubectl(t: TestContext): boolean {
  if (KUBECTL !== null) return false;
  t.skip(NO_KUBECTL);
  return true;
}

describe('deploy/kubernetes', () => {
  before(async () => {
    if (KUBECTL === null) return;
    renders = await Promise.all(OVERLAYS.map(async (o) => renderOf(o, await renderKustomization(KUBECTL, join(K8S, 'overlays', o)))));
    // Once for every test: the certificates take seconds (an RSA key each).
    secretsDir = mkdtempSync(join(tmpdir(), 'k8s-secrets-'));
    await promisify(execFile)('bash', [join(K8S, 'make-secrets.sh'), '--out', secretsDir], { timeout: 120_000 });
    const objects = parseObjects(readFileSync(join(secretsDir, 'secrets.yaml'), 'utf8'), 'make-secrets.sh secrets.yaml');
    made = { dir: secretsDir, objects, secrets: dataByName(objects, 'Secret') };
  });
  after(() => {
    if (secretsDir !== null) rmSync(secretsDir, { recursive: true, force: true });
  });

  it("the NATS accounts file is docs/cluster-security.md's configuration, unchanged", () => {
    // Cut out as deploy/local-cluster.sh cuts it: between the markers, without the ``` fence.
    const doc = readFileSync(join(ROOT, 'docs', 'cluster-security.md'), 'utf8');
    const block = /<!-- evosearch-nats-config: begin -->\n```conf\n([\s\S]*?)```\n<!-- evosearch-nats-config: end -->/.exec(doc);
    assert.ok(block, 'docs/cluster-security.md has no evosearch-nats-config block');
    assert.equal(readFileSync(join(K8S, 'base', 'nats', 'evosearch-accounts.conf'), 'utf8'), block[1], 'deploy/kubernetes/base/nats/evosearch-accounts.conf differs from the documented configuration: copy the block again');
  });

  it('every object file under deploy/kubernetes passes the schemas as written, kubectl or not', async () => {
    // The files a kustomization lists (and tools/), before kustomize: each a whole object, so each
    // can be checked here without kubectl; the rendered objects are checked again below.
    const files = listYaml(K8S).filter((f) => !/(^|\/)kustomization\.yaml$/.test(f) && !f.endsWith('prometheus-adapter-values.yaml') && !f.includes('/secrets/'));
    const objects = files.flatMap((f) => parseObjects(readFileSync(f, 'utf8'), f));
    assert.ok(objects.some((o) => o.kind === 'ScaledObject') && objects.some((o) => o.kind === 'StatefulSet'), `too few objects found: ${files.join(', ')}`);
    assert.deepEqual(await schemaProblems(objects), []);
    assert.deepEqual(fieldProblems(objects, ROOT), []);
  });

  it('renders every overlay, and each holds the NATS server, the coordinator and the workers', (t) => {
    if (skipWithoutKubectl(t)) return;
    for (const render of renders) {
      const commands = evosearchContainers(render.objects).map((c) => c.command).sort();
      assert.deepEqual(commands, ['coordinator', 'worker'], `${render.overlay}: evosearch containers`);
      assert.ok(natsConfigOf(render) !== null, `${render.overlay}: no nats-server`);
    }
  });

  it("every rendered object, and make-secrets.sh's Secrets, pass Kubernetes' and KEDA's schemas", async (t) => {
    if (skipWithoutKubectl(t)) return;
    const all = [...renders.flatMap((r) => r.objects), ...made!.objects];
    const kinds = [...new Set(all.map((o) => `${o.apiVersion} ${o.kind}`))].sort();
    t.diagnostic(`kinds checked: ${kinds.join(', ')}`);
    // The ScaledObject and the HPA are among them: they are what the components add.
    for (const kind of ['keda.sh/v1alpha1 ScaledObject', 'autoscaling/v2 HorizontalPodAutoscaler', 'monitoring.coreos.com/v1 ServiceMonitor', 'policy/v1 PodDisruptionBudget']) assert.ok(kinds.includes(kind), `no ${kind} rendered`);
    assert.deepEqual(await schemaProblems(all), []);
    assert.deepEqual(fieldProblems(all, ROOT), []);
  });

  it('the validators refuse broken objects, and each check refuses what it is there for', async (t) => {
    if (skipWithoutKubectl(t)) return;
    const keda = renders.find((r) => r.overlay === 'gpu-keda')!;
    const copy = (): Render => renderOf('broken', structuredClone(keda.objects));
    const pick = (r: Render, kind: string, name?: string) => r.objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name))! as KubeObject & { spec: Record<string, any> };
    // Schemas: a wrong type (the validator), an unknown field (the compiler), in a built-in kind and in KEDA's.
    const broken = copy();
    const deployment = pick(broken, 'Deployment', 'evosearch-worker');
    deployment.spec.template.spec.containers[0].ports[0].containerPort = 'seventy';
    const misspelt = structuredClone(pick(keda, 'Deployment', 'evosearch-worker')) as KubeObject & { spec: Record<string, any> };
    misspelt.spec.template.spec.terminationGracePeriodSecond = 90;
    const scaled = pick(broken, 'ScaledObject');
    scaled.spec.minReplicaCount = 'one';
    const unknownKeda = structuredClone(pick(keda, 'ScaledObject')) as KubeObject & { spec: Record<string, any> };
    unknownKeda.spec.minReplicas = 1;
    const schema = await schemaProblems([deployment, scaled]);
    assert.equal(schema.length, 2, `the validator should refuse both: ${schema.join('; ')}`);
    assert.match(schema.join('\n'), /containerPort must be integer/);
    assert.match(schema.join('\n'), /minReplicaCount must be integer/);
    assert.deepEqual(await schemaProblems([misspelt, unknownKeda]), [], 'the validator is expected to let unknown fields through (why fieldProblems exists)');
    const fields = fieldProblems([misspelt, unknownKeda], ROOT);
    assert.equal(fields.length, 2, fields.join('; '));
    assert.match(fields[0]!, /terminationGracePeriodSecond/);
    assert.match(fields[1]!, /minReplicas/);
    // The project checks, one breakage each.
    const secrets = made!.secrets;
    const cases: [string, (r: Render) => void, (r: Render) => string[], RegExp][] = [
      ['a flag the CLI lacks', (r) => pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.containers[0].args.push('--drain-timout=60'), cliProblems, /has no flag --drain-timout/],
      ['a choice the CLI refuses', (r) => pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.containers[0].args.push('--role=everything'), cliProblems, /refuses its arguments/],
      ['an undefined $(VAR)', (r) => pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.containers[0].args.push('--advertise=$(POD_ADDRESS):7070'), cliProblems, /\$\(POD_ADDRESS\)/],
      ['a missing required flag', (r) => { const c = pick(r, 'Deployment', 'evosearch-coordinator').spec.template.spec.containers[0]; c.args = c.args.filter((a: string) => !a.startsWith('--nats=')); }, cliProblems, /needs --nats/],
      ['a probe on another port', (r) => { pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.containers[0].readinessProbe.httpGet.port = 'grpc'; }, portProblems, /readinessProbe probes port grpc/],
      ['a Service port nothing declares', (r) => { pick(r, 'Service', 'evosearch-coordinator').spec.ports[1].targetPort = 'metric'; }, portProblems, /targets metric/],
      ['a metrics port that is not the flag\'s', (r) => { const c = pick(r, 'Deployment', 'evosearch-coordinator').spec.template.spec.containers[0]; c.args = c.args.map((a: string) => (a.startsWith('--metrics-listen=') ? '--metrics-listen=0.0.0.0:9000' : a)); }, portProblems, /--metrics-listen's is 9000/],
      ['a Secret make-secrets.sh does not make', (r) => { pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.volumes.find((v: Volume) => v.name === 'tls').secret.secretName = 'evosearch-workers-tls'; }, (r) => secretProblems(r, secrets), /evosearch-workers-tls is not one make-secrets.sh makes/],
      ['a secret key that is not there', (r) => { pick(r, 'Deployment', 'evosearch-coordinator').spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'EVOSEARCH_NATS_PASSWORD').valueFrom.secretKeyRef.key = 'EVOSEARCH_ADMIN_PASSWORD'; }, (r) => secretProblems(r, secrets), /no key EVOSEARCH_ADMIN_PASSWORD/],
      ['a Secret in the manifests', (r) => r.objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'oops', namespace: r.namespace }, data: {} }), (r) => secretProblems(r, secrets), /a Secret in the manifests/],
      ['a file not in its Secret', (r) => { const c = pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.containers[0]; c.args = c.args.map((a: string) => (a.startsWith('--tls-ca=') ? '--tls-ca=/etc/evosearch/tls/ca.pem' : a)); }, (r) => pathProblems(r, secrets), /has no key ca\.pem/],
      ['a folder on the read-only root', (r) => { const c = pick(r, 'Deployment', 'evosearch-coordinator').spec.template.spec.containers[0]; c.args = c.args.map((a: string) => (a.startsWith('--runs-dir=') ? '--runs-dir=/var/runs' : a)); }, (r) => pathProblems(r, secrets), /--runs-dir \/var\/runs is on no volume/],
      ['a NATS password the server is not given', (r) => { pick(r, 'StatefulSet').spec.template.spec.containers[0].envFrom = []; }, (r) => pathProblems(r, secrets), /\$EVOSEARCH_WORKER_PASSWORD from the environment/],
      ['a PDB that selects no worker', (r) => { pick(r, 'PodDisruptionBudget').spec.selector.matchLabels['app.kubernetes.io/component'] = 'workers'; }, workerProblems, /0 PodDisruptionBudgets select the worker pods/],
      ['a grace period shorter than the drain', (r) => { pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.terminationGracePeriodSeconds = 30; }, workerProblems, /terminationGracePeriodSeconds 30/],
      ['a hard-coded GPU', (r) => pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.containers[0].env.push({ name: 'CUDA_VISIBLE_DEVICES', value: '0' }), workerProblems, /sets CUDA_VISIBLE_DEVICES/],
      ['a worker that does not wait for NATS', (r) => { delete pick(r, 'Deployment', 'evosearch-worker').spec.template.spec.initContainers; }, workerProblems, /no init container waits for NATS/],
      ['a wait for another NATS', (r) => { pick(r, 'Deployment', 'evosearch-coordinator').spec.template.spec.initContainers[0].args = ['nats://nats:4222']; }, coordinatorProblems, /waits for nats:\/\/nats:4222/],
      ['a rolling coordinator', (r) => { pick(r, 'Deployment', 'evosearch-coordinator').spec.strategy = { type: 'RollingUpdate' }; }, coordinatorProblems, /strategy RollingUpdate/],
      ['a writable root file system', (r) => { pick(r, 'StatefulSet').spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false; }, securityProblems, /root file system is writable/],
      ['an object outside the namespace', (r) => { delete pick(r, 'ScaledObject').metadata.namespace; }, namespaceProblems, /ScaledObject\/evosearch-worker: in namespace \(none/],
      ['a ScaledObject that may reach zero', (r) => { pick(r, 'ScaledObject').spec.minReplicaCount = 0; }, autoscalerProblems, /minReplicaCount 0/],
      ['a ScaledObject without a fallback', (r) => { delete pick(r, 'ScaledObject').spec.fallback; }, autoscalerProblems, /no fallback/],
      ['a ScaledObject aimed elsewhere', (r) => { pick(r, 'ScaledObject').spec.scaleTargetRef.name = 'evosearch-coordinator'; }, autoscalerProblems, /scales Deployment\/evosearch-coordinator/],
      ['a fallback on a Value metric', (r) => { pick(r, 'ScaledObject').spec.triggers[0].metricType = 'Value'; }, autoscalerProblems, /AverageValue metrics only/],
      ['a query of another namespace', (r) => { const m = pick(r, 'ScaledObject').spec.triggers[0].metadata; m.query = m.query.replace('evosearch"', 'default"'); }, autoscalerProblems, /does not select namespace="evosearch"/],
      ['replicas beside an autoscaler', (r) => { pick(r, 'Deployment', 'evosearch-worker').spec.replicas = 3; }, autoscalerProblems, /sets replicas although an autoscaler owns the count/],
    ];
    for (const [what, breakIt, check, expected] of cases) {
      const r = copy();
      assert.deepEqual(check(r), [], `${what}: the unbroken render already has problems`);
      breakIt(r);
      const problems = check(r);
      assert.ok(problems.some((p) => expected.test(p)), `${what}: expected a problem matching ${expected}, got ${JSON.stringify(problems)}`);
    }
  });

  for (const [title, check] of Object.entries(CHECKS)) {
    it(title, (t) => {
      if (skipWithoutKubectl(t)) return;
      const notes = new Set<string>();
      const problems = renders.flatMap((r) => check(r, made!.secrets, notes).map((p) => `${r.overlay}: ${p}`));
      for (const note of notes) t.diagnostic(note);
      assert.deepEqual(problems, []);
    });
  }

  it('the metric the autoscalers read is one the coordinator exports', (t) => {
    if (skipWithoutKubectl(t)) return;
    // The source that defines it (the coordinator's /metrics), outside deploy/ and test/.
    assert.ok(sourceMentions(WORKERS_WANTED), `no source file outside deploy/ and test/ names ${WORKERS_WANTED}, which the autoscalers read`);
  });

  it('the NATS server certificate names every host the manifests dial NATS by', (t) => {
    if (skipWithoutKubectl(t)) return;
    const cert = new X509Certificate(made!.secrets.get('evosearch-nats-tls')!.get('tls.crt')!);
    const ca = new X509Certificate(made!.secrets.get('evosearch-nats-ca')!.get('ca.crt')!);
    assert.ok(cert.verify(ca.publicKey), 'evosearch-nats-tls was not signed by evosearch-nats-ca');
    // Its CA is not the gRPC one: the NATS server's key is no peer of the cluster.
    assert.notEqual(ca.fingerprint256, new X509Certificate(made!.secrets.get('evosearch-worker-tls')!.get('ca.crt')!).fingerprint256);
    for (const render of renders) {
      for (const { workload, container } of evosearchContainers(render.objects)) {
        const url = flagValues(container.args ?? []).get('--nats');
        const host = new URL(String(url)).hostname;
        assert.ok(cert.checkHost(host) !== undefined, `${render.overlay}: ${nameOf(workload.object)} dials NATS as ${host}, which the server's certificate does not name (${cert.subjectAltName})`);
      }
    }
    assert.ok(cert.checkHost('localhost') !== undefined, 'a port-forward dials localhost');
  });

  it("starts the rendered NATS, coordinator and worker containers as processes, with make-secrets.sh's files, and a client certificate runs a search through them", async (t) => {
    if (skipWithoutKubectl(t)) return;
    if (NATS_SERVER === null) return t.skip('nats-server is not installed here (npm test needs it: test/preflight.mjs)');
    await runRenderedCluster(t, renders.find((r) => r.overlay === 'cpu')!, made!);
  });
});

/** Every .yaml file under `dir`, recursively. */
function listYaml(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listYaml(join(dir, e.name)) : e.name.endsWith('.yaml') ? [join(dir, e.name)] : []));
}

/** Whether a TypeScript source file the CLI is built from (tsconfig.json's folders, less test/ and bench/) names `text`. */
function sourceMentions(text: string): boolean {
  const folders = ['errors', 'async', 'files', 'security', 'proto', 'cluster', 'world', 'samplers', 'random', 'search', 'coordinator', 'worker', 'config', 'cli', 'models', 'report', 'metrics'].filter((f) => existsSync(join(ROOT, f)));
  return spawnSync('grep', ['-rqF', '--include=*.ts', text, ...folders], { cwd: ROOT }).status === 0;
}

// ---- the rendered containers, run here ------------------------------------------------------------

/** A free TCP port on `host` (bound and released: another process could take it before us, rarely). */
async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A process of the test's, with its output kept for the message when it fails. */
interface Proc {
  readonly child: ChildProcess;
  readonly name: string;
  out: string;
  err: string;
}

function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc: Proc = { child, name, out: '', err: '' };
  child.stdout!.on('data', (d: Buffer) => (proc.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (proc.err += d.toString()));
  return proc;
}

async function waitForOutput(proc: Proc, pattern: RegExp, ms: number, stream: 'out' | 'err' = 'out'): Promise<RegExpExecArray> {
  const started = Date.now();
  for (;;) {
    const match = pattern.exec(proc[stream]);
    if (match !== null) return match;
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) before ${pattern}: ${proc.err.slice(-3000)}`);
    // The CLI's one-line error: a worker whose NATS refuses it says so and stays up (its gRPC server
    // keeps the process alive), so its exit cannot be waited for.
    if (/^evosearch: /m.test(proc.err)) throw new Error(`${proc.name} failed: ${proc.err.slice(-3000)}`);
    if (Date.now() - started > ms) throw new Error(`${proc.name}: no ${pattern} within ${ms} ms: ${proc.err.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Stops a process with SIGTERM (as the kubelet does) and gives its exit code or signal. */
async function stop(proc: Proc, ms = 15_000): Promise<string> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return String(proc.child.exitCode ?? proc.child.signalCode);
  const exited = new Promise<string>((resolve) => proc.child.once('exit', (code, signal) => resolve(String(code ?? signal))));
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), ms);
  const how = await exited;
  clearTimeout(timer);
  return how;
}

/**
 * A pod's container as a process of this machine: each volume it mounts becomes a folder (a Secret's
 * or ConfigMap's keys as files, a claim or emptyDir empty, the models volume this repository's
 * models/bundles), and every path, host and port it is given is moved onto them and onto loopback.
 * What cannot be the same here is said where it is replaced: the ports (free ones), the hosts (NATS
 * on localhost, this pod on its own loopback address).
 */
class LocalPod {
  readonly mounts: [string, string][] = [];

  constructor(
    readonly dir: string,
    readonly workload: Workload,
    readonly container: Container,
    render: Render,
    secrets: Map<string, Map<string, string>>,
  ) {
    for (const m of container.volumeMounts ?? []) {
      const volume = (workload.pod.volumes ?? []).find((v) => v.name === m.name);
      const local = join(dir, m.name);
      mkdirSync(local, { recursive: true });
      const files = volume?.secret !== undefined ? secrets.get(volume.secret.secretName) : volume?.configMap !== undefined ? render.configMaps.get(volume.configMap.name) : undefined;
      for (const [key, value] of files ?? []) {
        writeFileSync(join(local, key), value);
        chmodSync(join(local, key), volume?.secret?.defaultMode ?? volume?.configMap?.defaultMode ?? 0o644);
      }
      const isModels = volume?.persistentVolumeClaim?.claimName === 'evosearch-models';
      this.mounts.push([m.mountPath.replace(/\/$/, ''), isModels ? join(ROOT, 'models', 'bundles') : local]);
    }
    this.mounts.sort((a, b) => b[0].length - a[0].length);
  }

  /** A path of the container's file system, here. */
  path(value: string): string {
    for (const [mountPath, local] of this.mounts) if (value === mountPath || value.startsWith(`${mountPath}/`)) return local + value.slice(mountPath.length);
    return value;
  }
}

/** `value` with host:port pairs moved as `hosts` says ("host:port" → "host:port"), whole or in a URL. */
function moveAddresses(value: string, hosts: Map<string, string>): string {
  return value.replace(/([A-Za-z0-9.-]+):(\d+)/g, (whole) => hosts.get(whole) ?? whole);
}

async function runRenderedCluster(t: TestContext, render: Render, secrets: MadeSecrets): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-local-'));
  const procs: Proc[] = [];
  const natsInfo = natsConfigOf(render)!;
  const coordinator = evosearchContainers(render.objects).find((c) => c.command === 'coordinator')!;
  const worker = evosearchContainers(render.objects).find((c) => c.command === 'worker')!;
  // Without the test suite's EVOSEARCH_INSECURE: everything must be secured by what the manifests give.
  const { EVOSEARCH_INSECURE: _insecure, ...baseEnv } = process.env;
  try {
    // 1. NATS: the StatefulSet's container, its ConfigMap and Secret as files, its environment. The
    //    listen addresses only are set on the command line (nats-server's flags override its file).
    const natsPod = new LocalPod(join(dir, 'nats'), natsInfo.workload, natsInfo.container, render, secrets.secrets);
    // The volume claim template's mount (JetStream's store) has no pod volume: a folder too.
    const natsConfigPath = natsPod.path(String(flagValues(natsInfo.container.args ?? []).get('--config')));
    const configText = readFileSync(natsConfigPath, 'utf8');
    writeFileSync(natsConfigPath, configText.replace(/(cert_file|key_file|store_dir):\s*(\S+)/g, (_whole, key: string, path: string) => `${key}: ${natsPod.path(path.replace(/"/g, ''))}`));
    const storeMount = (natsInfo.container.volumeMounts ?? []).find((m) => m.mountPath === natsSetting(configText, 'store_dir'));
    if (storeMount === undefined) throw new Error('no mount holds the JetStream store');
    const natsEnv = Object.fromEntries(environmentOf(natsInfo.container, render, secrets.secrets, { ip: '127.0.0.1', name: 'evosearch-nats-0' }));
    const nats = start('nats-server', NATS_SERVER!, [...(natsInfo.container.args ?? []).map((a) => natsPod.path(a)), '-a', '127.0.0.1', '-p', '-1', '-m', '-1'], { ...baseEnv, ...natsEnv });
    procs.push(nats);
    const [, natsPort] = await waitForOutput(nats, /Listening for client connections on 127\.0\.0\.1:(\d+)/, 20_000, 'err');
    const [, monitorPort] = await waitForOutput(nats, /Starting http monitor on 127\.0\.0\.1:(\d+)/, 20_000, 'err');
    await waitForOutput(nats, /Server is ready/, 20_000, 'err');
    assert.match(nats.err, /TLS required for client connections/, 'nats-server does not require TLS');
    // The kubelet's probes of it, as the StatefulSet names them.
    for (const [kind, probe] of probes(natsInfo.container)) {
      const response: Response = await fetch(`http://127.0.0.1:${monitorPort}${probe.httpGet!.path}`);
      assert.equal(response.status, 200, `nats ${kind} ${probe.httpGet!.path}: ${response.status}`);
    }
    // Each user with its password, over TLS checked against the CA the clients mount; a wrong
    // password is refused (the accounts are in force).
    const passwords = secrets.secrets.get('evosearch-nats-passwords')!;
    const natsCa = join(dir, 'nats-ca.crt');
    writeFileSync(natsCa, secrets.secrets.get('evosearch-nats-ca')!.get('ca.crt')!);
    const natsUrl = `nats://localhost:${natsPort}`;
    for (const user of ['worker', 'coordinator', 'client']) {
      const nc = await connectNats(natsUrl, 'kubernetes-manifests test', { user, password: passwords.get(`EVOSEARCH_${user.toUpperCase()}_PASSWORD`)!, caFile: natsCa });
      await closeNats(nc);
    }
    await assert.rejects(connectNats(natsUrl, 'kubernetes-manifests test', { user: 'worker', password: passwords.get('EVOSEARCH_CLIENT_PASSWORD')!, caFile: natsCa }), /refused|Authorization/i);

    // 2. The coordinator and a worker: their containers' arguments and environment as rendered, their
    //    Secrets as files. The worker serves analytic:gmm instead of the ConfigMap's /models/tiny-sd:
    //    the client plans a run from the model's files on its own machine, and this machine has no
    //    /models (analytic:gmm needs no files); everything else is the manifests'.
    const natsHostPort = new URL(String(flagValues(worker.container.args ?? []).get('--nats'))).host;
    const runProcess = async (name: string, found: { workload: Workload; container: Container }, ip: string): Promise<{ proc: Proc; grpc: string; metrics: string | null }> => {
      const pod = new LocalPod(join(dir, name), found.workload, found.container, render, secrets.secrets);
      const env = environmentOf(found.container, render, secrets.secrets, { ip, name: `${name}-0` });
      if (env.has('EVOSEARCH_MODEL')) env.set('EVOSEARCH_MODEL', 'analytic:gmm');
      const args = expandArgs(found.container.args ?? [], env);
      const flags = flagValues(args);
      const known = cliFlags(COMMANDS[args[0]!]!());
      const hosts = new Map<string, string>([[natsHostPort, `localhost:${natsPort}`]]);
      const grpcPort = await freePort(ip);
      const metricsPort = await freePort(ip);
      const listen = String(flags.get('--listen'));
      hosts.set(listen, `${ip}:${grpcPort}`);
      hosts.set(String(flags.get('--advertise')), `${ip}:${grpcPort}`);
      if (typeof flags.get('--metrics-listen') === 'string') hosts.set(String(flags.get('--metrics-listen')), `${ip}:${metricsPort}`);
      const local = args
        .filter((a) => known.has(a.split('=')[0]!) || !a.startsWith('--'))
        .map((a) => {
          const eq = a.indexOf('=');
          if (eq < 0) return a;
          const value = a.slice(eq + 1);
          return `${a.slice(0, eq)}=${moveAddresses(value.startsWith('/') ? pod.path(value) : value, hosts)}`;
        });
      const left = args.filter((a) => !known.has(a.split('=')[0]!) && a.startsWith('--'));
      if (left.length > 0) t.diagnostic(`${name}: left out, the CLI lacks them yet: ${left.join(' ')}`);
      const processEnv: NodeJS.ProcessEnv = { ...baseEnv };
      for (const [k, v] of env) processEnv[k] = v.startsWith('/') ? pod.path(v) : v;
      // Its init container first, as the kubelet runs it: it must find the NATS server and end.
      for (const init of found.workload.pod.initContainers ?? []) {
        const initPod = new LocalPod(join(dir, `${name}-${init.name}`), found.workload, init, render, secrets.secrets);
        const [program, ...rest] = [...(init.command ?? []), ...(init.args ?? [])].map((a) => moveAddresses(a.startsWith('/') ? initPod.path(a) : a, hosts));
        const ran = spawnSync(program === 'node' ? process.execPath : program!, rest, { encoding: 'utf8', timeout: 30_000 });
        assert.equal(ran.status, 0, `${name}'s init container ${init.name} failed: ${ran.stderr}`);
        t.diagnostic(`${name} init container ${init.name}: ${ran.stdout.trim()}`);
      }
      const proc = start(name, process.execPath, [join(ROOT, 'bin', 'evosearch.js'), ...local], processEnv);
      procs.push(proc);
      await waitForOutput(proc, /"event":"listening"/, 60_000);
      return { proc, grpc: `${ip}:${grpcPort}`, metrics: known.has('--metrics-listen') ? `${ip}:${metricsPort}` : null };
    };
    // Each on its own loopback address, as each pod has its own IP. The worker's is in no SAN of its
    // certificate (localhost, 127.0.0.1), as a pod IP is in none: it is accepted all the same.
    const workerIp = '127.0.0.2';
    const workerCert = new X509Certificate(secrets.secrets.get('evosearch-worker-tls')!.get('tls.crt')!);
    assert.equal(workerCert.checkIP(workerIp), undefined, `the worker certificate names ${workerIp}: the test would prove nothing about pod IPs`);
    const workerRun = await runProcess('worker', worker, workerIp);
    const coordinatorRun = await runProcess('coordinator', coordinator, '127.0.0.3');
    for (const run of [workerRun, coordinatorRun]) {
      if (run.metrics === null) continue;
      for (const [kind, probe] of probes(run.proc.name === 'worker' ? worker.container : coordinator.container)) {
        const response: Response = await fetch(`http://${run.metrics}${probe.httpGet!.path}`);
        assert.equal(response.status, 200, `${run.proc.name} ${kind} ${probe.httpGet!.path}: ${response.status}`);
      }
    }

    // 3. A client with make-secrets.sh's client certificate submits through NATS, as README.md says.
    const certs = join(secrets.dir, 'certs');
    const out = join(dir, 'run');
    const client = start('client', process.execPath, [join(ROOT, 'bin', 'evosearch.js'), 'run', '--cluster', natsUrl, '--nats-user', 'client', '--nats-ca', natsCa, '--cluster-key', join(secrets.dir, 'cluster.key'), '--tls-ca', join(certs, 'ca.crt'), '--tls-cert', join(certs, 'client.crt'), '--tls-key', join(certs, 'client.key'), '--model', 'analytic:gmm', '--budget-nfe', '600', '--seed', '1', '--no-progress', '--out', out], { ...baseEnv, EVOSEARCH_NATS_PASSWORD: passwords.get('EVOSEARCH_CLIENT_PASSWORD')! });
    procs.push(client);
    const code = await new Promise<number | null>((resolve) => client.child.once('exit', (c) => resolve(c)));
    assert.equal(code, 0, `the client's run failed: ${client.err.slice(-3000)}\ncoordinator: ${coordinatorRun.proc.err.slice(-3000)}`);
    assert.match(client.out, new RegExp(`submitted run \\S+ to coordinator ${coordinatorRun.grpc.replace(/\./g, '\\.')}`));
    const record = JSON.parse(readFileSync(join(out, 'record.json'), 'utf8')) as { spent: { nfe: number }; workers: string[] };
    assert.equal(record.spent.nfe, 600);
    assert.deepEqual(record.workers.length, 1, `workers: ${JSON.stringify(record.workers)}`);
    assert.match(record.workers[0]!, new RegExp(workerRun.grpc.replace(/\./g, '\\.')), 'the run did not go to the worker at its advertised (pod) address');

    // 4. SIGTERM, as the kubelet sends it: the worker drains and exits 0 well within its grace period.
    const drained = Date.now();
    assert.equal(await stop(workerRun.proc), '0', `the worker did not drain cleanly: ${workerRun.proc.err.slice(-2000)}`);
    assert.ok(Date.now() - drained < (worker.workload.pod.terminationGracePeriodSeconds ?? 30) * 1000);
    assert.equal(await stop(coordinatorRun.proc), '0', `the coordinator did not stop cleanly: ${coordinatorRun.proc.err.slice(-2000)}`);
  } finally {
    for (const proc of procs.reverse()) await stop(proc, 5000);
    rmSync(dir, { recursive: true, force: true });
  }
}
