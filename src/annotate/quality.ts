// Quality of the collected labels: agreement between annotators (Krippendorff's alpha, Fleiss'
// kappa, pairwise Cohen's kappa), per-annotator accuracy on gold items, position bias (share of
// "A" clicks), median time per item, and flags for likely spammers.
import type { AnnotateConfig, Label } from './config.js';
import { cachedStatement, type DB } from './db.js';

/** Cohen's kappa of two raters over the same items. null when chance agreement is 1 (no variation). */
export function cohenKappa(pairs: ReadonlyArray<readonly [string, string]>): number | null {
  const n = pairs.length;
  if (n === 0) return null;
  const c1 = new Map<string, number>();
  const c2 = new Map<string, number>();
  let agree = 0;
  for (const [x, y] of pairs) {
    if (x === y) agree++;
    c1.set(x, (c1.get(x) ?? 0) + 1);
    c2.set(y, (c2.get(y) ?? 0) + 1);
  }
  const po = agree / n;
  let pe = 0;
  for (const [k, v] of c1) pe += (v / n) * ((c2.get(k) ?? 0) / n);
  if (pe >= 1) return null;
  return (po - pe) / (1 - pe);
}

/**
 * Fleiss' kappa. counts[i][j] = raters who put subject i in category j; every row must have the
 * same total (the number of raters per subject, at least 2).
 */
export function fleissKappa(counts: ReadonlyArray<readonly number[]>): number | null {
  const N = counts.length;
  if (N === 0) return null;
  const k = counts[0]!.length;
  const n = counts[0]!.reduce((a, b) => a + b, 0);
  if (n < 2) throw new Error(`fleissKappa: need at least 2 ratings per subject, got ${n}`);
  const pj = new Array<number>(k).fill(0);
  let sumPi = 0;
  for (let i = 0; i < N; i++) {
    const row = counts[i]!;
    if (row.length !== k) throw new Error(`fleissKappa: row ${i} has ${row.length} categories, expected ${k}`);
    let tot = 0;
    let sq = 0;
    for (let j = 0; j < k; j++) {
      tot += row[j]!;
      sq += row[j]! * row[j]!;
      pj[j]! += row[j]!;
    }
    if (tot !== n) throw new Error(`fleissKappa: row ${i} has ${tot} ratings, expected ${n} (equal raters per subject)`);
    sumPi += (sq - n) / (n * (n - 1));
  }
  const Pbar = sumPi / N;
  let Pe = 0;
  for (let j = 0; j < k; j++) {
    const p = pj[j]! / (N * n);
    Pe += p * p;
  }
  if (Pe >= 1) return null;
  return (Pbar - Pe) / (1 - Pe);
}

/**
 * Krippendorff's alpha for nominal data. units[u] = the values given to unit u by whoever rated it
 * (any number of raters, missing data allowed); units with fewer than 2 values are not pairable.
 * null when there is no variation at all (expected disagreement 0).
 */
export function krippendorffAlphaNominal(units: ReadonlyArray<readonly string[]>): number | null {
  // Coincidence matrix o[c][k]: every ordered pair of values within a unit, weighted 1/(m_u - 1).
  const o = new Map<string, Map<string, number>>();
  const add = (c: string, k: string, w: number) => {
    let row = o.get(c);
    if (!row) o.set(c, (row = new Map()));
    row.set(k, (row.get(k) ?? 0) + w);
  };
  for (const vals of units) {
    const m = vals.length;
    if (m < 2) continue;
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) if (i !== j) add(vals[i]!, vals[j]!, 1 / (m - 1));
  }
  const nc = new Map<string, number>();
  let n = 0;
  let disagreeObs = 0;
  for (const [c, row] of o) {
    for (const [k, w] of row) {
      nc.set(c, (nc.get(c) ?? 0) + w);
      n += w;
      if (c !== k) disagreeObs += w;
    }
  }
  if (n <= 1) return null;
  let disagreeExp = 0;
  for (const [c, a] of nc) for (const [k, b] of nc) if (c !== k) disagreeExp += a * b;
  if (disagreeExp === 0) return null;
  return 1 - ((n - 1) * disagreeObs) / disagreeExp;
}

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface VoteRow {
  voteId: number;
  itemId: number;
  annotatorId: number;
  pseudonym: string;
  name: string;
  disabled: boolean;
  label: Label;
  shownChoice: 'A' | 'B' | 'tie' | 'both_bad';
  swapped: boolean;
  isGold: boolean;
  goldLabel: Label | null;
  timeMs: number;
  ratings: string;
  rationale: string;
  createdAt: string;
}

