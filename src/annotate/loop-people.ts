// People as the judge of `dpo loop`: a round's pairs go into a `dpo annotate` project (items with
// source "loop <name> round-K"), the loop waits — a progress line, an optional deadline — until
// every item has its quota of votes (the project's `overlap`, from enabled annotators: what the
// queue serves), then exports them by the project's quality rules (majority vote, annotators who
// fail the gold check left out) and hands the pairs back. The running server is checked first and
// at every poll: a missing project or a server that is down is an error with what to do, not a hang.

import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { CONFIG_FILE, loadProject } from './config.js';
import { openDatabase } from './db.js';
import { addPairs, dbPath, sourceProgress } from './store.js';
import { buildExport } from './export.js';
import { readAdminToken } from './server.js';
import { parseLoopConfig, type PairToLabel, type PeopleLabeller, type PreferenceRow } from '../train/feedback-loop.js';

export interface AnnotatePeopleOptions {
  /** The annotation project directory (`dpo annotate init`). */
  project: string;
  /** Where its server listens (`dpo annotate serve`), e.g. http://127.0.0.1:8080. */
  url: string;
  /** Names the loop in the items' source ("loop NAME round-K"). */
  loopName: string;
  /** Stop waiting after this many minutes per round (null: wait until every item is done). */
  deadlineMinutes: number | null;
  pollSeconds: number;
  minVotes: number;
  minAgreement: number;
  quiet?: boolean;
}

async function ping(url: string, token: string, project: string): Promise<void> {
  let r: Response;
  try {
    r = await fetch(new URL('/api/admin/quality', url), { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`the annotation server at ${url} is not reachable (${cause?.code ?? cause?.message ?? (e as Error).message}); start it with \`dpo annotate serve ${project}\`, then resume the loop with --resume`);
  }
  if (r.status === 401 || r.status === 403) throw new Error(`the annotation server at ${url} refused project ${project}'s admin token (HTTP ${r.status}): is it serving another project?`);
  if (!r.ok) throw new Error(`the annotation server at ${url} answered HTTP ${r.status} to the quality check`);
  await r.arrayBuffer();
}

export function annotatePeople(o: AnnotatePeopleOptions): PeopleLabeller {
  const log = (m: string, sameLine = false): void => {
    if (o.quiet) return;
    if (sameLine && process.stderr.isTTY) process.stderr.write(`\r${m}\x1b[K`);
    else process.stderr.write(`${m}\n`);
  };
  const token = (): string => {
    if (!existsSync(join(o.project, CONFIG_FILE))) throw new Error(`annotation project ${o.project} not found (no ${CONFIG_FILE}); create it with \`dpo annotate init ${o.project}\``);
    const t = readAdminToken(o.project);
    if (!t) throw new Error(`annotation project ${o.project} has no admin-token file`);
    return t;
  };
  return {
    check: async () => {
      loadProject(o.project);
      await ping(o.url, token(), o.project);
    },
    label: async (round: number, pairs: readonly PairToLabel[], { minPairs }) => {
      const { config } = loadProject(o.project);
      const tok = token();
      await ping(o.url, tok, o.project);
      const source = `loop ${o.loopName} round-${round}`;
      const db = openDatabase(dbPath(o.project));
      try {
        // Re-adding the same pairs (a resumed round) is a no-op: items are keyed by their content.
        addPairs(db, pairs.map((p, i) => ({ format: 'text' as const, prompt: p.prompt, chosen: p.a, rejected: p.b, line: i + 1 })), source, false);
        const ids = (db.prepare('SELECT id FROM items WHERE source = ? AND is_gold = 0').all(source) as { id: number }[]).map((r) => r.id);
        // The same count the dashboard shows for the round (its "Batches" table).
        const countDone = (): number => sourceProgress(db, config.overlap).find((b) => b.source === source)?.complete ?? 0;
        const started = Date.now();
        const deadline = o.deadlineMinutes === null ? Infinity : started + o.deadlineMinutes * 60_000;
        let done = countDone();
        let note = '';
        while (done < ids.length) {
          if (Date.now() >= deadline) {
            note = `deadline passed with ${done} of ${ids.length} items at ${config.overlap} votes`;
            break;
          }
          const left = deadline === Infinity ? '' : `, deadline in ${Math.max(0, Math.round((deadline - Date.now()) / 1000))} s`;
          log(`round ${round}: ${done}/${ids.length} items have their ${config.overlap} votes (waiting for annotators at ${o.url}${left})`, true);
          await new Promise((r) => setTimeout(r, Math.min(o.pollSeconds * 1000, Math.max(0, deadline - Date.now()))));
          try {
            await ping(o.url, tok, o.project);
          } catch (e) {
            throw new Error(`round ${round}: ${(e as Error).message} (${done} of ${ids.length} items were complete; their votes are kept)`);
          }
          done = countDone();
        }
        log(`round ${round}: ${done}/${ids.length} items complete${note ? ` — ${note}` : ''}`);
        const ex = buildExport(db, config, { minAgreement: o.minAgreement, minVotes: o.minVotes, excludeGoldFailing: true, includeGold: false, redact: false, source });
        const rows: PreferenceRow[] = ex.pairs.map((p) => ({ prompt: p.prompt as string, chosen: p.chosen as string, rejected: p.rejected as string }));
        // Agreement: per item, the share of its counted votes that went to the winning label.
        const byItem = new Map<number, Map<string, number>>();
        for (const v of ex.raw) {
          if (v.excluded || v.is_gold || !ids.includes(v.item_id)) continue;
          const m = byItem.get(v.item_id) ?? new Map<string, number>();
          m.set(v.label, (m.get(v.label) ?? 0) + 1);
          byItem.set(v.item_id, m);
        }
        const shares = [...byItem.values()].map((m) => Math.max(...m.values()) / [...m.values()].reduce((a, b) => a + b, 0));
        if (rows.length < minPairs) {
          throw new Error(`round ${round}: ${rows.length} pairs after the quality rules (${note || `${done} of ${ids.length} items complete`}), fewer than min_pairs ${minPairs}; the votes are kept, resume with --resume to wait again`);
        }
        return {
          pairs: rows, agreement: shares.length ? shares.reduce((a, b) => a + b, 0) / shares.length : null,
          votes: ex.stats.votesUsed, excludedAnnotators: ex.stats.excludedAnnotators,
          note: note || `${ex.stats.excludedAnnotators.length ? `annotators left out by the quality rules: ${ex.stats.excludedAnnotators.join(', ')}` : 'all annotators counted'}`,
        };
      } finally {
        db.close();
      }
    },
  };
}

/**
 * The labeller a `dpo loop` directory needs: people when its config (given, or the one the loop
 * started with) says `judge: people`, from its annotate_project / annotate_url options; else none.
 */
export function peopleForLoop(dir: string, config: Record<string, unknown> | undefined, quiet: boolean): PeopleLabeller | undefined {
  const snapshot = join(dir, 'loop-config.json');
  const cfg = config ?? (existsSync(snapshot) ? (JSON.parse(readFileSync(snapshot, 'utf8')) as { config: Record<string, unknown> }).config : undefined);
  if (!cfg || cfg.judge !== 'people') return undefined;
  const { loop: L } = parseLoopConfig(cfg);
  return annotatePeople({
    project: L.annotate_project!, url: L.annotate_url!, loopName: basename(resolve(dir)), deadlineMinutes: L.deadline_minutes,
    pollSeconds: L.poll_seconds, minVotes: L.min_votes, minAgreement: L.min_agreement, quiet,
  });
}
