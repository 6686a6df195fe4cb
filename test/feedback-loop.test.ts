// `dpo loop` on a tiny model: three rounds with a function judge (the judge's reward on held-out
// prompts rises round over round); a round labelled by people through the annotation server's real
// HTTP API (three annotators, gold items, a spammer the quality rules leave out); a SIGKILL in each
// phase of a round followed by --resume ends identical to the uninterrupted loop; bad judges,
// a missing project, a server that is down and a passed deadline stop with clear messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFeedbackLoop, type RoundRecord } from '../src/train/feedback-loop.js';
import { annotatePeople } from '../src/annotate/loop-people.js';
import { initProject, addPairs, createAnnotator, dbPath } from '../src/annotate/store.js';
import { openDatabase } from '../src/annotate/db.js';
import { startServer } from '../src/annotate/server.js';
import { seededRng } from '../src/annotate/queue.js';
import { Client } from './annotate-helpers.js';
import { runRewardModel } from '../src/train/rm.js';
import { parseRewardConfig } from '../src/train/rl-config.js';
import { loadRewardFunction } from '../src/train/rewards.js';
import { makeTinyModelDir, syntheticPairs, writeJsonl } from './fixtures/train/tiny.js';

const tmp = (p: string): string => mkdtempSync(join(tmpdir(), p));
const modelDir = await makeTinyModelDir();
const dir = tmp('loop-data-');
const prompts = writeJsonl(join(dir, 'prompts.jsonl'), syntheticPairs(48, 5).map((p) => ({ prompt: p.prompt })));
const evalPrompts = writeJsonl(join(dir, 'eval.jsonl'), syntheticPairs(16, 77).map((p) => ({ prompt: p.prompt })));
const letterScore = (c: string): number => {
  const l = c.replace(/[^a-z]/g, '');
  let s = 0;
  for (const ch of l) s += ch < 'n' ? 1 : -1;
  return l.length ? s / l.length : 0;
};
const rewardModule = join(dir, 'reward.mjs');
writeFileSync(rewardModule, `const score = ${letterScore.toString()};\nexport default ({ completions }) => completions.map(score);\n`);
const judgeModule = join(dir, 'judge.mjs');
writeFileSync(judgeModule, `const score = ${letterScore.toString()};\nexport function judge(p, a, b) { const x = score(a), y = score(b); return x > y ? 'a' : x < y ? 'b' : 'tie'; }\n`);
const throwingJudge = join(dir, 'throws.mjs');
writeFileSync(throwingJudge, 'export function judge(p, a, b) { if (a.length + b.length > 0) throw new Error("rate limited"); return 0; }\n');

