// What an annotation project tells a data card (`dpo data card --project DIR`): how the labels
// were collected, by how many people, under which consent, and each group's share of the votes
// (small groups merged into "other", as everywhere).
import type { CollectionSummary } from '../data/card.js';
import { consentText, loadProject } from './config.js';
import { openDatabase } from './db.js';
import { computeGroupReport } from './groups.js';
import { computeQuality } from './quality.js';
import { dbPath, sha256 } from './store.js';

export function collectionSummary(dir: string): CollectionSummary {
  const project = loadProject(dir);
  const { config } = project;
  const db = openDatabase(dbPath(dir));
  try {
    const q = computeQuality(db, config);
    const g = computeGroupReport(db, config);
    const counts = db.prepare('SELECT COUNT(*) AS n, SUM(consented_at IS NOT NULL) AS c FROM annotators WHERE disabled = 0').get() as { n: number; c: number | null };
    const consent = project.consent.replace(/^#.*\n+/, '').trim();
    return {
      title: config.title,
      method:
        'Pairwise human judgements collected with `dpo annotate` (web UI; each reviewer sees the two responses in random order, ' +
        'with gold control items mixed in; labels aggregated by majority vote).',
      annotators: counts.n,
      consented: counts.c ?? 0,
      votes: q.votes,
      items: q.items.regular,
      overlap: config.overlap,
      labels: [...config.labels],
      consentSha256: sha256(consentText(project)),
      consentSummary: consent.split(/\n\s*\n/).slice(0, 2).join('\n\n'),
      attributes: Object.fromEntries(config.attributes.map((a) => [a.id, a.question])),
      groupShares: Object.fromEntries(g.attributes.map((a) => [a.attribute, Object.fromEntries(a.groups.map((x) => [x.group, x.voteShare]))])),
      minGroupSize: config.privacy.minGroupSize,
      krippendorffAlpha: q.agreement.krippendorffAlpha,
    };
  } finally {
    db.close();
  }
}
