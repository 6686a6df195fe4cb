// Whose preferences: optional annotator attributes (asked after consent, stored apart from the
// votes, deletable), the groups they define, and per-group figures: vote share, agreement within
// and across groups, items where the groups' majorities disagree. Groups smaller than
// privacy.minGroupSize annotators are merged into "other" before anything leaves this module.
import { HttpError } from './queue.js';
import { NOT_STATED, OTHER_GROUP, PREFER_NOT_TO_SAY, type AnnotateConfig, type Label } from './config.js';
import { nowIso, type DB } from './db.js';
import { krippendorffAlphaNominal, loadVotes, type VoteRow } from './quality.js';

/** Validates and stores an annotator's answers (once). `answers[id]` = one of the options, "prefer not to say", or null/absent. */
export function saveAttributes(db: DB, annotatorId: number, body: unknown, config: AnnotateConfig, consentSha256: string): { stored: number } {
  const b = (body ?? {}) as { answers?: unknown };
  const answers = b.answers ?? {};
  if (typeof answers !== 'object' || answers === null || Array.isArray(answers)) throw new HttpError(400, 'attributes: "answers" must be an object {attribute: answer}');
  const byId = new Map(config.attributes.map((a) => [a.id, a]));
  const rows: [string, string][] = [];
  for (const [k, v] of Object.entries(answers as Record<string, unknown>)) {
    const a = byId.get(k);
    if (!a) throw new HttpError(400, `attributes: unknown attribute "${k}"`);
    if (v === null || v === undefined || v === '') continue;
    if (typeof v !== 'string' || (v !== PREFER_NOT_TO_SAY && !a.options.includes(v))) {
      throw new HttpError(400, `attributes: "${k}" must be one of ${[...a.options, PREFER_NOT_TO_SAY].map((o) => JSON.stringify(o)).join(', ')}`);
    }
    if (v !== PREFER_NOT_TO_SAY) rows.push([k, v]); // "prefer not to say" is stored as no answer at all
  }
  return db.transaction(() => {
    const me = db.prepare('SELECT consented_at, consent_sha256, attributes_answered_at FROM annotators WHERE id = ?').get(annotatorId) as
      | { consented_at: string | null; consent_sha256: string | null; attributes_answered_at: string | null }
      | undefined;
    if (!me) throw new HttpError(404, 'attributes: no such annotator');
    if (!me.consented_at) throw new HttpError(403, 'consent required first');
    // Consent given to an earlier text (before the questions were configured) does not cover them.
    if (me.consent_sha256 !== consentSha256) throw new HttpError(403, 'attributes: your consent was given to a text that did not include these questions');
    if (me.attributes_answered_at) throw new HttpError(409, 'attributes: already answered (ask the project admin to delete them: dpo annotate forget)');
    const ins = db.prepare('INSERT INTO annotator_attributes (annotator_id, attribute, value, created_at) VALUES (?, ?, ?, ?)');
    const now = nowIso();
    for (const [k, v] of rows) ins.run(annotatorId, k, v, now);
    db.prepare('UPDATE annotators SET attributes_answered_at = ? WHERE id = ?').run(now, annotatorId);
    return { stored: rows.length };
  })();
}

/** Whether to ask the optional questions now: consented to the current text (which lists them), not yet answered. */
export function attributesDue(db: DB, annotatorId: number, consentSha256: string): boolean {
  const r = db.prepare('SELECT consent_sha256, attributes_answered_at FROM annotators WHERE id = ?').get(annotatorId) as
    | { consent_sha256: string | null; attributes_answered_at: string | null }
    | undefined;
  return r !== undefined && r.consent_sha256 === consentSha256 && r.attributes_answered_at === null;
}

export interface ForgetResult {
  pseudonym: string;
  attributes: number;
  votes: number;
}

/**
 * Deletes an annotator's attributes and, with `votes`, their votes (and assignments), found by
 * name or pseudonym. Deleted content is overwritten (secure_delete) and the WAL checkpointed, so
 * it does not linger in the database files.
 */
