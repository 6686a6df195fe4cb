// The annotation web server (node:http, no framework). Annotators log in through an invite link,
// agree to the consent text, then label their own queue; the admin (admin token) creates
// annotators and watches quality. Security model:
//  - sessions: random 256-bit cookie (HttpOnly, SameSite=Strict), stored hashed, expiring;
//  - CSRF: every state-changing request is a JSON POST carrying the session's CSRF token in a
//    header, and a cross-origin Origin header is refused;
//  - all texts reach the page as sanitized HTML (render.ts) or through textContent, under a strict CSP;
//  - bodies are size-limited and must be JSON objects; logins and failed admin-token (Bearer)
//    checks rate-limited per client address; static files confined;
//  - an invite link opens one session and is then used up (the session is the credential).
import { timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN_FILE, consentText, loadProject, PREFER_NOT_TO_SAY, type AnnotateConfig, type Project } from './config.js';
import { getMeta, nowIso, openDatabase, type DB } from './db.js';
import { attributesDue, computeGroupReport, saveAttributes } from './groups.js';
import { computeQuality } from './quality.js';
import { cryptoRng, getAssignment, HttpError, nextAssignment, progress, submitVote, type AssignmentView, type Rng } from './queue.js';
import { escapeHtml, renderMarkdown } from './render.js';
import { markdownHtml, promptHtml, renderPendingItems } from './rendered.js';
import { createAnnotator, dbPath, permissionWarnings, sourceProgress, hashToken, inviteUrl, listAnnotators, newToken, resetInvite, setAnnotatorDisabled, sha256 } from './store.js';

export interface ServerOptions {
  dir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Source of randomness for queue order and A/B swaps (seeded in tests). */
  rng?: Rng;
  /** Public base URL for invite links (default http://HOST:PORT). */
  baseUrl?: string;
  log?: (msg: string) => void;
}

export interface AnnotateServer {
  url: string;
  port: number;
  db: DB;
  project: Project;
  close(): Promise<void>;
}

const SESSION_COOKIE = 'dpo_session';
const ADMIN_COOKIE = 'dpo_admin';

/** The package root (folder of package.json), found from this file in src/ or dist/src/. */
function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'src', 'annotate', 'public'))) return d;
    const up = dirname(d);
    if (up === d) throw new Error('annotate: cannot find the package root (src/annotate/public) above ' + fileURLToPath(import.meta.url));
    d = up;
  }
}

export const PUBLIC_DIR = join(packageRoot(), 'src', 'annotate', 'public');

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
};

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

interface Session {
  tokenHash: string;
  annotatorId: number | null;
  csrf: string;
  consentedAt: string | null;
  name: string;
  pseudonym: string;
}

