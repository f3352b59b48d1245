// One JSON line that sums up a run folder's record.json, for the device scripts' result files:
//   node bench/device/record-summary.mjs RUN_FOLDER [key=value ...]
// The key=value labels come first in the line (numbers as numbers). Then: wall and search time, rounds,
// NFEs and NFEs a second, forward passes, decodes, the best reward and candidate, how each worker ran
// (describe), and short hashes of the selection decisions and of every candidate's reward, to compare
// runs that should give the same answer.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [folder, ...labels] = process.argv.slice(2);
if (folder === undefined) throw new Error('usage: record-summary.mjs RUN_FOLDER [key=value ...]');
const r = JSON.parse(readFileSync(join(folder, 'record.json'), 'utf8'));
const hash = (value) => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 12);
const searchMs = r.rounds.reduce((sum, round) => sum + round.ms, 0);
const labelled = Object.fromEntries(labels.map((label) => {
  const at = label.indexOf('=');
  const value = label.slice(at + 1);
  return [label.slice(0, at), value !== '' && Number.isFinite(Number(value)) ? Number(value) : value];
}));
console.log(JSON.stringify({
  ...labelled,
  wallMs: Math.round(r.wallMs),
  searchMs: Math.round(searchMs),
  rounds: r.rounds.length,
  nfe: r.spent.nfe,
  nfePerSecond: Math.round(r.spent.nfe / (searchMs / 1000)),
  forward: r.spent.forwardPasses,
  decodes: r.spent.decodes,
  best: r.best?.reward ?? null,
  bestCandidate: r.best?.candidate ?? null,
  describe: r.workers,
  decisions: hash(r.candidates.map((c) => [c.parents, c.origin])),
  rewards: hash(r.candidates.map((c) => c.reward)),
}));