export function forgetAnnotator(db: DB, who: string, opts: { votes: boolean }): ForgetResult {
  const matches = db.prepare('SELECT id, pseudonym FROM annotators WHERE name = ? OR pseudonym = ?').all(who, who) as { id: number; pseudonym: string }[];
  if (matches.length === 0) throw new Error(`forget: no annotator named "${who}" (give the name or the pseudonym ann-…)`);
  if (matches.length > 1) throw new Error(`forget: ${matches.length} annotators are named "${who}" (${matches.map((m) => m.pseudonym).join(', ')}); give the pseudonym`);
  const { id, pseudonym } = matches[0]!;
  db.pragma('secure_delete = ON');
  const res = db.transaction(() => {
    const attributes = db.prepare('DELETE FROM annotator_attributes WHERE annotator_id = ?').run(id).changes;
    // Not asked again: the annotator asked to be forgotten.
    db.prepare('UPDATE annotators SET attributes_answered_at = COALESCE(attributes_answered_at, ?) WHERE id = ?').run(nowIso(), id);
    let votes = 0;
    if (opts.votes) {
      votes = db.prepare('DELETE FROM votes WHERE assignment_id IN (SELECT id FROM assignments WHERE annotator_id = ?)').run(id).changes;
      db.prepare('DELETE FROM assignments WHERE annotator_id = ?').run(id);
    }
    return { pseudonym, attributes, votes };
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  return res;
}

/** Raw answers: annotator id → attribute → value (only stated answers). */
export function loadAttributes(db: DB): Map<number, Record<string, string>> {
  const out = new Map<number, Record<string, string>>();
  for (const r of db.prepare('SELECT annotator_id AS id, attribute, value FROM annotator_attributes').all() as { id: number; attribute: string; value: string }[]) {
    let m = out.get(r.id);
    if (!m) out.set(r.id, (m = {}));
    m[r.attribute] = r.value;
  }
  return out;
}

/**
 * Group of each annotator per attribute, after the small-group rule: every group (the stated
 * answers and "not stated") with fewer than minGroupSize annotators is merged into "other"; if
 * "other" is then still below the minimum and other groups remain, the smallest of them is merged
 * in too, until "other" is large enough or it is the only group.
 */
export function groupAssignments(annotatorIds: readonly number[], attrs: Map<number, Record<string, string>>, attribute: string, minGroupSize: number): Map<number, string> {
  const raw = new Map<number, string>();
  for (const id of annotatorIds) raw.set(id, attrs.get(id)?.[attribute] ?? NOT_STATED);
  const sizes = new Map<string, number>();
  for (const g of raw.values()) sizes.set(g, (sizes.get(g) ?? 0) + 1);
  const merged = new Set<string>();
  for (const [g, n] of sizes) if (n < minGroupSize) merged.add(g);
  const otherSize = () => [...merged].reduce((a, g) => a + sizes.get(g)!, 0);
  while (merged.size > 0 && otherSize() < minGroupSize) {
    const rest = [...sizes.entries()].filter(([g]) => !merged.has(g)).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
    if (rest.length === 0) break;
    merged.add(rest[0]![0]);
  }
  const out = new Map<number, string>();
  for (const [id, g] of raw) out.set(id, merged.has(g) ? OTHER_GROUP : g);
  return out;
}

/** Per attribute: annotator id → group, over the annotators who are not disabled. */
export function annotatorGroups(db: DB, config: AnnotateConfig): Map<string, Map<number, string>> {
  const ids = (db.prepare('SELECT id FROM annotators WHERE disabled = 0 ORDER BY id').all() as { id: number }[]).map((r) => r.id);
  const attrs = loadAttributes(db);
  return new Map(config.attributes.map((a) => [a.id, groupAssignments(ids, attrs, a.id, config.privacy.minGroupSize)]));
}

export interface GroupFigures {
  group: string;
  annotators: number;
  annotatorShare: number;
  votes: number;
  voteShare: number;
  /** Krippendorff's alpha among this group's votes (items with ≥ 2 of them). */
  alphaWithin: number | null;
  pairableItems: number;
}

export interface AttributeReport {
  attribute: string;
  question: string;
  groups: GroupFigures[];
  /** Share of items, among those where both groups have a strict majority, on which the majorities agree. */
  across: { a: string; b: string; items: number; agreement: number | null }[];
  /** Items where at least two groups' strict majorities differ. */
  disagreements: { count: number; items: { itemId: number; majorities: Record<string, Label> }[] };
  warnings: string[];
}

export interface GroupReport {
  minGroupSize: number;
  maxVoteShare: number;
  attributes: AttributeReport[];
}

function strictMajority(labels: readonly Label[]): Label | null {
  const c = new Map<Label, number>();
  for (const l of labels) c.set(l, (c.get(l) ?? 0) + 1);
  const s = [...c.entries()].sort((x, y) => y[1] - x[1]);
  if (s.length === 0 || (s.length > 1 && s[0]![1] === s[1]![1])) return null;
  return s[0]![0];
}

/** Per-group figures over the regular items' votes of annotators who are not disabled. */
export function computeGroupReport(db: DB, config: AnnotateConfig, votes: readonly VoteRow[] = loadVotes(db)): GroupReport {
  const counted = votes.filter((v) => !v.disabled && !v.isGold);
  const groupsOf = annotatorGroups(db, config);
  const attributes: AttributeReport[] = [];
  for (const attr of config.attributes) {
    const gmap = groupsOf.get(attr.id)!;
    const annotatorsBy = new Map<string, number>();
    for (const g of gmap.values()) annotatorsBy.set(g, (annotatorsBy.get(g) ?? 0) + 1);
    const totalAnn = gmap.size;
    // item → group → labels
    const byItem = new Map<number, Map<string, Label[]>>();
    const votesBy = new Map<string, number>();
    for (const v of counted) {
      const g = gmap.get(v.annotatorId) ?? OTHER_GROUP;
      votesBy.set(g, (votesBy.get(g) ?? 0) + 1);
      let m = byItem.get(v.itemId);
      if (!m) byItem.set(v.itemId, (m = new Map()));
      const l = m.get(g);
      if (l) l.push(v.label);
      else m.set(g, [v.label]);
    }
    const groupNames = [...annotatorsBy.keys()].sort((a, b) => annotatorsBy.get(b)! - annotatorsBy.get(a)! || (a < b ? -1 : 1));
    const groups: GroupFigures[] = groupNames.map((g) => {
      const units = [...byItem.values()].map((m) => m.get(g) ?? []).filter((l) => l.length >= 2);
      return {
        group: g,
        annotators: annotatorsBy.get(g)!,
        annotatorShare: totalAnn ? annotatorsBy.get(g)! / totalAnn : 0,
        votes: votesBy.get(g) ?? 0,
        voteShare: counted.length ? (votesBy.get(g) ?? 0) / counted.length : 0,
        alphaWithin: krippendorffAlphaNominal(units),
        pairableItems: units.length,
      };
    });
    const majorities = new Map<number, Map<string, Label>>();
    for (const [item, m] of byItem) {
      const mm = new Map<string, Label>();
      for (const [g, l] of m) {
        const maj = strictMajority(l);
        if (maj !== null) mm.set(g, maj);
      }
      majorities.set(item, mm);
    }
    const across: AttributeReport['across'] = [];
    for (let i = 0; i < groupNames.length; i++) {
      for (let j = i + 1; j < groupNames.length; j++) {
        let items = 0;
        let agree = 0;
        for (const mm of majorities.values()) {
          const x = mm.get(groupNames[i]!);
          const y = mm.get(groupNames[j]!);
          if (x === undefined || y === undefined) continue;
          items++;
          if (x === y) agree++;
        }
        across.push({ a: groupNames[i]!, b: groupNames[j]!, items, agreement: items ? agree / items : null });
      }
    }
    const dis: AttributeReport['disagreements']['items'] = [];
    let disCount = 0;
    for (const [item, mm] of [...majorities.entries()].sort((a, b) => a[0] - b[0])) {
      if (new Set(mm.values()).size > 1) {
        disCount++;
        if (dis.length < 20) dis.push({ itemId: item, majorities: Object.fromEntries(mm) });
      }
    }
    const warnings: string[] = [];
    for (const g of groups) {
      if (g.group !== NOT_STATED && g.votes > 0 && g.voteShare > config.groups.maxVoteShare) {
        warnings.push(
          `${attr.id}: group "${g.group}" contributes ${(100 * g.voteShare).toFixed(1)}% of the votes (more than ${(100 * config.groups.maxVoteShare).toFixed(0)}%; ` +
            `${(100 * g.annotatorShare).toFixed(1)}% of the annotators); export with --group-balance ${attr.id} to weight it down`,
        );
      }
    }
    attributes.push({ attribute: attr.id, question: attr.question, groups, across, disagreements: { count: disCount, items: dis }, warnings });
  }
  return { minGroupSize: config.privacy.minGroupSize, maxVoteShare: config.groups.maxVoteShare, attributes };
}
