// Shared helpers for the annotate tests (not a test file itself).
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnnotateConfig } from '../src/annotate/config.js';
import { openDatabase } from '../src/annotate/db.js';
import { addPairs, dbPath, initProject } from '../src/annotate/store.js';

const made: string[] = [];
// Temporary projects are removed when the test process ends (after servers have closed).
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

export function tmpDir(prefix = 'dpo-annotate-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** n standard-format pairs with distinct texts. */
export function makePairs(n: number, tag = 'p') {
  return Array.from({ length: n }, (_, i) => ({
    format: 'text' as const,
    prompt: `${tag} prompt ${i}: explain item ${i}`,
    chosen: `${tag} good answer ${i}`,
    rejected: `${tag} bad answer ${i}`,
    line: i + 1,
  }));
}

/** A project with `regular` regular pairs and `gold` gold pairs; returns dir and admin token. */
export function makeProject(cfg: Partial<AnnotateConfig> = {}, regular = 6, gold = 0): { dir: string; adminToken: string } {
  const dir = tmpDir();
  const { adminToken } = initProject(dir, cfg);
  const db = openDatabase(dbPath(dir));
  addPairs(db, makePairs(regular, 'reg'), 'test', false);
  if (gold) addPairs(db, makePairs(gold, 'gold'), 'test-gold', true);
  db.close();
  return { dir, adminToken };
}

export interface Resp {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** Raw HTTP request (full control over headers such as Origin and Cookie). */
export function http(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Resp> {
  return new Promise((ok, fail) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
        ok({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', fail);
    });
    req.on('error', fail);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** A logged-in annotator (session cookie + CSRF token), like the web page. */
export class Client {
  cookie = '';
  csrf = '';
  constructor(readonly base: string) {}

  async call(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<Resp> {
    const headers: Record<string, string> = { ...extra };
    if (this.cookie) headers.Cookie = this.cookie;
    if (method === 'POST') {
      headers['Content-Type'] = 'application/json';
      if (this.csrf && !('X-CSRF-Token' in extra)) headers['X-CSRF-Token'] = this.csrf;
    }
    return http(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  async login(invite: string): Promise<Resp> {
    const r = await this.call('POST', '/api/login', { invite });
    const set = r.headers['set-cookie'];
    if (r.status === 200 && set) this.cookie = String(Array.isArray(set) ? set[0] : set).split(';')[0]!;
    if (r.status === 200) {
      const me = await this.call('GET', '/api/me');
      this.csrf = me.json.csrf;
    }
    return r;
  }

  async loginAndConsent(invite: string): Promise<void> {
    const r = await this.login(invite);
    if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
    const c = await this.call('POST', '/api/consent', { agree: true });
    if (c.status !== 200) throw new Error(`consent failed: ${c.status} ${c.text}`);
  }
}

export function inviteToken(url: string): string {
  return new URL(url).hash.replace(/^#invite=/, '');
}