const base = {
  prompts, eval_prompts: evalPrompts, candidates_per_prompt: 4, max_new_tokens: 8, eval_samples_per_prompt: 4,
  learning_rate: 8e-3, beta: 0.1, num_train_epochs: 2, per_device_train_batch_size: 8, lr_scheduler_type: 'constant',
  logging_steps: 1, save_steps: 2, max_length: 64, seed: 1,
};
const stripTimes = (rs: RoundRecord[]): unknown[] => rs.map(({ seconds: _s, ...r }) => r);
const readLoop = (d: string): RoundRecord[] => readFileSync(join(d, 'loop.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RoundRecord);

test('three rounds with a function judge: the reward on held-out prompts rises round over round', async () => {
  const out = tmp('loop-3-');
  const recs = await runFeedbackLoop({ dir: out, model: modelDir, quiet: true, config: { ...base, rounds: 3, judge: rewardModule, eval_judges: ['afinn'] } });
  assert.deepEqual(recs.map((r) => r.round), [0, 1, 2, 3]);
  const rew = recs.map((r) => r.reward[rewardModule]!);
  for (let k = 1; k <= 3; k++) assert.ok(rew[k]! > rew[k - 1]!, `reward did not rise at round ${k}: ${rew.map((x) => x.toFixed(3)).join(' → ')}`);
  assert.ok(rew[3]! > rew[0]! + 0.5, `rewards ${rew.join(' ')}`);
  assert.equal(recs[0]!.kl_to_initial, 0);
  assert.ok(recs[3]!.kl_to_initial > recs[1]!.kl_to_initial && recs[1]!.kl_to_initial > 0);
  assert.ok(recs[3]!.win_rate_vs_initial! > 0.6, `win rate vs initial ${recs[3]!.win_rate_vs_initial}`);
  assert.equal(recs[1]!.win_rate_vs_previous, recs[1]!.win_rate_vs_initial);
  for (const r of recs.slice(1)) {
    assert.ok(r.pairs >= 10 && r.train_steps > 0 && r.label_agreement !== null && 'afinn' in r.reward);
    // Labelled pairs are normal preference JSONL, each chosen scoring above its rejected under the judge.
    const pairs = readFileSync(join(out, `round-${r.round}`, 'pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    assert.equal(pairs.length, r.pairs);
    for (const p of pairs) {
      assert.deepEqual(Object.keys(p).sort(), ['chosen', 'prompt', 'rejected']);
      assert.ok(letterScore(p.chosen!) > letterScore(p.rejected!));
    }
    assert.ok(existsSync(join(out, `round-${r.round}`, 'train', 'model.safetensors')));
  }
  assert.deepEqual(stripTimes(readLoop(out)), stripTimes(recs));
  assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /\| 3 \| \d+ \| [\d.]+ \| [\d.]+ \| /);
  // A finished loop is never redone: resuming changes nothing.
  const t = statSync(join(out, 'round-2', 'eval.json')).mtimeMs;
  const again = await runFeedbackLoop({ dir: out, model: modelDir, quiet: true, resume: true });
  assert.deepEqual(stripTimes(again), stripTimes(recs));
  assert.equal(statSync(join(out, 'round-2', 'eval.json')).mtimeMs, t);
  await assert.rejects(runFeedbackLoop({ dir: out, model: modelDir, quiet: true, config: { ...base, judge: rewardModule } }), /already holds a loop.*--resume/);
  await assert.rejects(runFeedbackLoop({ dir: out, model: modelDir, quiet: true, resume: true, config: { ...base, rounds: 3, judge: rewardModule, beta: 0.2, eval_judges: ['afinn'] } }), /config differs/);
});

// ---- kill in each phase, then --resume: the same loop as without the kill ----
const cli = new URL('../src/cli/index.js', import.meta.url).pathname;
const killCfg = join(dir, 'kill.json');
writeFileSync(killCfg, JSON.stringify({ ...base, prompts, rounds: 2, judge: judgeModule, pairing: 'all_pairs', candidates_per_prompt: 3 }));
function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code, signal) => ok({ code, signal, stderr }));
  });
}
const straight = tmp('loop-straight-');
const straightDone = runCli(['loop', straight, '--model', modelDir, '--config', killCfg, '--quiet']);
const weights = (d: string): Buffer => readFileSync(join(d, 'round-2', 'train', 'model.safetensors'));

test('a SIGKILL in each phase of a round, each followed by --resume, ends identical to the uninterrupted loop', async () => {
  const out = tmp('loop-kill-');
  let args = ['loop', out, '--model', modelDir, '--config', killCfg, '--quiet'];
  for (const at of ['0:eval', '1:sample', '1:label-prompt', '1:label', '1:checkpoint', '1:train', '1:eval', '1:record', '2:checkpoint']) {
    const killed = await runCli(args, { DPO_LOOP_KILL_AT: at });
    assert.equal(killed.signal, 'SIGKILL', `the run was not killed at ${at}: ${killed.stderr}`);
    args = ['loop', out, '--model', modelDir, '--resume', '--quiet'];
  }
  const resumed = await runCli(args);
  assert.equal(resumed.code, 0, resumed.stderr);
  const s = await straightDone;
  assert.equal(s.code, 0, s.stderr);
  assert.deepEqual(stripTimes(readLoop(out)), stripTimes(readLoop(straight)));
  assert.ok(weights(out).equals(weights(straight)), 'final weights differ');
  for (const f of ['round-1/samples.jsonl', 'round-1/pairs.jsonl', 'round-2/pairs.jsonl', 'round-2/train/metrics.jsonl']) {
    const strip = (t: string): string => t.replace(/"tokens\/s":[^,}]+/g, '');
    assert.equal(strip(readFileSync(join(out, f), 'utf8')), strip(readFileSync(join(straight, f), 'utf8')), f);
  }
});

test('a judge that throws names the pair and stops the round with nothing of it written', async () => {
  const out = tmp('loop-throw-');
  await assert.rejects(
    runFeedbackLoop({ dir: out, model: modelDir, quiet: true, config: { ...base, rounds: 1, judge: throwingJudge } }),
    /judge .*throws\.mjs threw on prompt "Q\d+.*\(a ".*", b ".*"\): rate limited/,
  );
  assert.ok(existsSync(join(out, 'round-1', 'samples.jsonl')));
  assert.ok(!existsSync(join(out, 'round-1', 'pairs.jsonl')) && !existsSync(join(out, 'round-1', 'labels.json')));
  assert.deepEqual(readLoop(out).map((r) => r.round), [0]);
});