function parseCookies(header: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  if (!header) return m;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    m.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return m;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Fixed-window counter per client address. */
class RateLimiter {
  private hits = new Map<string, { start: number; n: number }>();
  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}
  /** Seconds to wait before the next attempt is allowed (0: allowed); counts nothing. */
  blocked(key: string): number {
    const h = this.hits.get(key);
    if (!h || this.now() - h.start >= 60_000 || h.n < this.perMinute) return 0;
    return Math.ceil((h.start + 60_000 - this.now()) / 1000);
  }
  /** Whether one more attempt is allowed; counts it. Returns seconds to wait when not. */
  take(key: string): number {
    const t = this.now();
    let h = this.hits.get(key);
    if (!h || t - h.start >= 60_000) {
      h = { start: t, n: 0 };
      this.hits.set(key, h);
    }
    h.n++;
    if (this.hits.size > 10_000) for (const [k, v] of this.hits) if (t - v.start >= 60_000) this.hits.delete(k);
    return h.n <= this.perMinute ? 0 : Math.ceil((h.start + 60_000 - t) / 1000);
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `request body exceeds the limit of ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export async function startServer(opts: ServerOptions): Promise<AnnotateServer> {
  const project = loadProject(opts.dir);
  const config: AnnotateConfig = project.config;
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  for (const w of permissionWarnings(opts.dir)) log(`warning: ${w}`);
  const db = openDatabase(dbPath(opts.dir));
  const rng = opts.rng ?? cryptoRng;
  const loginLimiter = new RateLimiter(config.limits.loginAttemptsPerMinute);
  const adminHash = getMeta(db, 'admin_token_hash');
  if (!adminHash) throw new Error(`annotate serve: ${opts.dir} has no admin token (re-run "dpo annotate init ${opts.dir} --force")`);
  // The consent text covers the optional attribute questions too (config.attributes).
  const consentHash = sha256(consentText(project));
  const guidelinesHtml = renderMarkdown(project.guidelines);
  const consentHtml = renderMarkdown(consentText(project));
  const attributesJson = config.attributes.map((a) => ({ id: a.id, question: a.question, options: [...a.options, PREFER_NOT_TO_SAY] }));
  const publicDir = realpathSync(PUBLIC_DIR);
  let baseUrl = opts.baseUrl ?? '';
  const sessionMs = config.limits.sessionDays * 86_400_000;

  const q = {
    session: db.prepare(
      `SELECT s.token_hash AS tokenHash, s.annotator_id AS annotatorId, s.csrf, a.consented_at AS consentedAt,
              COALESCE(a.name, 'admin') AS name, COALESCE(a.pseudonym, 'admin') AS pseudonym, COALESCE(a.disabled, 0) AS disabled
       FROM sessions s LEFT JOIN annotators a ON a.id = s.annotator_id
       WHERE s.token_hash = ? AND s.expires_at > ?`,
    ),
    insertSession: db.prepare('INSERT INTO sessions (token_hash, annotator_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)'),
    deleteSession: db.prepare('DELETE FROM sessions WHERE token_hash = ?'),
    purgeSessions: db.prepare('DELETE FROM sessions WHERE expires_at <= ?'),
    annotatorByInvite: db.prepare('SELECT id, disabled FROM annotators WHERE invite_hash = ?'),
    // A used invite keeps a unique placeholder no token hashes to (hashes are hex, without ':').
    useInvite: db.prepare("UPDATE annotators SET invite_hash = 'used:' || ? WHERE id = ? AND invite_hash = ?"),
    consent: db.prepare('UPDATE annotators SET consented_at = ?, consent_sha256 = ? WHERE id = ? AND consented_at IS NULL'),
  };
  q.purgeSessions.run(nowIso());
  // Item texts are rendered to HTML once (kept in the database), not on every request: said when
  // it takes a while (the first start of a large project, or after a sanitizer upgrade).
  const t0 = Date.now();
  const rendered = renderPendingItems(db);
  const took = (Date.now() - t0) / 1000;
  if (took >= 1) log(`annotate serve: rendered ${rendered} item texts to HTML in ${took.toFixed(1)} s (once: kept in the project database)`);

  function send(res: ServerResponse, status: number, body: string | Buffer, type: string, extra: Record<string, string | string[]> = {}): void {
    // Object.assign, not `{ ...SECURITY_HEADERS, …, ...extra }`: V8 kept ~0.7 KiB of every
    // response built with that spread alive across a scavenge, so it was promoted and died in the
    // old generation (a bare Node server with these headers: 0.55 MB per scavenge; with
    // Object.assign none). Same headers, same values.
    res.writeHead(status, Object.assign({ 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' }, SECURITY_HEADERS, extra));
    res.end(body);
  }
  const json = (res: ServerResponse, status: number, obj: unknown, extra: Record<string, string | string[]> = {}) =>
    send(res, status, JSON.stringify(obj), 'application/json; charset=utf-8', extra);

  function sessionFrom(req: IncomingMessage, cookie: string): Session | null {
    const token = parseCookies(req.headers.cookie).get(cookie);
    if (!token || !/^[A-Za-z0-9_-]{20,100}$/.test(token)) return null;
    const row = q.session.get(hashToken(token), nowIso()) as (Session & { disabled: number }) | undefined;
    if (!row || row.disabled) return null;
    return row;
  }

  function openSession(annotatorId: number | null, cookie: string): { setCookie: string; csrf: string } {
    const token = newToken(32);
    const csrf = newToken(32);
    const now = Date.now();
    q.insertSession.run(hashToken(token), annotatorId, csrf, new Date(now).toISOString(), new Date(now + sessionMs).toISOString());
    const maxAge = Math.floor(sessionMs / 1000);
    return { setCookie: `${cookie}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}`, csrf };
  }

  /** Refuses cross-site state changes: JSON body only, same Origin when the browser sends one. */
  function checkPost(req: IncomingMessage): void {
    const ct = String(req.headers['content-type'] ?? '');
    if (!/^application\/json\b/i.test(ct)) throw new HttpError(415, 'expected Content-Type: application/json');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`) {
      throw new HttpError(403, 'cross-origin request refused');
    }
  }

  function checkCsrf(req: IncomingMessage, s: Session): void {
    const h = req.headers['x-csrf-token'];
    if (typeof h !== 'string' || !safeEqual(h, s.csrf)) throw new HttpError(403, 'missing or wrong CSRF token');
  }

  /** The request's JSON body: always an object (an empty body is {}); anything else is a 400. */
  async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    const buf = await readBody(req, config.limits.maxBodyBytes);
    if (buf.length === 0) return {};
    let v: unknown;
    try {
      v = JSON.parse(buf.toString('utf8'));
    } catch {
      throw new HttpError(400, 'request body is not valid JSON');
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new HttpError(400, `request body must be a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
    }
    return v as Record<string, unknown>;
  }

  function requireAnnotator(req: IncomingMessage, needConsent: boolean): Session & { annotatorId: number } {
    const s = sessionFrom(req, SESSION_COOKIE);
    if (!s || s.annotatorId === null) throw new HttpError(401, 'not logged in: open your invite link');
    if (needConsent && !s.consentedAt) throw new HttpError(403, 'consent required first');
    return s as Session & { annotatorId: number };
  }

  /**
   * Admin: a Bearer admin token (scripts; no cookie so no CSRF), or the admin session cookie.
   * Failed Bearer checks count against the login limit of the client address; once it is
   * reached every Bearer check is refused (429) until the window ends, right token or not.
   */
  function requireAdmin(req: IncomingMessage, post: boolean): void {
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && auth.startsWith('Bearer ')) {
      const wait = loginLimiter.blocked(clientKey(req));
      if (wait > 0) throw new HttpError(429, `too many failed admin-token attempts; retry in ${wait} s`);
      if (safeEqual(hashToken(auth.slice(7).trim()), adminHash!)) return;
      loginLimiter.take(clientKey(req));
      throw new HttpError(401, 'wrong admin token');
    }
    const s = sessionFrom(req, ADMIN_COOKIE);
    if (!s || s.annotatorId !== null) throw new HttpError(401, 'admin login required');
    if (post) checkCsrf(req, s);
  }

  function assignmentJson(a: AssignmentView) {
    return { id: a.id, format: a.format, promptHtml: promptHtml(db, a.promptJson), aHtml: markdownHtml(db, a.shownA), bHtml: markdownHtml(db, a.shownB) };
  }

  function clientKey(req: IncomingMessage): string {
    return req.socket.remoteAddress ?? 'unknown';
  }

  function serveStatic(res: ServerResponse, rel: string): void {
    let decoded: string;
    try {
      decoded = decodeURIComponent(rel);
    } catch {
      throw new HttpError(400, 'bad path encoding');
    }
    if (decoded.includes('\0') || decoded.includes('\\')) throw new HttpError(400, 'bad path');
    const full = resolve(publicDir, '.' + sep + decoded);
    if (!full.startsWith(publicDir + sep)) throw new HttpError(404, 'not found');
    let real: string;
    try {
      real = realpathSync(full); // a symlink must not lead out either
    } catch {
      throw new HttpError(404, 'not found');
    }
    if (!real.startsWith(publicDir + sep) || !statSync(real).isFile()) throw new HttpError(404, 'not found');
    const type = MIME[extname(real)] ?? 'application/octet-stream';
    send(res, 200, readFileSync(real), type, { 'Cache-Control': 'no-cache' });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const post = method === 'POST';
    if (!post && method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed`);
    if (post) checkPost(req);

    // Pages and static assets.
    if (!post) {
      if (path === '/' || path === '/app') return serveStatic(res, 'app.html');
      if (path === '/login') return serveStatic(res, 'login.html');
      if (path === '/admin') return serveStatic(res, 'admin.html');
      if (path.startsWith('/static/')) return serveStatic(res, path.slice('/static/'.length));
      if (path === '/favicon.ico') return serveStatic(res, 'favicon.svg');
    }

    // Annotator API.
    if (path === '/api/login' && post) {
      const wait = loginLimiter.take(clientKey(req));
      if (wait > 0) throw new HttpError(429, `too many login attempts; retry in ${wait} s`);
      const body = await jsonBody(req);
      if (typeof body.invite !== 'string' || body.invite.length > 100) throw new HttpError(400, 'login: "invite" must be the token from your invite link');
      const inviteHash = hashToken(body.invite);
      const a = q.annotatorByInvite.get(inviteHash) as { id: number; disabled: number } | undefined;
      if (!a || a.disabled) throw new HttpError(401, 'invalid, already used or revoked invite link (each link signs in once; ask for a new link)');
      // Single use: the link is spent in the same transaction that opens the session.
      const { setCookie } = db.transaction(() => {
        if (q.useInvite.run(newToken(16), a.id, inviteHash).changes !== 1) throw new HttpError(401, 'invite link already used');
        return openSession(a.id, SESSION_COOKIE);
      })();
      return json(res, 200, { ok: true }, { 'Set-Cookie': setCookie });
    }
    if (path === '/api/logout' && post) {
      const s = requireAnnotator(req, false);
      checkCsrf(req, s);
      q.deleteSession.run(s.tokenHash);
      return json(res, 200, { ok: true }, { 'Set-Cookie': `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` });
    }
    if (path === '/api/me' && !post) {
      const s = requireAnnotator(req, false);
      return json(res, 200, {
        name: s.name,
        pseudonym: s.pseudonym,
        csrf: s.csrf,
        consented: s.consentedAt !== null,
        consentHtml,
        guidelinesHtml,
        config: { title: config.title, labels: config.labels, rationale: config.rationale, criteria: config.criteria, ratingScale: config.ratingScale },
        progress: progress(db, s.annotatorId, config),
        // Optional questions, asked once after consent (never before).
        attributes: config.attributes.length > 0 && attributesDue(db, s.annotatorId, consentHash) ? attributesJson : [],
        attributesPurpose: config.privacy.purpose,
      });
    }
    if (path === '/api/attributes' && post) {
      const s = requireAnnotator(req, true);
      checkCsrf(req, s);
      const r = saveAttributes(db, s.annotatorId, await jsonBody(req), config, consentHash);
      return json(res, 200, { ok: true, stored: r.stored });
    }
    if (path === '/api/consent' && post) {
      const s = requireAnnotator(req, false);
      checkCsrf(req, s);
      const body = await jsonBody(req);
      if (body.agree !== true) throw new HttpError(400, 'consent: send {"agree": true}');
      q.consent.run(nowIso(), consentHash, s.annotatorId);
      return json(res, 200, { ok: true });
    }
    if (path === '/api/next' && post) {
      const s = requireAnnotator(req, true);
      checkCsrf(req, s);
      const a = nextAssignment(db, s.annotatorId, config, rng);
      return json(res, 200, { assignment: a ? assignmentJson(a) : null, progress: progress(db, s.annotatorId, config) });
    }
    const am = /^\/api\/assignments\/(\d{1,15})$/.exec(path);
    if (am && !post) {
      const s = requireAnnotator(req, true);
      return json(res, 200, { assignment: assignmentJson(getAssignment(db, s.annotatorId, Number(am[1]))) });
    }
    if (path === '/api/vote' && post) {
      const s = requireAnnotator(req, true);
      checkCsrf(req, s);
      const r = submitVote(db, s.annotatorId, await jsonBody(req), config);
      // better-sqlite3 is synchronous: the vote is committed (WAL, synchronous=FULL) at this point.
      return json(res, 200, { ok: true, voteId: r.voteId, duplicate: r.duplicate, progress: progress(db, s.annotatorId, config) });
    }

    // Admin API.
    if (path === '/api/admin/login' && post) {
      const wait = loginLimiter.take(clientKey(req));
      if (wait > 0) throw new HttpError(429, `too many login attempts; retry in ${wait} s`);
      const body = await jsonBody(req);
      if (typeof body.token !== 'string' || !safeEqual(hashToken(body.token), adminHash!)) throw new HttpError(401, 'wrong admin token');
      const { setCookie } = openSession(null, ADMIN_COOKIE);
      return json(res, 200, { ok: true }, { 'Set-Cookie': setCookie });
    }
    if (path === '/api/admin/me' && !post) {
      const s = sessionFrom(req, ADMIN_COOKIE);
      if (!s || s.annotatorId !== null) throw new HttpError(401, 'admin login required');
      return json(res, 200, { csrf: s.csrf, title: config.title, overlap: config.overlap });
    }
    if (path === '/api/admin/quality' && !post) {
      requireAdmin(req, false);
      return json(res, 200, { ...computeQuality(db, config), groups: computeGroupReport(db, config), batches: sourceProgress(db, config.overlap) });
    }
    if (path === '/api/admin/annotators' && !post) {
      requireAdmin(req, false);
      return json(res, 200, { annotators: listAnnotators(db) });
    }
    if (path === '/api/admin/annotators' && post) {
      requireAdmin(req, true);
      const body = await jsonBody(req);
      if (typeof body.name !== 'string') throw new HttpError(400, 'create annotator: "name" must be a string');
      let a;
      try {
        a = createAnnotator(db, body.name);
      } catch (e) {
        throw new HttpError(400, (e as Error).message);
      }
      return json(res, 200, { id: a.id, pseudonym: a.pseudonym, name: a.name, inviteUrl: inviteUrl(baseUrl, a.inviteToken) });
    }
    const im = /^\/api\/admin\/annotators\/(\d{1,15})\/(invite|disable|enable)$/.exec(path);
    if (im && post) {
      requireAdmin(req, true);
      const id = Number(im[1]);
      try {
        if (im[2] === 'invite') return json(res, 200, { inviteUrl: inviteUrl(baseUrl, resetInvite(db, id)) });
        setAnnotatorDisabled(db, id, im[2] === 'disable');
        return json(res, 200, { ok: true });
      } catch (e) {
        throw new HttpError(404, (e as Error).message);
      }
    }
    throw new HttpError(404, 'not found');
  }

  const server: Server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 500) log(`annotate server: ${req.method} ${req.url}: ${(e as Error).stack ?? e}`);
      const message = status === 500 ? 'internal error' : (e as Error).message;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const extra: Record<string, string> = status === 413 ? { Connection: 'close' } : {};
      if (status === 429) extra['Retry-After'] = message.replace(/\D+/g, ' ').trim().split(' ').pop() ?? '60';
      const accept = String(req.headers.accept ?? '');
      if (!req.url?.startsWith('/api/') && accept.includes('text/html')) {
        send(res, status, `<!doctype html><meta charset="utf-8"><title>${status}</title><p>${escapeHtml(message)}</p>`, 'text/html; charset=utf-8', extra);
      } else json(res, status, { error: message }, extra);
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 15_000;
  server.maxHeadersCount = 100;

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 8080, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const url = `http://${shownHost}:${port}`;
  if (!baseUrl) baseUrl = url;
  let closed = false;
  return {
    url,
    port,
    db,
    project,
    close: () =>
      new Promise<void>((ok) => {
        if (closed) return ok();
        closed = true;
        server.closeAllConnections();
        server.close(() => {
          db.close();
          ok();
        });
      }),
  };
}

/** The admin token saved by init (DIR/admin-token), or null. */
export function readAdminToken(dir: string): string | null {
  const p = join(dir, ADMIN_TOKEN_FILE);
  return existsSync(p) ? readFileSync(p, 'utf8').trim() : null;
}