export function loadVotes(db: DB): VoteRow[] {
  const rows = cachedStatement(
    db,
    `SELECT v.id AS voteId, s.item_id AS itemId, a.id AS annotatorId, a.pseudonym, a.name, a.disabled,
              v.label, v.shown_choice AS shownChoice, s.swapped, i.is_gold AS isGold, i.gold_label AS goldLabel,
              v.time_ms AS timeMs, v.ratings, v.rationale, v.created_at AS createdAt
       FROM votes v JOIN assignments s ON s.id = v.assignment_id
       JOIN annotators a ON a.id = s.annotator_id JOIN items i ON i.id = s.item_id
       ORDER BY v.id`,
  )
    .all() as Array<Omit<VoteRow, 'disabled' | 'swapped' | 'isGold'> & { disabled: number; swapped: number; isGold: number }>;
  return rows.map((r) => ({ ...r, disabled: r.disabled === 1, swapped: r.swapped === 1, isGold: r.isGold === 1 }));
}

export type Flag = 'low_gold_accuracy' | 'position_bias' | 'too_fast' | 'straight_lining';

export interface AnnotatorQuality {
  id: number;
  pseudonym: string;
  name: string;
  disabled: boolean;
  consentedAt: string | null;
  votes: number;
  goldVotes: number;
  goldCorrect: number;
  goldAccuracy: number | null;
  /** Share of "A" among A/B clicks (screen position); about 0.5 for an unbiased reviewer. */
  shareA: number | null;
  medianSeconds: number | null;
  /** Share of votes equal to the majority of the other annotators on the same item. */
  agreementWithOthers: number | null;
  comparedVotes: number;
  labelCounts: Record<Label, number>;
  flags: Flag[];
  likelySpammer: boolean;
}

export interface QualityReport {
  items: { regular: number; gold: number; withVotes: number; complete: number };
  votes: number;
  agreement: {
    /** Items (regular and gold) with at least two votes. */
    pairableItems: number;
    krippendorffAlpha: number | null;
    fleissKappa: number | null;
    /** Fleiss' kappa needs the same number of raters per item: the items used and that number. */
    fleissItems: number;
    fleissRaters: number;
    meanCohenKappa: number | null;
    pairwise: { a: string; b: string; shared: number; kappa: number | null }[];
  };
  annotators: AnnotatorQuality[];
}

/** Whether an annotator fails the gold check (enough gold votes, accuracy below the bar). */
export function failsGold(q: Pick<AnnotatorQuality, 'goldVotes' | 'goldAccuracy'>, minGoldItems: number, minGoldAccuracy: number): boolean {
  return q.goldVotes >= minGoldItems && q.goldAccuracy !== null && q.goldAccuracy < minGoldAccuracy;
}

