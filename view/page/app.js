// The live view's page: the runs the caller may see, and one run followed live from its events
// (GET /api/runs/:id/events: every event so far, then each as it comes). No framework, no build.
import * as api from './api.js';
import { rewardChart } from './charts.js';
import { $, fill, h, show } from './dom.js';
import * as fmt from './format.js';

const TERMINAL = new Set(['finished', 'failed', 'cancelled', 'interrupted']);
const RETRY_MS = 2000;
/** Candidates shown before "show all". */
const POPULATION_SHOWN = 24;
let populationExpanded = false;

let following = null; // { runId, abort: AbortController, model }
let runsTimer = null;
const thumbnails = new Map(); // "runId/round/candidate" -> { url } | { failedAt }

function showError(message) {
  const el = $('error');
  el.textContent = message ?? '';
  show(el, Boolean(message));
}

function hashParams() {
  return new URLSearchParams(location.hash.slice(1));
}

async function boot() {
  api.takeTokenFromAddress();
  let me;
  try {
    me = await api.getJson('/api/whoami');
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      show($('signin'), true);
      if (error.status === 403) showError(error.message);
      return;
    }
    showError(`the view does not answer: ${error.message}`);
    return;
  }
  $('title').textContent = me.title;
  $('who').textContent = `signed in as ${me.principal}`;
  window.addEventListener('hashchange', route);
  $('back').addEventListener('click', (e) => {
    e.preventDefault();
    location.hash = '';
  });
  $('cancel').addEventListener('click', cancelRun);
  $('download').addEventListener('click', downloadRun);
  await route();
}

async function route() {
  const runId = hashParams().get('run');
  showError('');
  if (runId) {
    stopRunsTimer();
    show($('runs'), false);
    show($('run'), true);
    await openRun(runId);
  } else {
    stopFollowing();
    show($('run'), false);
    show($('runs'), true);
    await showRuns(true);
    runsTimer = setInterval(() => void showRuns(false), 5000);
  }
}

function stopRunsTimer() {
  if (runsTimer !== null) clearInterval(runsTimer);
  runsTimer = null;
}

async function showRuns(first) {
  let runs;
  try {
    ({ runs } = await api.getJson('/api/runs'));
  } catch (error) {
    showError(`runs not listed: ${error.message}`);
    return;
  }
  // A view of one run folder opens it at once.
  if (first && runs.length === 1 && !hashParams().has('list')) {
    location.replace(`#run=${encodeURIComponent(runs[0].runId)}`);
    return;
  }
  const rows = [...runs].reverse().map((run) =>
    h('tr', { 'data-run': run.runId, onclick: () => (location.hash = `run=${encodeURIComponent(run.runId)}`) },
      h('td', {}, h('span', { class: `state ${run.state}` }, run.state)),
      h('td', { class: 'prompt' }, run.prompt ?? '(no prompt)'),
      h('td', {}, run.method),
      h('td', {}, run.model),
      h('td', {}, fmt.reward(run.best)),
      h('td', {}, fmt.when(run.submittedAt))));
  fill($('run-table').tBodies[0], rows);
  show($('no-runs'), runs.length === 0);
}

function stopFollowing() {
  following?.abort.abort();
  following = null;
}

function newModel(runId, listing, cancel) {
  return { runId, listing, cancel, started: null, startedAt: null, rounds: [], workerNames: [], outcome: null, ended: false, heardAt: Date.now(), cancelling: false };
}

async function openRun(runId) {
  stopFollowing();
  let detail;
  try {
    detail = await api.getJson(`/api/runs/${encodeURIComponent(runId)}`);
  } catch (error) {
    showError(error.status === 404 ? `no run ${runId} that you may see` : `run not shown: ${error.message}`);
    return;
  }
  const abort = new AbortController();
  following = { runId, abort, model: newModel(runId, detail.run, detail.cancel) };
  render();
  void follow(runId, abort);
}