test('a reward-model directory as the judge (as `dpo rm` writes it): every pair ordered by its scores', async () => {
  const rmDir = tmp('loop-rm-');
  const pairsFile = writeJsonl(join(dir, 'rm-pairs.jsonl'), syntheticPairs(32, 9));
  await runRewardModel({ model: modelDir, data: [pairsFile], outputDir: rmDir, quiet: true, config: parseRewardConfig({ learning_rate: 3e-3, per_device_train_batch_size: 8, max_steps: 4, save_steps: 0, logging_steps: 2 }) });
  const out = tmp('loop-rmj-');
  const recs = await runFeedbackLoop({ dir: out, model: modelDir, quiet: true, config: { ...base, rounds: 1, judge: rmDir, pairing: 'all_pairs', candidates_per_prompt: 3, prompts_per_round: 12 } });
  assert.ok(recs[1]!.pairs > 12, `pairs ${recs[1]!.pairs}`);
  assert.ok(rmDir in recs[1]!.reward, 'the reward model scores the eval samples');
  const rm = await loadRewardFunction(rmDir, 320);
  const pairs = readFileSync(join(out, 'round-1', 'pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  const samples = readFileSync(join(out, 'round-1', 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; prompt_ids: number[]; candidates: string[]; candidate_ids: number[][] });
  for (const p of pairs.slice(0, 8)) {
    const s = samples.find((x) => x.prompt === p.prompt)!;
    const ids = (t: string): number[] => s.candidate_ids[s.candidates.indexOf(t)]!;
    const r = await rm.score({ prompts: [p.prompt!, p.prompt!], completions: [p.chosen!, p.rejected!], promptIds: [s.prompt_ids, s.prompt_ids], completionIds: [ids(p.chosen!), ids(p.rejected!)] });
    assert.ok(r[0]! > r[1]!, `chosen ${r[0]} ≤ rejected ${r[1]}`);
  }
});

// ---- people ----
const pageText = (html: string): string => html.replace(/<[^>]*>/g, '')
  .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16))).replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
  .replace(/&(amp|lt|gt|quot|apos);/g, (_, n: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[n]!);
test('people label a round through the annotation server: gold items, a spammer left out by the quality rules', async () => {
  const project = tmp('loop-proj-');
  initProject(project, { overlap: 3, goldRate: 0.3, quality: { minGoldItems: 2, minGoldAccuracy: 0.7 } } as never);
  const db = openDatabase(dbPath(project));
  const gold = syntheticPairs(6, 3).map((p, i) => ({ format: 'text' as const, prompt: p.prompt, chosen: p.chosen, rejected: p.rejected, line: i + 1 }));
  addPairs(db, gold, 'gold', true);
  const invites = ['honest-1', 'honest-2', 'honest-3', 'spammer'].map((n) => ({ name: n, token: createAnnotator(db, n).inviteToken }));
  const spammerPseudonym = (db.prepare("SELECT pseudonym FROM annotators WHERE name = 'spammer'").get() as { pseudonym: string }).pseudonym;
  db.close();
  const srv = await startServer({ dir: project, port: 0, rng: seededRng(5) });
  try {
    let done = false;
    let votes = 0;
    // Invite links sign in once: each annotator keeps their session (client) for the whole test.
    const sessions = new Map<string, Client>();
    for (const i of invites) {
      const c = new Client(srv.url);
      await c.loginAndConsent(i.token);
      sessions.set(i.name, c);
    }
    const annotator = async (name: string): Promise<void> => {
      const c = sessions.get(name)!;
      let k = 0;
      while (!done) {
        const next = (await c.call('POST', '/api/next', {})).json as { assignment: { id: number; aHtml: string; bHtml: string } | null };
        const a = next.assignment;
        if (!a) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        // What the page shows: the responses as sanitized HTML; the annotator reads the text.
        const x = letterScore(pageText(a.aHtml)), y = letterScore(pageText(a.bHtml));
        let choice = x > y ? 'A' : x < y ? 'B' : 'tie';
        // The spammer answers against the rule (and so against the gold answers).
        if (name === 'spammer') choice = choice === 'A' ? 'B' : 'A';
        const r = await c.call('POST', '/api/vote', { assignmentId: a.id, choice, idempotencyKey: `${name}-${k++}-vote` });
        assert.equal(r.status, 200, r.text);
        votes++;
      }
    };
    const people = annotatePeople({ project, url: srv.url, loopName: 'test', deadlineMinutes: 2, pollSeconds: 0.05, minVotes: 2, minAgreement: 0.5, quiet: true });
    const out = tmp('loop-people-');
    const crowd = invites.map((i) => annotator(i.name));
    const recs = await runFeedbackLoop({
      dir: out, model: modelDir, quiet: true, people,
      config: { ...base, prompts, rounds: 1, judge: 'people', annotate_project: project, annotate_url: srv.url, candidates_per_prompt: 2, pairing: 'random_pair', eval_judges: [rewardModule], prompts_per_round: 10 },
    }).finally(() => (done = true));
    await Promise.all(crowd);
    assert.ok(votes >= 30, `votes ${votes}`);
    const r1 = recs[1]!;
    assert.ok(r1.pairs >= 5, `pairs ${r1.pairs}`);
    const labels = JSON.parse(readFileSync(join(out, 'round-1', 'labels.json'), 'utf8')) as { note: string; label_agreement: number };
    assert.match(labels.note, new RegExp(`left out by the quality rules: ${spammerPseudonym}`));
    assert.equal(labels.label_agreement, 1, 'the counted (honest) votes agree');
    const pairs = readFileSync(join(out, 'round-1', 'pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    for (const p of pairs) assert.ok(letterScore(p.chosen!) > letterScore(p.rejected!), 'the honest majority decides, not the spammer');
    // The round's items are in the project under the loop's source.
    const db2 = openDatabase(dbPath(project));
    assert.ok((db2.prepare("SELECT COUNT(*) AS n FROM items WHERE source = 'loop test round-1'").get() as { n: number }).n >= r1.pairs);
    db2.close();
    // The admin dashboard's data shows the round as a batch, complete.
    const q = await fetch(`${srv.url}/api/admin/quality`, { headers: { Authorization: `Bearer ${readFileSync(join(project, 'admin-token'), 'utf8').trim()}` } });
    const batch = ((await q.json()) as { batches: { source: string; items: number; complete: number }[] }).batches.find((b) => b.source === 'loop test round-1')!;
    assert.ok(batch.items >= r1.pairs && batch.complete === batch.items, JSON.stringify(batch));
    // A passed deadline with too few votes stops with the count.
    const late = annotatePeople({ project, url: srv.url, loopName: 'late', deadlineMinutes: 0.005, pollSeconds: 0.05, minVotes: 2, minAgreement: 0.5, quiet: true });
    await assert.rejects(
      late.label(1, [{ prompt: 'p unseen', a: ' abc', b: ' xyz' }], { minPairs: 1, quiet: true }),
      /round 1: 0 pairs after the quality rules \(deadline passed with 0 of 1 items at 3 votes\), fewer than min_pairs 1/,
    );
    // A passed deadline with min_pairs met: the pairs collected so far are trained on. The three
    // honest annotators label one "late" item each and then stop; one item of two completes.
    const clients = invites.slice(0, 3).map((i) => sessions.get(i.name)!);
    const partial = annotatePeople({ project, url: srv.url, loopName: 'late2', deadlineMinutes: 0.08, pollSeconds: 0.05, minVotes: 2, minAgreement: 0.5, quiet: true });
    const labelled = partial.label(1, [{ prompt: 'late prompt 1', a: ' abc abc', b: ' xyz xyz' }, { prompt: 'late prompt 2', a: ' zzz', b: ' aaa' }], { minPairs: 1, quiet: true });
    while ((srv.db.prepare("SELECT COUNT(*) AS n FROM items WHERE source = 'loop late2 round-1'").get() as { n: number }).n < 2) await new Promise((r) => setTimeout(r, 20));
    for (const [n, c] of clients.entries()) {
      for (let k = 0; k < 20; k++) {
        const r = await c.call('POST', '/api/next', {});
        const a = (r.json as { assignment: { id: number; promptHtml: string; aHtml: string; bHtml: string } | null }).assignment;
        if (!a) break;
        const x = letterScore(pageText(a.aHtml)), y = letterScore(pageText(a.bHtml));
        assert.equal((await c.call('POST', '/api/vote', { assignmentId: a.id, choice: x > y ? 'A' : 'B', idempotencyKey: `late-${n}-${k}-vote` })).status, 200);
        if (pageText(a.promptHtml).includes('late prompt')) break;
      }
    }
    const got = await labelled;
    assert.deepEqual(got.pairs, [{ prompt: 'late prompt 1', chosen: ' abc abc', rejected: ' xyz xyz' }]);
    assert.match(got.note, /deadline passed with 1 of 2 items at 3 votes/);
  } finally {
    await srv.close();
  }
  // The server is down now: a clear message, not a hang.
  const down = annotatePeople({ project, url: srv.url, loopName: 'x', deadlineMinutes: null, pollSeconds: 1, minVotes: 1, minAgreement: 0.5, quiet: true });
  await assert.rejects(down.check(), /annotation server at http:\/\/127\.0\.0\.1:\d+ is not reachable \([A-Z_]+\); start it with `dpo annotate serve/);
  const missing = annotatePeople({ project: join(dir, 'nope'), url: srv.url, loopName: 'x', deadlineMinutes: null, pollSeconds: 1, minVotes: 1, minAgreement: 0.5, quiet: true });
  await assert.rejects(missing.check(), /not an annotation project .*dpo annotate init/);
});
