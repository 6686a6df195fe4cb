// Item texts (prompts and responses) as sanitized HTML, rendered once and kept in the project
// database instead of on every request. sanitize-html defines a constructor inside every call,
// and V8 keeps such a function's context alive across scavenges (its prototype and initial map
// live in the old generation and point back to it): each render's garbage (~30% of what it
// allocates) was promoted and waited for a full collection, which on a long-lived server filled
// V8's old generation until its first mark-compact. The server renders the items that have no HTML
// yet when it starts, and any item added while it runs at its first request. Kept HTML is keyed by
// the renderer (render.ts rendererKey: settings, marked and sanitize-html versions), so an
// upgraded sanitizer renders everything again; entries of an older renderer are dropped at start.
import type { DB } from './db.js';
import { cachedStatement, getMeta, setMeta } from './db.js';
import { renderMarkdown, renderPrompt, rendererKey } from './render.js';
import { sha256 } from './store.js';

type Kind = 'markdown' | 'prompt';

function keyOf(kind: Kind, source: string): string {
  return sha256(`${rendererKey()}\u0000${kind}\u0000${source}`);
}

function renderSource(kind: Kind, source: string): string {
  return kind === 'markdown' ? renderMarkdown(source) : renderPrompt(JSON.parse(source));
}

/** HTML of a text kept in the database, or rendered now and kept. `source` is the text, or a prompt's JSON. */
function htmlOf(db: DB, kind: Kind, source: string): string {
  const key = keyOf(kind, source);
  const row = cachedStatement(db, 'SELECT html FROM rendered_html WHERE key = ?').get(key) as { html: string } | undefined;
  if (row) return row.html;
  const html = renderSource(kind, source);
  cachedStatement(db, 'INSERT OR IGNORE INTO rendered_html (key, html) VALUES (?, ?)').run(key, html);
  return html;
}

/** A response text as HTML (Markdown), kept in the database. */
export function markdownHtml(db: DB, text: string): string {
  return htmlOf(db, 'markdown', text);
}

/** A prompt as HTML (Markdown or a conversation, see renderPrompt), from the prompt's stored JSON. */
export function promptHtml(db: DB, promptJson: string): string {
  return htmlOf(db, 'prompt', promptJson);
}

/**
 * Renders every item text that has no HTML under the current renderer, after dropping HTML of
 * other renderers; pages through the items (a transaction per page), so memory stays small for
 * large projects. Returns how many texts were rendered.
 */
export function renderPendingItems(db: DB): number {
  const current = rendererKey();
  if (getMeta(db, 'renderer') !== current) {
    db.prepare('DELETE FROM rendered_html').run();
    setMeta(db, 'renderer', current);
  }
  const page = db.prepare('SELECT id, prompt, response_a, response_b FROM items WHERE id > ? ORDER BY id LIMIT 256');
  const have = cachedStatement(db, 'SELECT 1 FROM rendered_html WHERE key = ?');
  const put = cachedStatement(db, 'INSERT OR IGNORE INTO rendered_html (key, html) VALUES (?, ?)');
  let rendered = 0;
  for (let last = 0; ; ) {
    const items = page.all(last) as { id: number; prompt: string; response_a: string; response_b: string }[];
    if (items.length === 0) return rendered;
    last = items[items.length - 1]!.id;
    db.transaction(() => {
      for (const it of items) {
        for (const [kind, source] of [['prompt', it.prompt], ['markdown', it.response_a], ['markdown', it.response_b]] as [Kind, string][]) {
          const key = keyOf(kind, source);
          if (have.get(key)) continue;
          put.run(key, renderSource(kind, source));
          rendered++;
        }
      }
    })();
  }
}
