import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sharedFitness, sharedTournamentWinners, sharing, type Embedded } from '../search/fitness-sharing.js';
import { tournamentWinners } from '../search/selection.js';
import { EvoSearch, validateEvoSearchConfig, type EvoSearchConfig } from '../search/evosearch.js';
import { hashReward, MetadataWorker } from '../search/metadata-worker.js';
import { SearchConfigError } from '../search/search-config-error.js';
import type { CommandResult, SearchCommand } from '../proto/commands.js';
import { NoiseSource } from '../random/noise-source.js';

/** A unit vector at angle θ in the plane: distances between them are chords, 2 sin(Δθ/2). */
const at = (theta: number) => Float32Array.of(Math.cos(theta), Math.sin(theta));
const candidate = (id: number, reward: number, theta: number): Embedded => ({ id, reward, embedding: at(theta) });

describe('fitness sharing', () => {
  it('sh(d) is 1 at 0, falls to 0 at the radius and stays 0 beyond', () => {
    const p = { radius: 0.5, alpha: 1 };
    assert.equal(sharing(0, p), 1);
    assert.equal(sharing(0.25, p), 0.5);
    assert.equal(sharing(0.5, p), 0);
    assert.equal(sharing(1.5, p), 0);
    assert.equal(sharing(0.25, { radius: 0.5, alpha: 2 }), 0.75);
  });

  it('divides a crowd\'s fitness among its members, and leaves a lone candidate its own', () => {
    // Three copies of one image (reward 10) and one different image (reward 8); the worst reward is 0.
    const pool = [candidate(0, 10, 0), candidate(1, 10, 0), candidate(2, 10, 0), candidate(3, 8, 2), candidate(4, 0, 1)];
    const shared = new Map(sharedFitness(pool, { radius: 0.3, alpha: 1 }).map((s) => [s.id, s.reward]));
    assert.ok(Math.abs(shared.get(0)! - 10 / 3) < 1e-6);
    assert.ok(Math.abs(shared.get(3)! - 8) < 1e-6);
    assert.ok(shared.get(3)! > shared.get(0)!);
  });

  it('with nobody within the radius, the first tournament is the raw one (same draw), and later wins count the winner\'s children', () => {
    const pool = Array.from({ length: 12 }, (_, i) => candidate(i, 1 + hashReward(i, 1), (i * 2 * Math.PI) / 12));
    for (let seed = 0; seed < 10; seed++) {
      const raw = tournamentWinners(pool, 1, 10, new NoiseSource(seed), 2).map((c) => c.id);
      const shared = sharedTournamentWinners(pool, 1, 10, new NoiseSource(seed), 2, { radius: 0.1, alpha: 1 }).map((c) => c.id);
      assert.deepEqual(shared, raw);
    }
    const many = sharedTournamentWinners(pool, 12, 10, new NoiseSource(5), 2, { radius: 0.1, alpha: 1 });
    assert.ok(new Set(many.map((c) => c.id)).size > new Set(tournamentWinners(pool, 12, 10, new NoiseSource(5), 2).map((c) => c.id)).size);
  });

  it('spreads the wins over niches where a 90% tournament hands nearly all to the best', () => {
    // A crowd of 8 near-copies of the best image, and 8 distinct images of lower reward.
    const crowd = Array.from({ length: 8 }, (_, i) => candidate(i, 10 - i * 0.01, i * 0.001));
    const lone = Array.from({ length: 8 }, (_, i) => candidate(8 + i, 9 - i * 0.1, 1 + i * 0.6));
    const pool = [...crowd, ...lone];
    const raw = tournamentWinners(pool, 20, 14, new NoiseSource(3), 0);
    const shared = sharedTournamentWinners(pool, 20, 14, new NoiseSource(3), 0, { radius: 0.4, alpha: 1 });
    const fromCrowd = (xs: readonly Embedded[]) => xs.filter((c) => c.id < 8).length;
    assert.equal(fromCrowd(raw), 20);
    assert.ok(fromCrowd(shared) < 10, `crowd won ${fromCrowd(shared)} of 20`);
    assert.ok(new Set(shared.map((c) => c.id)).size > new Set(raw.map((c) => c.id)).size);
  });

  it('does not depend on the order of the pool', () => {
    const pool = Array.from({ length: 15 }, (_, i) => candidate(i, hashReward(i, 4), (i % 5) * 0.05 + Math.floor(i / 5)));
    const a = sharedTournamentWinners(pool, 12, 13, new NoiseSource(9), 1, { radius: 0.4, alpha: 1 }).map((c) => c.id);
    const b = sharedTournamentWinners([...pool].reverse(), 12, 13, new NoiseSource(9), 1, { radius: 0.4, alpha: 1 }).map((c) => c.id);
    assert.deepEqual(a, b);
  });
});

