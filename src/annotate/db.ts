// SQLite storage of an annotation project (better-sqlite3, synchronous: a statement has finished
// when the call returns, so a vote is on disk before the HTTP response is written).
// WAL for concurrent readers, synchronous=FULL so a committed vote survives even an OS crash,
// foreign keys on, schema versioned with PRAGMA user_version.
import { closeSync, existsSync, openSync } from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import { requireOptional } from '../io/optional-deps.js';

export type DB = BetterSqlite3.Database;

/** Each entry moves the schema from version i to i+1. Append only; never edit a shipped one. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,             -- content hash: re-adding the same pair is a no-op
    format TEXT NOT NULL CHECK (format IN ('text', 'chat')),
    prompt TEXT NOT NULL,                 -- JSON: a string, or an array of {role, content}
    response_a TEXT NOT NULL,
    response_b TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    is_gold INTEGER NOT NULL DEFAULT 0 CHECK (is_gold IN (0, 1)),
    gold_label TEXT CHECK (gold_label IN ('a', 'b', 'tie', 'both_bad')),
    meta TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    CHECK (is_gold = 0 OR gold_label IS NOT NULL)
  );
  CREATE TABLE annotators (
    id INTEGER PRIMARY KEY,
    pseudonym TEXT NOT NULL UNIQUE,       -- the only id that leaves the database (exports)
    name TEXT NOT NULL,
    invite_hash TEXT NOT NULL UNIQUE,     -- sha256 of the 128-bit invite token
    created_at TEXT NOT NULL,
    consented_at TEXT,
    consent_sha256 TEXT,                  -- which consent text was agreed to
    disabled INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    annotator_id INTEGER REFERENCES annotators(id) ON DELETE CASCADE, -- NULL: admin session
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
  );
  CREATE TABLE assignments (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    swapped INTEGER NOT NULL CHECK (swapped IN (0, 1)), -- 1: screen A shows response_b
    served_at TEXT NOT NULL,
    UNIQUE (item_id, annotator_id)
  );
  CREATE INDEX assignments_by_annotator ON assignments(annotator_id);
  CREATE TABLE votes (
    id INTEGER PRIMARY KEY,
    assignment_id INTEGER NOT NULL UNIQUE REFERENCES assignments(id),
    idempotency_key TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL CHECK (label IN ('a', 'b', 'tie', 'both_bad')),   -- canonical
    shown_choice TEXT NOT NULL CHECK (shown_choice IN ('A', 'B', 'tie', 'both_bad')), -- what was clicked
    ratings TEXT NOT NULL DEFAULT '{}',   -- JSON {criterion: {a: n, b: n}} (canonical sides)
    rationale TEXT NOT NULL DEFAULT '',
    time_ms INTEGER NOT NULL,             -- server-measured: served_at to vote
    created_at TEXT NOT NULL
  );
  `,
  // v2: optional annotator attributes (asked after consent), apart from the votes, deletable.
  `
  CREATE TABLE annotator_attributes (
    annotator_id INTEGER NOT NULL REFERENCES annotators(id) ON DELETE CASCADE,
    attribute TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (annotator_id, attribute)
  );
  ALTER TABLE annotators ADD COLUMN attributes_answered_at TEXT;
  `,
  // v3: item texts rendered to sanitized HTML once, not on every request (rendered.ts).
  `
  CREATE TABLE rendered_html (
    key TEXT PRIMARY KEY,                 -- sha256 of the renderer key, the kind and the text
    html TEXT NOT NULL
  );
  `,
];

export function openDatabase(path: string, opts: { readonly?: boolean } = {}): DB {
  // A new database file is created readable by its owner only (0600, whatever the umask); SQLite
  // gives its -wal and -shm files the database file's mode.
  if (!opts.readonly && !existsSync(path)) closeSync(openSync(path, 'wx', 0o600));
  const Database = requireOptional<typeof BetterSqlite3>('better-sqlite3');
  const db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  if (!opts.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
  }
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  if (!opts.readonly) migrate(db);
  else {
    const v = db.pragma('user_version', { simple: true }) as number;
    if (v !== MIGRATIONS.length) throw new Error(`annotate db ${path}: schema version ${v}, expected ${MIGRATIONS.length}`);
  }
  return db;
}

export function migrate(db: DB): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`annotate db: schema version ${current} is newer than this program (${MIGRATIONS.length}); upgrade dpo-ts`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

// Prepared statements kept per connection. db.prepare() compiles the SQL anew each time, and the
// compiled statement (SQLite's malloc'd program) is freed only when V8 collects its JS wrapper —
// which, once promoted, waits for a full collection. Per-row statements of long jobs (add-prompts
// checks and inserts one prompt at a time), and the server's per-request queries (the queue, the
// votes, the quality report), then piled up in the C heap between collections; compiling them was
// also a quarter of a request's time (annotation server soak: 268 → 367 requests/s once cached).
const statements = new WeakMap<DB, Map<string, BetterSqlite3.Statement>>();

/** db.prepare(sql), compiled once per connection and reused. */
export function cachedStatement(db: DB, sql: string): BetterSqlite3.Statement {
  let m = statements.get(db);
  if (!m) statements.set(db, (m = new Map()));
  let st = m.get(sql);
  if (!st) m.set(sql, (st = db.prepare(sql)));
  return st;
}

export function nowIso(): string {
  return new Date().toISOString();
}

export function getMeta(db: DB, key: string): string | undefined {
  const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
  return row?.value;
}

export function setMeta(db: DB, key: string, value: string): void {
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
}
