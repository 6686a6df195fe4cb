// The demo's output: plots (SVG written here, PNG rendered from it) and one self-contained HTML
// report that embeds the SVGs inline and escapes every piece of generated or corpus text.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fluencyColumns, tradeOffSentence, type EvaluationResult } from '../eval/evaluate.js';
import { judgeIndependence } from '../eval/independence.js';
import { formatDuration } from '../util/progress.js';
import { escapeXml, frontierChart, lineChart, PALETTE, svgToPng, type Series } from './plots.js';
import type { DemoSettings } from './settings.js';
import { methodOf, type MethodCost } from './rlhf.js';

export interface ReportData {
  evaluation: EvaluationResult;
  curves: Record<string, { train: Record<string, number>[]; eval: Record<string, number>[] }>;
  /** Watchdog warnings of each DPO run (by model name). */
  warnings?: Record<string, string[]>;
  timings: Record<string, number>;
  settings: DemoSettings;
  betas: number[];
  basePath: string;
  baseCached: boolean;
  promptSource: string;
  trainPairs: number;
  heldOutPairs: number;
  trainPairExamples: { prompt: string; chosen: string; rejected: string; score_chosen: number; score_rejected: number }[];
  pretrainMetrics: Record<string, number>[];
  pretrainSummary: Record<string, unknown> | null;
  seed: number;
  /** RLHF arms: cost per method and the reward model's held-out accuracy (when they ran). */
  costs?: MethodCost[];
  rmAccuracy?: number | null;
}

const esc = escapeXml;

/** Trailing mean over `w` points: per-step DPO metrics are noisy (16 pairs per step). */
function smooth(points: (readonly [number, number])[], w: number): (readonly [number, number])[] {
  return points.map(([x], i) => {
    const from = Math.max(0, i - w + 1);
    let acc = 0;
    for (let k = from; k <= i; k++) acc += points[k]![1];
    return [x, acc / (i - from + 1)] as const;
  });
}

function curveSeries(curves: ReportData['curves'], key: string): Series[] {
  const out: Series[] = [];
  Object.entries(curves).forEach(([name, c], i) => {
    const color = PALETTE[(i + 1) % PALETTE.length]!;
    const train = c.train.filter((r) => r[key] !== undefined).map((r) => [r.step!, r[key]!] as const);
    out.push({ name: `${name} train (10-step mean)`, color, points: smooth(train, 10) });
    const ev = c.eval.filter((r) => r[`eval/${key}`] !== undefined).map((r) => [r.step!, r[`eval/${key}`]!] as const);
    if (ev.length) out.push({ name: `${name} held-out`, color, dashed: true, markers: true, points: ev });
  });
  return out;
}