/** Follows the run's events; a stream that drops is opened again (and catches up from the start). */
async function follow(runId, abort) {
  for (;;) {
    const model = following?.runId === runId ? following.model : null;
    if (model === null || abort.signal.aborted) return;
    try {
      const ended = await api.streamLines(`/api/runs/${encodeURIComponent(runId)}/events`, (line) => apply(model, line), abort.signal);
      if (ended) return;
    } catch (error) {
      if (abort.signal.aborted) return;
      if (error.status === 404) return void showError(`no run ${runId} that you may see`);
      showError(`lost the run's events (${error.message}); reconnecting…`);
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    if (abort.signal.aborted) return;
    // Catching up again from the first event: start from a clean slate.
    following.model = newModel(runId, model.listing, model.cancel);
    showError('');
  }
}

function apply(model, line) {
  model.heardAt = Date.now();
  if (line.type === 'end') {
    model.ended = true;
    if (TERMINAL.has(line.state)) model.listing = { ...model.listing, state: line.state };
  } else if (line.type === 'event') {
    const { event, payload, at } = line.event;
    if (event === 'started') {
      model.started = payload;
      model.startedAt ??= at;
      model.workerNames = payload.workers;
    } else if (event === 'round') {
      model.rounds.push({ ...payload, at });
    } else if (event === 'workers') {
      model.workerNames = payload.workers;
    } else if (TERMINAL.has(event)) {
      model.outcome = { event, payload, at };
      model.listing = { ...model.listing, state: event };
    } else if (event === 'resumed') {
      model.listing = { ...model.listing, state: 'running' };
    }
  }
  scheduleRender();
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  const model = following?.model;
  if (!model) return;
  const { listing } = model;
  const state = model.outcome?.event ?? (model.ended ? listing.state : model.rounds.length > 0 || model.started ? 'running' : listing.state);
  $('run-prompt').textContent = listing.prompt ?? '(no prompt)';
  const badge = $('run-state');
  badge.textContent = state;
  badge.className = `state ${state}`;
  $('run-meta').textContent = `${listing.method} on ${listing.model} · run ${listing.runId}`;
  renderActions(model, state);
  const last = model.rounds.at(-1);
  const detail = [...model.rounds].reverse().find((r) => r.detail)?.detail;
  const planned = last?.plannedNfe ?? model.started?.plannedNfe ?? 0;
  const nfe = model.outcome?.event === 'finished' ? model.outcome.payload.spent.nfe : last?.nfe ?? 0;
  $('bar-fill').style.width = `${planned > 0 ? Math.min(100, (100 * nfe) / planned) : 0}%`;
  $('generation').textContent = detail ? `generation ${detail.generation} of ${detail.generations}` : last ? `round ${last.round + 1}` : 'starting';
  $('generation').dataset.generation = String(detail?.generation ?? 0);
  $('nfe').textContent = `${fmt.count(nfe)} of ${fmt.count(planned)} NFEs`;
  $('eta').textContent = etaText(model, nfe, planned, state);
  $('heard').textContent = `${model.rounds.length} rounds${last ? ` · last: ${last.label}` : ''}${TERMINAL.has(state) ? '' : ' · live'}`;
  fill($('chart'), rewardChart(chartPoints(model.rounds), detail?.generations ?? 0, $('chart').clientWidth || 640));
  renderBest(model, detail);
  renderPopulation(model);
  renderLineage(model, detail);
  renderWorkers(model, detail);
  renderOutcome(model);
}

function etaText(model, nfe, planned, state) {
  if (!model.startedAt) return '';
  const start = Date.parse(model.startedAt);
  if (TERMINAL.has(state)) {
    const end = Date.parse(model.outcome?.at ?? model.rounds.at(-1)?.at ?? model.startedAt);
    return `took ${fmt.duration(end - start)}`;
  }
  const lastAt = Date.parse(model.rounds.at(-1)?.at ?? model.startedAt);
  const elapsed = lastAt - start;
  if (nfe <= 0 || elapsed <= 0) return `running ${fmt.duration(Date.now() - start)}`;
  const left = ((planned - nfe) / nfe) * elapsed;
  return `ETA ${fmt.duration(Math.max(0, left - (Date.now() - lastAt)))}`;
}

/** Per generation, its last round that scored: the best so far, and the population's max and mean. */
function chartPoints(rounds) {
  const byGeneration = new Map();
  for (const r of rounds) {
    const d = r.detail;
    if (d && d.scored === 0) continue;
    const generation = d ? d.generation : r.round + 1;
    byGeneration.set(generation, { generation, best: r.best ?? null, max: d?.populationMax ?? null, mean: d?.populationMean ?? null });
  }
  return [...byGeneration.values()].sort((a, b) => a.generation - b.generation);
}

function renderActions(model, state) {
  const cancel = $('cancel');
  const canCancel = model.cancel.possible && !TERMINAL.has(state) && !model.ended;
  show(cancel, canCancel);
  cancel.disabled = model.cancelling;
  const note = $('action-note');
  if (model.cancelling && !TERMINAL.has(state)) note.textContent = 'cancelling: the run stops now, keeping every round it finished…';
  else if (!model.cancel.possible && !TERMINAL.has(state)) note.textContent = `cannot cancel here: ${model.cancel.why}`;
  else note.textContent = '';
  const download = $('download');
  download.disabled = state !== 'finished';
  download.title = state === 'finished' ? '' : 'the run folder can be downloaded once the run has finished';
}

function thumbnail(runId, round, candidate, size) {
  if (round === undefined || round === null || candidate === undefined || candidate === null) return h('span', { class: 'thumb none' }, '–');
  const key = `${runId}/${round}/${candidate}`;
  const img = h('img', { class: 'thumb', alt: '', title: `candidate ${candidate} (round ${Number(round) + 1})`, width: size, height: size });
  const known = thumbnails.get(key);
  if (known?.url) {
    img.src = known.url;
    return img;
  }
  if (known?.pending || (known?.failedAt && Date.now() - known.failedAt < 3000)) {
    known.pending?.then((url) => url && (img.src = url));
    return img;
  }
  const pending = api.imageUrl(`/api/runs/${encodeURIComponent(runId)}/thumbnails/${round}/${candidate}.png`).then(
    (url) => {
      thumbnails.set(key, { url });
      return url;
    },
    () => {
      thumbnails.set(key, { failedAt: Date.now() });
      return null;
    },
  );
  thumbnails.set(key, { pending });
  pending.then((url) => url && (img.src = url));
  return img;
}

function renderBest(model, detail) {
  const best = detail?.best ?? (model.outcome?.event === 'finished' ? model.outcome.payload.best : undefined);
  const el = $('best');
  if (!best) return fill(el, h('p', { class: 'muted' }, 'no sample scored yet'));
  const node = detail?.lineage?.at(-1);
  fill(el, h('div', { class: 'best-box' },
    thumbnail(model.runId, node?.thumbnailRound, node?.thumbnailCandidate, 96),
    h('dl', {},
      h('dt', {}, 'reward'), h('dd', { id: 'best-reward' }, fmt.reward(best.reward)),
      h('dt', {}, 'candidate'), h('dd', {}, `#${best.candidate}`),
      ...Object.entries(best.metrics ?? {}).flatMap(([name, v]) => [h('dt', {}, name), h('dd', {}, fmt.reward(v))]))));
}

function renderPopulation(model) {
  const scoring = model.rounds.filter((r) => r.detail && r.detail.population.length > 0);
  const round = scoring.at(-1);
  // Candidates the previous generation scored too: the ones selection kept (elites keep their id).
  const before = new Set((scoring.at(-2)?.detail.population ?? []).map((c) => c.id));
  const el = $('population');
  if (!round) {
    $('population-note').textContent = '';
    return fill(el, h('p', { class: 'muted' }, model.rounds.length > 0 ? 'no population reported (a coordinator before the live view, or a vector model)' : 'waiting for the first round'));
  }
  const d = round.detail;
  const names = Object.keys(d.population[0]?.metrics ?? {});
  $('population-note').textContent = `· generation ${d.generation}, round ${round.round + 1}: ${d.scored} scored${d.population.length < d.scored ? `, best ${d.population.length} shown` : ''}${names.length ? ` · reward, then held-out ${names.join(' · ')}` : ''}`;
  const shown = populationExpanded ? d.population : d.population.slice(0, POPULATION_SHOWN);
  const toggle = d.population.length > POPULATION_SHOWN
    ? h('button', { type: 'button', class: 'more', id: 'population-toggle', onclick: () => { populationExpanded = !populationExpanded; render(); } }, populationExpanded ? 'show fewer' : `show all ${d.population.length}`)
    : null;
  fill(el, shown.map((c, i) =>
    h('div', { class: `candidate${i === 0 ? ' leader' : ''}`, 'data-candidate': c.id, title: `candidate ${c.id} (${c.origin}${c.parent !== undefined ? ` of ${c.parent}` : ''}, generation ${c.generation})${Object.keys(c.metrics).length ? `\nheld-out: ${fmt.metrics(c.metrics)}` : ''}` },
      thumbnail(model.runId, round.round, c.id, 64),
      h('div', { class: 'reward' }, fmt.reward(c.reward)),
      h('div', { class: 'metrics' }, `#${c.id} ${c.origin}`, before.has(c.id) ? h('span', { class: 'kept', title: 'scored in the previous generation too: selection kept it' }, ' kept') : null),
      Object.keys(c.metrics).length ? h('div', { class: 'metrics' }, Object.values(c.metrics).map((v) => fmt.reward(v)).join(' · ')) : null)), toggle);
}

function renderLineage(model, detail) {
  const el = $('lineage');
  const lineage = detail?.lineage ?? [];
  if (lineage.length === 0) return fill(el, h('li', { class: 'muted' }, 'no best yet'));
  fill(el, lineage.map((node) =>
    h('li', { class: 'lineage-node', 'data-candidate': node.id, title: `candidate ${node.id}: ${node.origin}, generation ${node.generation}, made at step ${node.step}` },
      thumbnail(model.runId, node.thumbnailRound, node.thumbnailCandidate, 64),
      h('div', { class: 'op' }, node.origin),
      h('div', {}, `#${node.id} · gen ${node.generation} · step ${node.step}`),
      h('div', {}, node.reward !== undefined ? fmt.reward(node.reward) : 'not scored'))));
}

function renderWorkers(model, detail) {
  const body = $('workers').tBodies[0];
  const activity = detail?.workers ?? [];
  if (activity.length > 0) {
    fill(body, activity.map((w) =>
      h('tr', {},
        h('td', {}, w.worker),
        h('td', {}, h('span', { class: 'share' }, shareBar(w.busyShare)), fmt.percent(w.busyShare)),
        h('td', {}, w.modelMs !== undefined ? fmt.duration(w.modelMs) : '–'),
        h('td', {}, fmt.count(w.states)),
        h('td', {}, w.lost ? 'lost' : ''))));
  } else {
    fill(body, model.workerNames.map((name) => h('tr', {}, h('td', {}, name), h('td', {}, '–'), h('td', {}, '–'), h('td', {}, '–'), h('td', {}, ''))));
  }
  const lost = detail?.lostWorkers ?? 0;
  $('workers-note').textContent = detail ? `${lost} lost, ${fmt.count(detail.rebuiltStates)} states rebuilt from their recipes · busy: this run's batches in flight, of its rounds' time · in the model: as each worker counts it` : '';
}

function shareBar(share) {
  const bar = h('span');
  bar.style.width = `${Math.round(Math.min(1, Math.max(0, share)) * 100)}%`;
  return bar;
}

function renderOutcome(model) {
  const el = $('outcome');
  const o = model.outcome;
  if (!o) return show(el, false);
  el.className = `outcome ${o.event}`;
  const p = o.payload;
  el.textContent =
    o.event === 'finished'
      ? `finished: best reward ${fmt.reward(p.best?.reward)}, ${fmt.count(p.spent.nfe)} NFEs in ${fmt.duration(p.wallMs)}`
      : o.event === 'interrupted'
        ? `interrupted: ${p.error}. Continue it with: ${p.resume}`
        : `${o.event}: ${p.error}`;
  show(el, true);
}

async function cancelRun() {
  const model = following?.model;
  if (!model) return;
  model.cancelling = true;
  render();
  try {
    await api.post(`/api/runs/${encodeURIComponent(model.runId)}/cancel`);
  } catch (error) {
    model.cancelling = false;
    showError(`not cancelled: ${error.message}`);
    render();
  }
}

async function downloadRun() {
  const model = following?.model;
  if (!model) return;
  try {
    await api.download(`/api/runs/${encodeURIComponent(model.runId)}/download`, `${model.runId}.tar.gz`);
  } catch (error) {
    showError(`not downloaded: ${error.message}`);
  }
}

void boot();
