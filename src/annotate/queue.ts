// Each annotator's queue: which item comes next (overlap k, gold items mixed in, A/B order
// randomized and recorded), and recording a vote exactly once (idempotency key).
import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { mulberry32 } from '../util/rng.js';
import type { AnnotateConfig, Label } from './config.js';
import { cachedStatement, nowIso, type DB } from './db.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Rng = () => number;

export const cryptoRng: Rng = () => randomInt(2 ** 47) / 2 ** 47;

/** Small seeded generator (mulberry32, as the data sampler uses) for reproducible tests. */
export function seededRng(seed: number): Rng {
  return mulberry32(seed);
}

export interface AssignmentView {
  id: number;
  itemId: number;
  format: 'text' | 'chat';
  /** JSON-decoded: a string or [{role, content}]. */
  prompt: unknown;
  /** The prompt as stored (JSON). */
  promptJson: string;
  /** Texts in screen order (already swapped). */
  shownA: string;
  shownB: string;
}

export interface Progress {
  done: number;
  remaining: number;
}

interface AssignmentRow {
  id: number;
  item_id: number;
  swapped: number;
  format: 'text' | 'chat';
  prompt: string;
  response_a: string;
  response_b: string;
}

function view(r: AssignmentRow): AssignmentView {
  return {
    id: r.id,
    itemId: r.item_id,
    format: r.format,
    prompt: JSON.parse(r.prompt),
    promptJson: r.prompt,
    shownA: r.swapped ? r.response_b : r.response_a,
    shownB: r.swapped ? r.response_a : r.response_b,
  };
}

const ASSIGNMENT_SELECT = `SELECT s.id, s.item_id, s.swapped, i.format, i.prompt, i.response_a, i.response_b
  FROM assignments s JOIN items i ON i.id = s.item_id`;

// Regular items this annotator has not seen that still need votes. Assignments of disabled
// annotators do not count toward the overlap, so their items go back to the pool.
const ELIGIBLE_REGULAR = `FROM items i
  WHERE i.is_gold = 0
    AND NOT EXISTS (SELECT 1 FROM assignments s WHERE s.item_id = i.id AND s.annotator_id = @me)
    AND (SELECT COUNT(*) FROM assignments s JOIN annotators a ON a.id = s.annotator_id
         WHERE s.item_id = i.id AND a.disabled = 0) < @overlap`;

const UNSEEN_GOLD = `FROM items i
  WHERE i.is_gold = 1
    AND NOT EXISTS (SELECT 1 FROM assignments s WHERE s.item_id = i.id AND s.annotator_id = @me)`;

export function progress(db: DB, me: number, config: AnnotateConfig): Progress {
  const done = (cachedStatement(db, 'SELECT COUNT(*) AS n FROM votes v JOIN assignments s ON s.id = v.assignment_id WHERE s.annotator_id = ?').get(me) as { n: number }).n;
  const open = (cachedStatement(db, 'SELECT COUNT(*) AS n FROM assignments s WHERE s.annotator_id = ? AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.assignment_id = s.id)')
    .get(me) as { n: number }).n;
  const p = { me, overlap: config.overlap };
  const regular = (cachedStatement(db, `SELECT COUNT(*) AS n ${ELIGIBLE_REGULAR}`).get(p) as { n: number }).n;
  const gold = (cachedStatement(db, `SELECT COUNT(*) AS n ${UNSEEN_GOLD}`).get({ me }) as { n: number }).n;
  return { done, remaining: open + regular + gold };
}

/**
 * The annotator's open assignment, or a new one. Regular items closest to their k votes come
 * first (so items complete instead of all being half-labeled); a gold item is mixed in with
 * probability goldRate; unseen gold items are served once regular ones run out.
 */
export function nextAssignment(db: DB, me: number, config: AnnotateConfig, rng: Rng): AssignmentView | null {
  return db.transaction((): AssignmentView | null => {
    const open = cachedStatement(db, `${ASSIGNMENT_SELECT} WHERE s.annotator_id = ? AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.assignment_id = s.id) ORDER BY s.id LIMIT 1`)
      .get(me) as AssignmentRow | undefined;
    if (open) return view(open);

    const regular = cachedStatement(
      db,
      `SELECT i.id, (SELECT COUNT(*) FROM assignments s WHERE s.item_id = i.id) AS taken ${ELIGIBLE_REGULAR}
       ORDER BY taken DESC, i.id LIMIT 1`,
    )
      .get({ me, overlap: config.overlap }) as { id: number } | undefined;
    const golds = cachedStatement(db, `SELECT i.id ${UNSEEN_GOLD} ORDER BY i.id`).all({ me }) as { id: number }[];
    let itemId: number | undefined;
    // Draw the gold coin only when both kinds are available, so the RNG sequence is stable.
    if (regular && golds.length > 0) itemId = rng() < config.goldRate ? golds[Math.floor(rng() * golds.length)]!.id : regular.id;
    else if (regular) itemId = regular.id;
    else if (golds.length > 0) itemId = golds[Math.floor(rng() * golds.length)]!.id;
    if (itemId === undefined) return null;

    const swapped = rng() < 0.5 ? 1 : 0;
    const r = cachedStatement(db, 'INSERT INTO assignments (item_id, annotator_id, swapped, served_at) VALUES (?, ?, ?, ?)').run(itemId, me, swapped, nowIso());
    const row = cachedStatement(db, `${ASSIGNMENT_SELECT} WHERE s.id = ?`).get(r.lastInsertRowid) as AssignmentRow;
    return view(row);
  }).immediate();
}