export function computeQuality(db: DB, config: AnnotateConfig): QualityReport {
  const votes = loadVotes(db).filter((v) => !v.disabled);
  const q = config.quality;
  const byItem = new Map<number, VoteRow[]>();
  for (const v of votes) {
    const list = byItem.get(v.itemId);
    if (list) list.push(v);
    else byItem.set(v.itemId, [v]);
  }

  // Agreement over items rated by at least two annotators.
  const units = [...byItem.values()].filter((l) => l.length >= 2).map((l) => l.map((v) => v.label));
  const sizes = new Map<number, number>();
  for (const u of units) sizes.set(u.length, (sizes.get(u.length) ?? 0) + 1);
  let fleissRaters = 0;
  let best = 0;
  for (const [m, cnt] of sizes) if (cnt > best || (cnt === best && m > fleissRaters)) [fleissRaters, best] = [m, cnt];
  const fleissRows = units
    .filter((u) => u.length === fleissRaters)
    .map((u) => ['a', 'b', 'tie', 'both_bad'].map((c) => u.filter((x) => x === c).length));

  const annotators = cachedStatement(db, 'SELECT id, pseudonym, name, disabled, consented_at FROM annotators ORDER BY id').all() as {
    id: number;
    pseudonym: string;
    name: string;
    disabled: number;
    consented_at: string | null;
  }[];
  const labelsOf = new Map<number, Map<number, Label>>(); // annotator -> item -> label
  for (const v of votes) {
    let m = labelsOf.get(v.annotatorId);
    if (!m) labelsOf.set(v.annotatorId, (m = new Map()));
    m.set(v.itemId, v.label);
  }
  const pairwise: QualityReport['agreement']['pairwise'] = [];
  const kappas: number[] = [];
  for (let i = 0; i < annotators.length; i++) {
    for (let j = i + 1; j < annotators.length; j++) {
      const A = labelsOf.get(annotators[i]!.id);
      const B = labelsOf.get(annotators[j]!.id);
      if (!A || !B) continue;
      const shared: [string, string][] = [];
      for (const [item, la] of A) {
        const lb = B.get(item);
        if (lb !== undefined) shared.push([la, lb]);
      }
      if (shared.length < 2) continue;
      const kappa = cohenKappa(shared);
      pairwise.push({ a: annotators[i]!.pseudonym, b: annotators[j]!.pseudonym, shared: shared.length, kappa });
      if (kappa !== null) kappas.push(kappa);
    }
  }

  const perAnnotator: AnnotatorQuality[] = annotators.map((a) => {
    const mine = votes.filter((v) => v.annotatorId === a.id);
    const gold = mine.filter((v) => v.isGold);
    const goldCorrect = gold.filter((v) => v.label === v.goldLabel).length;
    const ab = mine.filter((v) => v.shownChoice === 'A' || v.shownChoice === 'B');
    const shareA = ab.length ? ab.filter((v) => v.shownChoice === 'A').length / ab.length : null;
    const med = median(mine.map((v) => v.timeMs));
    const labelCounts: Record<Label, number> = { a: 0, b: 0, tie: 0, both_bad: 0 };
    const shownCounts = new Map<string, number>();
    for (const v of mine) {
      labelCounts[v.label]++;
      shownCounts.set(v.shownChoice, (shownCounts.get(v.shownChoice) ?? 0) + 1);
    }
    // Leave-one-out: compare with the strict majority of the others on the same item.
    let compared = 0;
    let agreed = 0;
    for (const v of mine) {
      const others = (byItem.get(v.itemId) ?? []).filter((o) => o.annotatorId !== a.id);
      if (others.length === 0) continue;
      const c = new Map<string, number>();
      for (const o of others) c.set(o.label, (c.get(o.label) ?? 0) + 1);
      const sorted = [...c.entries()].sort((x, y) => y[1] - x[1]);
      if (sorted.length > 1 && sorted[0]![1] === sorted[1]![1]) continue;
      compared++;
      if (sorted[0]![0] === v.label) agreed++;
    }
    const goldAccuracy = gold.length ? goldCorrect / gold.length : null;
    const flags: Flag[] = [];
    if (failsGold({ goldVotes: gold.length, goldAccuracy }, q.minGoldItems, q.minGoldAccuracy)) flags.push('low_gold_accuracy');
    if (ab.length >= q.minVotesForFlags && shareA !== null && (shareA > q.maxPositionShare || shareA < 1 - q.maxPositionShare)) flags.push('position_bias');
    if (mine.length >= q.minVotesForFlags && med !== null && med / 1000 < q.minMedianSeconds) flags.push('too_fast');
    if (mine.length >= q.minVotesForFlags && Math.max(...shownCounts.values()) / mine.length > q.maxSameLabelShare) flags.push('straight_lining');
    return {
      id: a.id,
      pseudonym: a.pseudonym,
      name: a.name,
      disabled: a.disabled === 1,
      consentedAt: a.consented_at,
      votes: mine.length,
      goldVotes: gold.length,
      goldCorrect,
      goldAccuracy,
      shareA,
      medianSeconds: med === null ? null : med / 1000,
      agreementWithOthers: compared ? agreed / compared : null,
      comparedVotes: compared,
      labelCounts,
      flags,
      // Failing gold is sufficient evidence; otherwise it takes two independent symptoms.
      likelySpammer: flags.includes('low_gold_accuracy') || flags.length >= 2,
    };
  });

  const counts = cachedStatement(db, 'SELECT SUM(is_gold = 0) AS regular, SUM(is_gold = 1) AS gold FROM items').get() as { regular: number | null; gold: number | null };
  const regularVoteCounts = [...byItem.entries()].filter(([, l]) => !l[0]!.isGold).map(([, l]) => l.length);
  return {
    items: {
      regular: counts.regular ?? 0,
      gold: counts.gold ?? 0,
      withVotes: byItem.size,
      complete: regularVoteCounts.filter((n) => n >= config.overlap).length,
    },
    votes: votes.length,
    agreement: {
      pairableItems: units.length,
      krippendorffAlpha: krippendorffAlphaNominal(units),
      fleissKappa: fleissRows.length ? fleissKappa(fleissRows) : null,
      fleissItems: fleissRows.length,
      fleissRaters,
      meanCohenKappa: kappas.length ? kappas.reduce((x, y) => x + y, 0) / kappas.length : null,
      pairwise,
    },
    annotators: perAnnotator,
  };
}