/** Writes plots/*.svg, plots/*.png and report.html; returns the files written. */
export function writeReport(out: string, d: ReportData): string[] {
  const files: string[] = [];
  const plots: { name: string; title: string; svg: string; caption: string }[] = [];
  const ev = d.evaluation;
  const primary = ev.primary;

  const add = (name: string, title: string, svg: string, caption: string): void => {
    plots.push({ name, title, svg, caption });
  };
  const judges = Object.keys(ev.models[0]!.rewards);
  /** Colour (one per method when there are RL arms, else per model) and the line joining a method's points. */
  const pointStyle = (m: EvaluationResult['models'][number], i: number): { color: string; group: string | undefined } => {
    const method = methodOf(m.name, m.beta === null);
    const colorIdx = d.costs ? ['reference', 'DPO', 'PPO', 'PPO-GT', 'GRPO'].indexOf(method) : i;
    return { color: PALETTE[colorIdx % PALETTE.length]!, group: d.costs ? method : undefined };
  };
  for (const j of judges) {
    add(`frontier_${j}`, `Reward–KL frontier (${j})`, frontierChart(
      { title: `${j === primary ? 'Ground-truth reward' : 'Held-out judge'}: ${j} vs KL`, xLabel: 'KL(π ‖ π_ref) per completion (nats, from samples)', yLabel: `mean ${j} score of samples` },
      ev.models.map((m, i) => ({ ...pointStyle(m, i), name: m.name, x: m.kl.mean, y: m.rewards[j]!.mean, xErr: m.kl.stderr, yErr: m.rewards[j]!.stderr })),
    ), j === primary
      ? `Each point is one model on held-out prompts: mean reward of its sampled completions against the KL divergence from the reference (error bars: one standard error). ${d.costs ? 'Dashed lines join the points of one method (DPO over β; PPO, PPO-GT over kl_coef; GRPO over β), as in the DPO paper\'s Figure 2.' : 'DPO trades KL for reward; smaller β moves further.'}`
      : `A judge the training never saw (${j}): if the points rise here too, the gain is sentiment, not only AFINN's word list.`);
  }
  // The fluency axis: the same rewards against the perplexity of the samples under the reference.
  // Reward hacking moves right (gibberish) while it moves up; a good model moves up only.
  const refPpl = ev.models.find((m) => m.beta === null)?.quality.perplexity ?? NaN;
  for (const j of judges) {
    add(`fluency_${j}`, `Reward–fluency (${j})`, frontierChart(
      { title: `${j === primary ? 'Ground-truth reward' : 'Held-out judge'}: ${j} vs perplexity`, xLabel: 'perplexity of the samples under the reference (per token)', yLabel: `mean ${j} score of samples` },
      ev.models.map((m, i) => ({ ...pointStyle(m, i), name: m.beta === null ? m.name : `${m.name} (${m.verdict})`, x: m.quality.perplexity, y: m.rewards[j]!.mean, yErr: m.rewards[j]!.stderr })),
    ), j === primary
      ? `The same points against fluency: the per-token perplexity of each model's samples under the reference (the reference's own samples: ${Number.isFinite(refPpl) ? refPpl.toFixed(1) : '–'}). Moving up is better text by the reward's measure; moving far to the right means the model no longer writes what the reference would — the labels give each model's verdict.`
      : `Held-out judge ${j} against fluency: the best trade-off is high on this axis without moving far right.`);
  }
  for (const [key, label] of [['loss', 'DPO loss'], ['rewards/accuracies', 'implicit-reward accuracy'], ['rewards/margins', 'implicit-reward margin']] as const) {
    const series = curveSeries(d.curves, key);
    if (series.some((s) => s.points.length)) {
      add(`train_${key.replace(/\W+/g, '_')}`, `Training: ${label}`, lineChart({ title: `Training: ${label}`, xLabel: 'optimizer step', yLabel: label }, series),
        'Solid: training batches (mean of the last 10 steps); dashed with markers: held-out pairs. A sharp change when the second epoch starts is memorization of pairs seen once; the held-out curve is the one to trust.');
    }
  }
  const pm = d.pretrainMetrics.filter((r) => r.loss !== undefined && r.step !== undefined);
  if (pm.length) {
    const evp = d.pretrainMetrics.filter((r) => r['eval/loss'] !== undefined);
    add('pretrain_loss', 'Pretraining loss', lineChart({ title: 'Base model pretraining', xLabel: 'optimizer step', yLabel: 'next-token loss (nats)' }, [
      { name: 'train', points: pm.map((r) => [r.step!, r.loss!] as const), color: PALETTE[1] },
      ...(evp.length ? [{ name: 'held-out chapters', points: evp.map((r) => [r.step!, r['eval/loss']!] as const), color: PALETTE[2], markers: true, dashed: true }] : []),
    ]), 'Next-token loss of the base model while pretraining (only when this run or its cache built it).');
  }

  const pngErrors: string[] = [];
  for (const p of plots) {
    const svgPath = join(out, 'plots', `${p.name}.svg`);
    writeFileSync(svgPath, p.svg);
    files.push(svgPath);
    const png = svgToPng(p.svg);
    if (png instanceof Error) pngErrors.push(png.message);
    else {
      const pngPath = join(out, 'plots', `${p.name}.png`);
      writeFileSync(pngPath, png);
      files.push(pngPath);
    }
  }

  // ---- HTML ----
  const fmt = (x: number, dgt = 3): string => (Number.isFinite(x) ? x.toFixed(dgt) : '–');
  const tableRows = ev.models.map((m) => `<tr><td>${esc(m.name)}</td>${judges.map((j) => `<td>${fmt(m.rewards[j]!.mean)} <span class="se">± ${fmt(m.rewards[j]!.stderr)}</span></td>`).join('')}` +
    `<td>${fmt(m.kl.mean, 2)} <span class="se">± ${fmt(m.kl.stderr, 2)}</span></td><td>${m.beta === null ? '–' : fmt(m.winRate)}</td><td>${fmt(m.implicitAccuracy)}</td><td>${fmt(m.meanTokens, 1)}</td></tr>`).join('\n');
  const fc = fluencyColumns(ev);
  const fluencyRows = fc.rows.map((r, i) => {
    const m = ev.models[i]!;
    const cls = m.beta === null ? '' : ` class="v-${m.verdict}"`;
    return `<tr>${r.map((c, k) => (k === r.length - 1 ? `<td${cls}><b>${esc(c)}</b>${m.verdictReasons.length ? `<br><span class="se">${esc(m.verdictReasons.join('; '))}</span>` : ''}</td>` : `<td>${esc(c)}</td>`)).join('')}</tr>`;
  }).join('\n');
  // The first warning of each kind per run (a watchdog repeats itself with new numbers while the condition lasts).
  const warningList = Object.entries(d.warnings ?? {}).flatMap(([name, ws]) => {
    const kinds = new Map<string, { first: string; n: number }>();
    for (const w of ws) {
      const kind = w.replace(/[\d.]+/g, '#').slice(0, 40);
      const k = kinds.get(kind);
      if (k) k.n++;
      else kinds.set(kind, { first: w, n: 1 });
    }
    return [...kinds.values()].map((k) => `<li><b>${esc(name)}</b>: ${esc(k.first)}${k.n > 1 ? ` <span class="se">(${k.n - 1} more like it)</span>` : ''}</li>`);
  });
  const slots = ev.samplesPerPrompt;
  const shown = Math.min(8, ev.prompts);
  const ref = ev.models[0]!;
  const sampleRows: string[] = [];
  for (let p = 0; p < shown; p++) {
    const r = p * slots;
    const cells = ev.models.map((m) => {
      const smp = m.samples[r]!;
      return `<td><span class="score">${primary} ${fmt(smp.rewards[primary]!, 0)}</span> ${esc(smp.completion)}</td>`;
    }).join('');
    sampleRows.push(`<tr><td class="prompt">${esc(ref.samples[r]!.prompt)}</td>${cells}</tr>`);
  }
  const pairRows = d.trainPairExamples.map((x) => `<tr><td class="prompt">${esc(x.prompt)}</td><td><span class="score">${fmt(x.score_chosen, 0)}</span> ${esc(x.chosen)}</td><td><span class="score">${fmt(x.score_rejected, 0)}</span> ${esc(x.rejected)}</td></tr>`).join('\n');
  const s = d.settings;
  const ps = d.pretrainSummary;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dpo-ts demo: controlled sentiment generation</title>
<style>
body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}th{background:#f3f3f3}
.se{color:#888;font-size:12px}.score{display:inline-block;min-width:3.5em;color:#555;font-size:12px;background:#f3f3f3;border-radius:3px;padding:0 3px}
.prompt{font-style:italic;white-space:nowrap}.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{flex:1 1 520px}.plot svg{max-width:100%;height:auto}
.caption{font-size:13px;color:#555}code{background:#f3f3f3;padding:0 3px}
.v-fluent{background:#e6f4e6}.v-degrading{background:#fff3d6}.v-collapsed{background:#fbe0e0}.summary{font-size:17px;border-left:4px solid #1f77b4;padding:4px 12px;background:#f5f9fd}
</style></head><body>
<h1>DPO demo: controlled sentiment generation</h1>
<p>The first experiment of the DPO paper (Rafailov et al. 2023, §6.1) in miniature: a base model continues short prompts;
a ground-truth sentiment score (AFINN-165, npm <code>sentiment</code>) ranks sampled completions; the best and worst completion of each
prompt form a preference pair; DPO trains against the frozen base for β ∈ {${d.betas.map((b) => esc(String(b))).join(', ')}}; each model is evaluated on
held-out prompts by mean reward and KL(π‖π_ref) estimated from its own samples, plus two judges the training never saw (Senticon via nlp.js, VADER).</p>
<h2>Results on held-out prompts</h2>
<p class="summary">${esc(tradeOffSentence(ev))}</p>
<p>${ev.prompts} held-out prompts × ${ev.samplesPerPrompt} samples per model (temperature 1, up to ${s.maxNewTokens} tokens), same random numbers for every model.
Implicit-reward accuracy: ${ev.heldOutPairs} held-out pairs. Win rate: share of samples whose ${esc(primary)} score beats the reference's sample for the same prompt and slot (ties count ½).</p>
<table><tr><th>model</th>${judges.map((j) => `<th>${esc(j)}${j === primary ? ' (training reward)' : ' (held-out judge)'}</th>`).join('')}<th>KL(π‖π_ref)</th><th>win rate vs reference</th><th>implicit-reward accuracy</th><th>tokens / completion</th></tr>
${tableRows}
</table>
<p>Fluency, diversity and length of the same samples. <i>ppl (ref)</i>: per-token perplexity under the reference model (× ref: relative to the reference's own samples);
<i>off top-k</i>: share of tokens outside the reference's k most likely; <i>distinct-1/2</i>: distinct words / word pairs over all samples; <i>repeat 3+</i>: samples repeating a phrase three or more times;
<i>self-sim</i>: how alike the samples of one prompt are; <i>hit max</i>: samples that ran to the token limit without a stop token.
The verdict compares each model with the reference's own figures (thresholds in the README, "Verdicts"): a reward gain from a model that is not fluent is reward hacking.</p>
<table><tr>${fc.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>
${fluencyRows}
</table>
${independenceHtml(ev)}
<div class="plots">
${plots.map((p) => `<div class="plot"><h3>${esc(p.title)}</h3>${p.svg.replace(/^<svg /, '<svg role="img" ')}<p class="caption">${esc(p.caption)}</p></div>`).join('\n')}
</div>
${pngErrors.length ? `<p>PNG copies were not written: ${esc(pngErrors[0]!)}</p>` : ''}
${warningList.length ? `<h2>Training watchdogs</h2>
<p>Warnings the DPO runs printed while training (samples of held-out prompts were checked at every evaluation, <code>sample_checks</code>; texts in <code>models/beta-*/eval_generations.jsonl</code>):</p>
<ul>${warningList.join('\n')}</ul>` : ''}
${d.costs && d.costs.length ? `<h2>Cost per method</h2>
<p>Wall time, peak tensor memory, tokens generated during training, and optimizer steps of each training run on this machine
(the preference data sampled for DPO and the reward model is shared and listed once).${d.rmAccuracy != null ? ` Reward model (PPO): held-out pair accuracy ${fmt(d.rmAccuracy)}.` : ''}</p>
<table><tr><th>method</th><th>run</th><th>wall time</th><th>peak tensor memory</th><th>generated tokens</th><th>optimizer steps</th></tr>
${d.costs.map((c) => `<tr><td>${esc(c.method)}</td><td>${esc(c.arm)}</td><td>${formatDuration(c.seconds)}</td><td>${(c.peakTensorBytes / 2 ** 20).toFixed(1)} MiB</td><td>${c.generatedTokens}</td><td>${c.optimizerSteps}</td></tr>`).join('\n')}
</table>` : ''}
<h2>Samples before and after</h2>
<p>The first sample of the first ${shown} held-out prompts, for the reference and each policy (the same random numbers for every model).</p>
<table><tr><th>prompt</th>${ev.models.map((m) => `<th>${esc(m.name)}${m.beta === null ? '' : ` (${esc(m.verdict)})`}</th>`).join('')}</tr>
${sampleRows.join('\n')}
</table>
<h2>Training pairs (examples)</h2>
<p>${d.trainPairs} training pairs and ${d.heldOutPairs} held-out pairs from ${s.samplesPerPrompt} samples per prompt (prompts: ${esc(d.promptSource)}). Data: <code>data/train_pairs.jsonl</code>, <code>data/heldout_pairs.jsonl</code>.</p>
<table><tr><th>prompt</th><th>chosen (AFINN)</th><th>rejected (AFINN)</th></tr>
${pairRows}
</table>
<h2>Setup</h2>
<ul>
<li>Base model: <code>${esc(d.basePath)}</code> (${d.baseCached ? 'from cache or given' : 'pretrained in this run'})${ps ? `: ${esc(String(ps.parameters))} parameters, ${esc(String(ps.train_tokens))} training tokens, held-out loss ${fmt(Number(ps.eval_loss_before))} → ${fmt(Number(ps.eval_loss_after))}` : ''}.</li>
<li>DPO: sigmoid loss, learning rate ${s.dpo.learningRate}, ${s.dpo.epochs} epochs, ${s.dpo.batchSize} pairs per step, full fine-tuning; models in <code>models/beta-*</code> (Hugging Face directories).</li>
<li>Seed ${d.seed}. Time: ${Object.entries(d.timings).map(([k, v]) => `${esc(k)} ${formatDuration(v)}`).join(', ')}.</li>
</ul>
</body></html>
`;
  const htmlPath = join(out, 'report.html');
  writeFileSync(htmlPath, html);
  files.push(htmlPath);
  return files;
}

/** The judges' independence from AFINN: lexicon overlap (from the packages' data) and score correlation. */
function independenceHtml(ev: EvaluationResult): string {
  const rows = judgeIndependence(ev);
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  return `<h3>How independent are the judges of AFINN?</h3>
<p>A held-out judge only tests generalisation if it does not score with AFINN's word list. Lexicon overlap is computed from each package's own data
(a stemming judge is compared on stems); the correlation is Pearson's r between the judge's and AFINN's scores over all ${rows[0]?.samples ?? 0} evaluation samples above.</p>
<table><tr><th>judge</th><th>lexicon entries</th><th>share of the judge's lexicon in AFINN</th><th>share of AFINN's words covered</th><th>r with AFINN on these samples</th></tr>
${rows.map((x) => `<tr><td>${esc(x.judge)}</td><td>${x.overlap ? `${x.overlap.judgeEntries} ${x.overlap.unit}s` : 'no lexicon'}</td><td>${x.overlap ? `${pct(x.overlap.shareOfJudgeInAfinn)} (${x.overlap.judgeInAfinn})` : '–'}</td>` +
    `<td>${x.overlap ? `${pct(x.overlap.shareOfAfinnCovered)} of ${x.overlap.afinnEntries}` : '–'}</td><td>${Number.isFinite(x.correlationWithAfinn) ? x.correlationWithAfinn.toFixed(3) : '–'}</td></tr>`).join('\n')}
</table>`;
}