const CONFIG: EvoSearchConfig = {
  steps: 25,
  evolutionSchedule: [0, 10, 15, 20],
  populationSchedule: [20, 12, 12, 12, 14],
  elites: 3,
  mutationRate: 0.2,
  tournamentFraction: 0.9,
  archive: true,
  noiseStd: Array.from({ length: 25 }, (_, i) => 1 - i / 30),
  seed: 11,
};

/** MetadataWorker's scores, each with an embedding that depends only on the candidate id. */
class EmbeddingWorker extends MetadataWorker {
  override execute(command: SearchCommand): CommandResult {
    const result = super.execute(command);
    return { ...result, scores: result.scores.map((s) => ({ ...s, embedding: at(hashReward(s.id, 2) / 10) })) };
  }
}

describe('EvoSearch with selection sharing', () => {
  const reward = (id: number) => hashReward(id, 3);
  it('keeps the elites by raw reward and breeds from more parents than the tournament', () => {
    const plain = new EvoSearch(CONFIG);
    new MetadataWorker(CONFIG.steps, reward).drive(plain);
    const shared = new EvoSearch({ ...CONFIG, selection: 'sharing', sharingRadius: 0.4 });
    new EmbeddingWorker(CONFIG.steps, reward).drive(shared);
    const parents = (m: EvoSearch) => m.selections().map((s) => new Set(s.winners).size);
    const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
    assert.ok(sum(parents(shared)) > sum(parents(plain)), `${parents(shared)} vs ${parents(plain)}`);
    for (const s of shared.selections()) assert.deepEqual(s.elites, s.ranked.slice(0, CONFIG.elites));
  });

  it('is deterministic: the same scores give the same record, and the default ignores embeddings', () => {
    const a = new EvoSearch({ ...CONFIG, selection: 'sharing' });
    new EmbeddingWorker(CONFIG.steps, reward).drive(a);
    const b = new EvoSearch({ ...CONFIG, selection: 'sharing' });
    new EmbeddingWorker(CONFIG.steps, reward).drive(b);
    assert.deepEqual(b.selections(), a.selections());
    const plain = new EvoSearch(CONFIG);
    new MetadataWorker(CONFIG.steps, reward).drive(plain);
    const plainWithEmbeddings = new EvoSearch(CONFIG);
    new EmbeddingWorker(CONFIG.steps, reward).drive(plainWithEmbeddings);
    assert.deepEqual(plainWithEmbeddings.selections(), plain.selections());
  });

  it('refuses scores without embeddings, saying what the workers must be set up with', () => {
    const machine = new EvoSearch({ ...CONFIG, selection: 'sharing' });
    assert.throws(() => new MetadataWorker(CONFIG.steps, reward).drive(machine), /carries no embedding.*scoreEmbeddings/);
  });

  it('validation names the field', () => {
    assert.throws(() => validateEvoSearchConfig({ ...CONFIG, sharingRadius: 3 }), (e: unknown) => e instanceof SearchConfigError && e.field === 'sharingRadius');
    assert.throws(() => validateEvoSearchConfig({ ...CONFIG, sharingAlpha: 0 }), (e: unknown) => e instanceof SearchConfigError && e.field === 'sharingAlpha');
    assert.throws(() => validateEvoSearchConfig({ ...CONFIG, selection: 'roulette' as 'sharing' }), (e: unknown) => e instanceof SearchConfigError && e.field === 'selection');
  });
});
