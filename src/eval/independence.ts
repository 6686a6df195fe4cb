// How independent each judge is of AFINN, the demo's training reward: the share of its lexicon that
// is AFINN's (from the packages' data, see lexiconOverlap) and how its scores correlate with AFINN's
// on the same samples (Pearson r over every sample of every evaluated model).

import type { EvaluationResult } from './evaluate.js';
import { JUDGE_NAMES, lexiconOverlap, type JudgeName, type LexiconOverlap } from './judges.js';

export interface JudgeIndependence {
  judge: string;
  /** null for a judge without a lexicon of its own (e.g. a custom scorer). */
  overlap: LexiconOverlap | null;
  /** Pearson correlation of the judge's and AFINN's scores on the evaluation samples (NaN if undefined). */
  correlationWithAfinn: number;
  samples: number;
}

/** Pearson correlation coefficient; NaN when either side is constant or there are fewer than 2 points. */
export function pearson(xs: readonly number[], ys: readonly number[]): number {
  if (xs.length !== ys.length) throw new Error(`pearson: ${xs.length} vs ${ys.length} values`);
  const n = xs.length;
  if (n < 2) return NaN;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) { mx += xs[i]!; my += ys[i]!; }
  mx /= n; my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx, dy = ys[i]! - my;
    sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : NaN;
}

/** One row per judge of the evaluation. */
export function judgeIndependence(r: EvaluationResult): JudgeIndependence[] {
  const judges = Object.keys(r.models[0]?.rewards ?? {});
  const samples = r.models.flatMap((m) => m.samples);
  const afinn = judges.includes('afinn') ? samples.map((x) => x.rewards.afinn!) : null;
  return judges.map((j) => ({
    judge: j,
    overlap: (JUDGE_NAMES as readonly string[]).includes(j) ? lexiconOverlap(j as JudgeName) : null,
    correlationWithAfinn: afinn ? pearson(samples.map((x) => x.rewards[j]!), afinn) : NaN,
    samples: samples.length,
  }));
}

/** A fixed-width text table of judgeIndependence (the terminal summary). */
export function independenceTable(rows: readonly JudgeIndependence[]): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const head = ['judge', 'lexicon entries', 'of them in AFINN', 'AFINN covered', `r with AFINN (${rows[0]?.samples ?? 0} samples)`];
  const body = rows.map((x) => [
    x.judge,
    x.overlap ? `${x.overlap.judgeEntries} ${x.overlap.unit}s` : 'no lexicon',
    x.overlap ? `${pct(x.overlap.shareOfJudgeInAfinn)} (${x.overlap.judgeInAfinn})` : '-',
    x.overlap ? `${pct(x.overlap.shareOfAfinnCovered)} of ${x.overlap.afinnEntries}` : '-',
    Number.isNaN(x.correlationWithAfinn) ? '-' : x.correlationWithAfinn.toFixed(3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...body.map(line)].join('\n') + '\n';
}