/** An assignment of this annotator (404 for anyone else's: no hint that it exists). */
export function getAssignment(db: DB, me: number, assignmentId: number): AssignmentView {
  const row = cachedStatement(db, `${ASSIGNMENT_SELECT} WHERE s.id = ? AND s.annotator_id = ?`).get(assignmentId, me) as AssignmentRow | undefined;
  if (!row) throw new HttpError(404, 'no such assignment');
  return view(row);
}

export const voteSchema = z
  .object({
    assignmentId: z.number().int().positive(),
    choice: z.enum(['A', 'B', 'tie', 'both_bad']),
    ratings: z.record(z.string(), z.object({ A: z.number().int(), B: z.number().int() }).strict()).default({}),
    rationale: z.string().default(''),
    /** Client-chosen unique key (e.g. a UUID): retrying the same request never records twice. */
    idempotencyKey: z.string().min(8).max(100).regex(/^[A-Za-z0-9_-]+$/),
  })
  .strict();

export type VoteInput = z.input<typeof voteSchema>;

export interface VoteResult {
  voteId: number;
  /** True when this idempotency key had already been recorded (nothing new written). */
  duplicate: boolean;
}

// Characters that show nothing on their own: whitespace, format characters (zero-width, bidi
// controls), combining marks, variation selectors, and blank letters (Hangul fillers, braille blank).
const INVISIBLE = /[\p{White_Space}\p{Cf}\p{M}\u115F\u1160\u3164\uFFA0\u2800\u034F\u180E]/gu;
// Control characters other than tab and newline (NUL, escapes, DEL, C1 controls).
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;

/**
 * A rationale as stored: CRLF → LF, control characters (other than tab and newline) removed,
 * trimmed; '' when no visible character is left (so "required" counts visible text only).
 */
export function cleanRationale(text: string): string {
  const s = text.replace(/\r\n?/g, '\n').replace(CONTROL, '').trim();
  return s.replace(INVISIBLE, '') === '' ? '' : s;
}

export function submitVote(db: DB, me: number, input: unknown, config: AnnotateConfig): VoteResult {
  const parsed = voteSchema.safeParse(input);
  if (!parsed.success) {
    throw new HttpError(400, `vote: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
  }
  const v = parsed.data;
  const allowed = config.labels.map((l) => (l === 'a' ? 'A' : l === 'b' ? 'B' : l));
  if (!allowed.includes(v.choice)) throw new HttpError(400, `vote: choice "${v.choice}" is not offered in this project`);
  const rationale = cleanRationale(v.rationale);
  if (config.rationale === 'off' && rationale !== '') throw new HttpError(400, 'vote: rationale is switched off in this project');
  if (config.rationale === 'required' && rationale === '') throw new HttpError(400, 'vote: a rationale is required');
  if (rationale.length > config.limits.maxRationaleChars) throw new HttpError(400, `vote: rationale longer than ${config.limits.maxRationaleChars} characters`);
  const critIds = config.criteria.map((c) => c.id);
  for (const k of Object.keys(v.ratings)) if (!critIds.includes(k)) throw new HttpError(400, `vote: unknown criterion "${k}"`);
  for (const c of critIds) {
    const r = v.ratings[c];
    if (!r) throw new HttpError(400, `vote: missing rating for criterion "${c}"`);
    for (const side of ['A', 'B'] as const) {
      if (r[side] < 1 || r[side] > config.ratingScale) throw new HttpError(400, `vote: rating ${c}.${side} must be 1..${config.ratingScale}`);
    }
  }

  return db.transaction((): VoteResult => {
    const prior = cachedStatement(db, 'SELECT v.id, v.assignment_id, s.annotator_id FROM votes v JOIN assignments s ON s.id = v.assignment_id WHERE v.idempotency_key = ?')
      .get(v.idempotencyKey) as { id: number; assignment_id: number; annotator_id: number } | undefined;
    if (prior) {
      if (prior.annotator_id !== me || prior.assignment_id !== v.assignmentId) throw new HttpError(409, 'vote: idempotency key already used for another vote');
      return { voteId: prior.id, duplicate: true };
    }
    const asg = cachedStatement(db, 'SELECT id, swapped, served_at FROM assignments WHERE id = ? AND annotator_id = ?').get(v.assignmentId, me) as
      | { id: number; swapped: number; served_at: string }
      | undefined;
    if (!asg) throw new HttpError(404, 'no such assignment');
    if (cachedStatement(db, 'SELECT 1 FROM votes WHERE assignment_id = ?').get(asg.id)) throw new HttpError(409, 'vote: this item already has your vote');
    const sw = asg.swapped === 1;
    const label: Label = v.choice === 'A' ? (sw ? 'b' : 'a') : v.choice === 'B' ? (sw ? 'a' : 'b') : v.choice;
    const ratings: Record<string, { a: number; b: number }> = {};
    for (const c of critIds) {
      const r = v.ratings[c]!;
      ratings[c] = sw ? { a: r.B, b: r.A } : { a: r.A, b: r.B };
    }
    const now = new Date();
    const timeMs = Math.max(0, now.getTime() - Date.parse(asg.served_at));
    const r = cachedStatement(
      db,
      `INSERT INTO votes (assignment_id, idempotency_key, label, shown_choice, ratings, rationale, time_ms, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    )
      .run(asg.id, v.idempotencyKey, label, v.choice, JSON.stringify(ratings), rationale, timeMs, now.toISOString());
    return { voteId: Number(r.lastInsertRowid), duplicate: false };
  }).immediate();
}
