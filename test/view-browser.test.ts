/**
 * The live view in a real browser: Debian's Chromium through playwright-core (skipped, saying why,
 * where it is missing). A secured cluster of real processes (NATS, a coordinator serving the view over
 * HTTPS with its certificate, two tiny-sd workers over mutual TLS) runs a search alice submitted with
 * her client certificate; the page, opened mid-run with alice's token from `evosearch token` (the list of
 * her runs, then the run), shows the generation advance and real thumbnails, and a second browser that holds alice's certificate instead
 * of a token sees the same run; the page's cancel button stops it, and the run's events and checkpoint
 * show it stopped between rounds (its last round complete, none half-kept). Then `evosearch view` on a
 * finished embedded run folder shows its final population, reward chart and lineage.
 *
 * EVOSEARCH_VIEW_SCREENSHOT=docs/images/live-view.png saves the live page's screenshot there (the README's).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { CoordinatorClient } from '../coordinator/service/coordinator-client.js';
import type { TypedRunEvent } from '../proto/coordinator-messages.js';
import type { TransportSecurity } from '../proto/transport-security.js';
import { loadTlsIdentity } from '../security/tls-identity.js';
import { evosearch } from './support/evosearch-cli.js';
import { startNatsServer, type NatsServer } from './support/nats-server.js';
import { repoRoot } from './support/repo-root.js';
import { chromiumMissing, launchChromium, startServing, type ServingProcess } from './support/view-browser.js';
import { startAll, startWorker, stopWorkers, type WorkerProcess } from './support/worker-processes.js';

/** The suite runs with EVOSEARCH_INSECURE=1 (package.json); these processes are secured. */
const { EVOSEARCH_INSECURE: _insecure, ...strictEnv } = process.env;
const tls = (dir: string, name: string) => ['--tls-ca', join(dir, 'ca.crt'), '--tls-cert', join(dir, `${name}.crt`), '--tls-key', join(dir, `${name}.key`)];
const identity = (dir: string, name: string): TransportSecurity => ({ kind: 'mtls', identity: loadTlsIdentity({ ca: join(dir, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }) });
const TINY_SD = join(repoRoot(), 'models', 'bundles', 'tiny-sd');
const PROMPT = 'two red circles left of a blue square';

/** The generation the page shows (its data attribute, set on every render). */
const shownGeneration = (page: Page) => page.locator('#generation').getAttribute('data-generation').then(Number);

describe('the live view in headless Chromium', () => {
  let browser: Browser | null = null;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'evosearch-view-browser-'));
    if (chromiumMissing() === null) browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('follows a running search on a coordinator (token and client certificate), cancels it, and the run stops between rounds', { timeout: 420_000 }, async (t) => {
    const missing = chromiumMissing();
    if (missing !== null) return t.skip(missing);
    const certs = join(dir, 'certs');
    const made = await evosearch(['certs', '--out', certs, '--coordinator', 'c1', '--worker', 'w1', '--worker', 'w2', '--client', 'alice'], strictEnv);
    assert.equal(made.code, 0, made.stderr);
    const tokens = join(dir, 'view-tokens.json');
    const issued = await evosearch(['token', '--tokens', tokens, '--name', 'alice', '--role', 'client'], strictEnv);
    assert.equal(issued.code, 0, issued.stderr);
    const token = /^(evs_[A-Za-z0-9_-]{43})$/m.exec(issued.stdout)?.[1];
    assert.ok(token !== undefined, issued.stdout);
    assert.ok(!readFileSync(tokens, 'utf8').includes(token), 'the tokens file holds the hash, never the token');

    let nats: NatsServer | null = null;
    let coordinator: ServingProcess | null = null;
    const workers: WorkerProcess[] = [];
    const client = () => new CoordinatorClient(coordinator!.lines.get('listening')!.address as string, identity(certs, 'alice'), 30_000);
    try {
      nats = await startNatsServer();
      const runsDir = join(dir, 'served');
      coordinator = await startServing(['coordinator', '--nats', nats.url, '--listen', '127.0.0.1:0', '--runs-dir', runsDir, '--log-level', 'error', '--view-listen', '127.0.0.1:0', '--view-tokens', tokens, ...tls(certs, 'c1')], ['listening', 'view'], strictEnv);
      const viewUrl = coordinator.lines.get('view')!.url as string;
      assert.match(viewUrl, /^https:\/\/127\.0\.0\.1:\d+\/$/, 'under TLS the view is HTTPS, and its URL carries no token');
      workers.push(...(await startAll(['w1', 'w2'].map((w) => startWorker(TINY_SD, ['--nats', nats!.url, ...tls(certs, w)])))));
      const alice = client();
      let runId: string;
      try {
        // Eight rounds of a few seconds each (seven generations rolled out, then the final one): the page
        // opens after the first, sees the next, and cancels with rounds still to come.
        ({ runId } = await alice.submit({ model: 'models/bundles/tiny-sd', prompt: PROMPT, seed: 7, evosearch: { evolutionSchedule: [0, 3, 6, 9, 12, 15, 18], populationSchedule: [64, 48, 48, 48, 48, 48, 48, 48] } }));
      } finally {
        alice.close();
      }

      // Opened mid-run: after the first round, with alice's token in the fragment.
      const served = join(runsDir, runId);
      const firstRound = Date.now();
      const eventLog = join(served, 'events.jsonl');
      while (!(existsSync(eventLog) && readFileSync(eventLog, 'utf8').includes('"round"'))) {
        assert.ok(Date.now() - firstRound < 180_000, 'the run had no round within 3 minutes');
        await new Promise((r) => setTimeout(r, 200));
      }
      const context = await browser!.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      // The list of runs first (alice's one), then her run from it.
      await page.goto(`${viewUrl}#token=${token}&list=1`);
      await page.click(`#run-table tbody tr[data-run="${runId}"]`);
      await page.waitForSelector('#run:not([hidden])');
      assert.equal(new URL(page.url()).hash, `#run=${runId}`, 'the token left the address bar');
      await page.waitForFunction(() => Number(document.getElementById('generation')?.dataset.generation) >= 1, undefined, { timeout: 60_000 });
      const caughtUp = await shownGeneration(page);
      assert.match((await page.locator('#who').textContent()) ?? '', /alice \(client, token\)/);
      // Live: the generation advances on the page while it is open.
      await page.waitForFunction((g) => Number(document.getElementById('generation')?.dataset.generation) > g, caughtUp, { timeout: 120_000 });
      await page.waitForSelector('#population .candidate img[src^="blob:"]', { timeout: 30_000 });
      await page.waitForSelector('#reward-chart polyline', { timeout: 30_000 });
      await page.waitForSelector('#lineage .lineage-node', { timeout: 30_000 });
      assert.ok((await page.locator('#workers tbody tr').count()) === 2, 'both workers listed');
      const loaded = await page.waitForFunction(() => {
        const img = [...document.querySelectorAll<HTMLImageElement>('#population .candidate img')].find((i) => i.complete && i.naturalWidth > 0);
        return img === undefined ? null : { w: img.naturalWidth, h: img.naturalHeight };
      }, undefined, { timeout: 30_000 });
      const thumb = (await loaded.jsonValue())!;
      assert.ok(thumb.w > 0 && thumb.w <= 64 && thumb.h <= 64, `a real thumbnail, at most 64 px: ${JSON.stringify(thumb)}`);
      // The README's screenshot a few generations in, once the shown thumbnails have loaded (the next
      // round may replace them meanwhile).
      const target = process.env.EVOSEARCH_VIEW_SCREENSHOT;
      if (target !== undefined) await page.waitForFunction(() => Number(document.getElementById('generation')?.dataset.generation) >= 4, undefined, { timeout: 120_000 });
      await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('#population img, #lineage img, #best img')].every((i) => i.complete && i.naturalWidth > 0), undefined, { timeout: 10_000 }).catch(() => undefined);
      const shot = await page.screenshot({ fullPage: true });
      if (target !== undefined) {
        const path = resolve(repoRoot(), target);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, shot);
      }

      // A browser that holds alice's certificate, and no token, sees her run too.
      const origin = new URL(viewUrl).origin;
      const withCertificate = await browser!.newContext({ ignoreHTTPSErrors: true, clientCertificates: [{ origin, certPath: join(certs, 'alice.crt'), keyPath: join(certs, 'alice.key') }] });
      try {
        const certPage = await withCertificate.newPage();
        await certPage.goto(`${viewUrl}#run=${runId}`);
        await certPage.waitForFunction(() => Number(document.getElementById('generation')?.dataset.generation) >= 1, undefined, { timeout: 60_000 });
        assert.match((await certPage.locator('#who').textContent()) ?? '', /alice \(client, certificate\)/);
      } finally {
        await withCertificate.close();
      }

      // Cancel from the page: the run stops, keeping every round it finished.
      assert.ok(await page.locator('#cancel').isVisible(), 'the cancel button is shown for a running run');
      await page.click('#cancel');
      await page.waitForFunction(() => document.getElementById('run-state')?.textContent === 'cancelled', undefined, { timeout: 60_000 });
      assert.match((await page.locator('#outcome').textContent()) ?? '', /^cancelled: .*cancelled by a client/);
      assert.ok(!(await page.locator('#cancel').isVisible()), 'no cancel button once it ended');
      assert.deepEqual(problems, [], 'no script errors on the page');
      await context.close();

      const watcher = client();
      const events: TypedRunEvent[] = [];
      try {
        await watcher.watch(runId, (e) => events.push(e));
      } finally {
        watcher.close();
      }
      const rounds = events.filter((e) => e.event === 'round');
      assert.equal(events.at(-1)?.event, 'cancelled');
      assert.ok(rounds.length > caughtUp && rounds.length < 8, `cancelled mid-run, after ${rounds.length} of the run's 8 rounds`);
      assert.deepEqual(rounds.map((e) => (e.event === 'round' ? e.payload.round : -1)), rounds.map((_, i) => i), 'every round reported once, in order');
      // Between rounds: the checkpoint holds exactly the rounds reported, each line complete.
      const manifest = JSON.parse(await readFile(join(served, 'checkpoint.json'), 'utf8')) as { rounds: number; journalBytes: number };
      assert.equal(manifest.rounds, rounds.length, 'the checkpoint has every reported round and no other');
      const journal = await readFile(join(served, 'journal.jsonl'));
      assert.equal(journal.length, manifest.journalBytes, 'no half-written round after the last complete one');
      assert.equal(journal.toString().split('\n').filter((l) => l !== '').length, rounds.length);
      assert.ok(!existsSync(join(served, 'record.json')), 'a cancelled run has no record');
    } finally {
      await coordinator?.stop();
      await stopWorkers(workers);
      await nats?.stop();
    }
  });

  it('evosearch view shows a finished embedded run: its final population, reward chart and lineage', { timeout: 240_000 }, async (t) => {
    const missing = chromiumMissing();
    if (missing !== null) return t.skip(missing);
    const folder = join(dir, 'embedded');
    const ran = await evosearch(['run', '--model', TINY_SD, '--prompt', PROMPT, '--budget-nfe', '1000', '--seed', '3', '--no-progress', '--out', folder]);
    assert.equal(ran.code, 0, ran.stderr);
    const record = JSON.parse(await readFile(join(folder, 'record.json'), 'utf8')) as { runId: string; best: { candidate: number; reward: number }; rounds: unknown[] };
    const view = await startServing(['view', folder], ['listening']);
    const context = await browser!.newContext({ viewport: { width: 390, height: 844 } });
    try {
      const url = view.lines.get('listening')!.url as string;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/#token=evs_[A-Za-z0-9_-]{43}$/);
      const page = await context.newPage();
      await page.goto(url);
      // One run: the page opens it at once.
      await page.waitForFunction(() => document.getElementById('run-state')?.textContent === 'finished', undefined, { timeout: 30_000 });
      assert.equal(new URL(page.url()).hash, `#run=${record.runId}`);
      assert.equal(await page.locator('#run-prompt').textContent(), PROMPT);
      assert.equal(await page.locator('#best-reward').textContent(), record.best.reward.toFixed(3));
      await page.waitForSelector('#population .candidate img[src^="blob:"]', { timeout: 30_000 });
      assert.ok((await page.locator('#population .candidate').count()) > 0, 'the final population is shown');
      assert.ok((await page.locator('#reward-chart .dot.best').count()) >= 2, 'the reward chart has a point per generation');
      assert.ok((await page.locator('#lineage .lineage-node').count()) >= 2, 'the lineage of the best is shown');
      assert.ok(!(await page.locator('#cancel').isVisible()), 'nothing to cancel');
      assert.ok(await page.locator('#download').isEnabled(), 'the finished run can be downloaded');
      // Laid out for a phone: nothing wider than its screen.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `the page fits a phone's width (${overflow} px too wide)`);
    } finally {
      await context.close();
      await view.stop();
    }
  });
});
