// Project creation, items, annotators and tokens. Every SQL statement is parameterized.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ADMIN_TOKEN_FILE,
  CONFIG_FILE,
  CONSENT_FILE,
  DB_FILE,
  DEFAULT_CONSENT,
  DEFAULT_GUIDELINES,
  GUIDELINES_FILE,
  configSchema,
  configToYaml,
  type AnnotateConfig,
  type Label,
} from './config.js';
import { cachedStatement, getMeta, nowIso, openDatabase, setMeta, type DB } from './db.js';
import type { ChatTurn, PairForAnnotation } from './import.js';

export type { DB };

/** 128-bit random token, URL-safe. */
export function newToken(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function dbPath(dir: string): string {
  return join(dir, DB_FILE);
}

export interface InitResult {
  adminToken: string;
  config: AnnotateConfig;
}

/** Creates DIR with annotate.yaml, guidelines.md, consent.md, the database and an admin token. */
export function initProject(dir: string, overrides: Partial<AnnotateConfig> = {}, opts: { force?: boolean } = {}): InitResult {
  if (existsSync(join(dir, CONFIG_FILE)) && !opts.force) {
    throw new Error(`annotate init: ${dir} already holds a project (${CONFIG_FILE}); use --force to rewrite its settings`);
  }
  const parsed = configSchema.safeParse(overrides);
  if (!parsed.success) {
    throw new Error(`annotate init: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const config = parsed.data;
  // The folder holds every item, rationale and annotator name: owner only (0700) when we create it.
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o700);
  }
  writeFileSync(join(dir, CONFIG_FILE), configToYaml(config));
  if (!existsSync(join(dir, GUIDELINES_FILE))) writeFileSync(join(dir, GUIDELINES_FILE), DEFAULT_GUIDELINES);
  if (!existsSync(join(dir, CONSENT_FILE))) writeFileSync(join(dir, CONSENT_FILE), DEFAULT_CONSENT);
  const db = openDatabase(dbPath(dir));
  try {
    const adminToken = newToken();
    setMeta(db, 'admin_token_hash', hashToken(adminToken));
    if (!getMeta(db, 'created_at')) setMeta(db, 'created_at', nowIso());
    // Kept beside the database, readable by the owner only, so `serve` can print the admin link.
    writeFileSync(join(dir, ADMIN_TOKEN_FILE), adminToken + '\n', { mode: 0o600 });
    chmodSync(join(dir, ADMIN_TOKEN_FILE), 0o600);
    return { adminToken, config };
  } finally {
    db.close();
  }
}

/**
 * Warnings for a project folder or database file (-wal, -shm included) that other local users can
 * read or write (any group/other permission bit), each with the chmod that fixes it.
 */
export function permissionWarnings(dir: string): string[] {
  if (process.platform === 'win32') return [];
  const out: string[] = [];
  const db = dbPath(dir);
  for (const [path, want] of [[dir, 0o700], [db, 0o600], [`${db}-wal`, 0o600], [`${db}-shm`, 0o600]] as const) {
    if (!existsSync(path)) continue;
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) {
      out.push(`${path} is mode ${mode.toString(8).padStart(3, '0')}: other local users can read the project's items, rationales and annotator names; run: chmod ${want.toString(8)} ${path}`);
    }
  }
  return out;
}

export interface NewItem {
  /** Values hashed into the item's uid (dedupe key). */
  uidKey: unknown[];
  format: 'text' | 'chat';
  prompt: string | ChatTurn[];
  responseA: string;
  responseB: string;
  source: string;
  /** Known answer for a gold (control) item, null for a regular item. */
  gold: Label | null;
  meta?: Record<string, unknown>;
}

function uidOf(key: unknown[]): string {
  return sha256(JSON.stringify(key));
}

/** Inserts an item unless one with the same uid exists. Returns whether it was inserted. */
export function insertItem(db: DB, it: NewItem): boolean {
  const r = cachedStatement(
    db,
    `INSERT INTO items (uid, format, prompt, response_a, response_b, source, is_gold, gold_label, meta, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(uid) DO NOTHING`,
  ).run(
    uidOf(it.uidKey),
    it.format,
    JSON.stringify(it.prompt),
    it.responseA,
    it.responseB,
    it.source,
    it.gold === null ? 0 : 1,
    it.gold,
    JSON.stringify(it.meta ?? {}),
    nowIso(),
  );
  return r.changes === 1;
}
insertItem.exists = (db: DB, uidKey: unknown[]): boolean =>
  cachedStatement(db, 'SELECT 1 FROM items WHERE uid = ?').get(uidOf(uidKey)) !== undefined;

export interface AddPairsResult {
  added: number;
  skipped: number;
}

/**
 * Adds pairs as items; response_a = the file's chosen, response_b = its rejected (screen order is
 * randomized per assignment anyway). With gold, the file's preference becomes the known answer.
 */
export function addPairs(db: DB, pairs: readonly PairForAnnotation[], source: string, gold: boolean): AddPairsResult {
  const res = { added: 0, skipped: 0 };
  db.transaction(() => {
    for (const p of pairs) {
      if (p.chosen === p.rejected) throw new Error(`add-pairs: ${source}:${p.line}: chosen and rejected are identical`);
      const ok = insertItem(db, {
        uidKey: ['pair', p.prompt, p.chosen, p.rejected],
        format: p.format,
        prompt: p.prompt,
        responseA: p.chosen,
        responseB: p.rejected,
        source,
        gold: gold ? 'a' : null,
        meta: { line: p.line },
      });
      if (ok) res.added++;
      else res.skipped++;
    }
  })();
  return res;
}

export interface AnnotatorRow {
  id: number;
  pseudonym: string;
  name: string;
  created_at: string;
  consented_at: string | null;
  disabled: number;
}

export interface NewAnnotator {
  id: number;
  pseudonym: string;
  name: string;
  inviteToken: string;
}

export function createAnnotator(db: DB, name: string): NewAnnotator {
  const clean = name.trim();
  if (clean === '' || clean.length > 100) throw new Error('create-annotator: name must be 1..100 characters');
  const inviteToken = newToken();
  // Pseudonym: random, so it reveals nothing about the name or the order of creation.
  for (;;) {
    const pseudonym = 'ann-' + randomBytes(5).toString('hex');
    try {
      const r = db
        .prepare('INSERT INTO annotators (pseudonym, name, invite_hash, created_at) VALUES (?, ?, ?, ?)')
        .run(pseudonym, clean, hashToken(inviteToken), nowIso());
      return { id: Number(r.lastInsertRowid), pseudonym, name: clean, inviteToken };
    } catch (e) {
      if (!String((e as Error).message).includes('annotators.pseudonym')) throw e;
    }
  }
}

/** A new invite token (the old link stops working, and the annotator's sessions end). */
export function resetInvite(db: DB, annotatorId: number): string {
  const token = newToken();
  db.transaction(() => {
    const r = db.prepare('UPDATE annotators SET invite_hash = ? WHERE id = ?').run(hashToken(token), annotatorId);
    if (r.changes !== 1) throw new Error(`reset-invite: no annotator ${annotatorId}`);
    db.prepare('DELETE FROM sessions WHERE annotator_id = ?').run(annotatorId);
  })();
  return token;
}

export function setAnnotatorDisabled(db: DB, annotatorId: number, disabled: boolean): void {
  db.transaction(() => {
    const r = db.prepare('UPDATE annotators SET disabled = ? WHERE id = ?').run(disabled ? 1 : 0, annotatorId);
    if (r.changes !== 1) throw new Error(`disable: no annotator ${annotatorId}`);
    if (disabled) db.prepare('DELETE FROM sessions WHERE annotator_id = ?').run(annotatorId);
  })();
}

export function listAnnotators(db: DB): AnnotatorRow[] {
  return db.prepare('SELECT id, pseudonym, name, created_at, consented_at, disabled FROM annotators ORDER BY id').all() as AnnotatorRow[];
}

export function inviteUrl(baseUrl: string, token: string): string {
  // The token travels in the fragment: browsers never send it to servers, proxies or Referer.
  return `${baseUrl.replace(/\/+$/, '')}/login#invite=${token}`;
}

export function countItems(db: DB): { regular: number; gold: number } {
  const r = db.prepare('SELECT SUM(is_gold = 0) AS regular, SUM(is_gold = 1) AS gold FROM items').get() as { regular: number | null; gold: number | null };
  return { regular: r.regular ?? 0, gold: r.gold ?? 0 };
}

/** Per source of regular items (a file, or a `dpo loop` round): items, how many have their `overlap` votes from enabled annotators, votes. */
export function sourceProgress(db: DB, overlap: number): { source: string; items: number; complete: number; votes: number }[] {
  return db.prepare(`SELECT source, COUNT(*) AS items, SUM(CASE WHEN n >= @overlap THEN 1 ELSE 0 END) AS complete, SUM(n) AS votes
    FROM (SELECT i.id, i.source, (SELECT COUNT(*) FROM votes v JOIN assignments s ON s.id = v.assignment_id JOIN annotators a ON a.id = s.annotator_id
      WHERE s.item_id = i.id AND a.disabled = 0) AS n FROM items i WHERE i.is_gold = 0)
    GROUP BY source ORDER BY MIN(id)`).all({ overlap }) as { source: string; items: number; complete: number; votes: number }[];
}
