// Markdown → safe HTML for prompts, responses and guidelines. Texts are untrusted (model output,
// imported data): raw HTML in them is shown as text, never interpreted, and the produced HTML
// goes through an allowlist sanitizer (no scripts, no event handlers, no javascript: URLs, no
// images or styles). The pages' Content-Security-Policy is the second wall.
import type { Marked as MarkedClass } from 'marked';
import type SanitizeHtml from 'sanitize-html';
import { requireOptional } from '../io/optional-deps.js';

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

let markedInstance: MarkedClass | null = null;
let sanitizeHtmlFn: typeof SanitizeHtml | null = null;

function newMarked(): MarkedClass {
  const { Marked } = requireOptional<{ Marked: typeof MarkedClass }>('marked');
  return new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    // Inline or block HTML in a text: display it literally.
    html(token) {
      return escapeHtml(token.text);
    },
    // No images: remote ones would let a text track reviewers. Shown as a link to the image.
    image(token) {
      return `<a href="${escapeHtml(token.href)}">[image: ${escapeHtml(token.text || token.href)}]</a>`;
    },
  },
  });
}

const sanitizeOptions = (sanitizeHtml: typeof SanitizeHtml): SanitizeHtml.IOptions => ({
  allowedTags: [
    'p', 'br', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'blockquote', 'pre', 'code', 'em', 'strong', 'del', 's',
    'ul', 'ol', 'li', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'input', 'sup', 'sub', 'kbd',
  ],
  allowedAttributes: {
    a: ['href', 'title', 'rel', 'target'],
    code: ['class'],
    ol: ['start'],
    th: ['align'],
    td: ['align'],
    input: ['type', 'checked', 'disabled'],
  },
  allowedClasses: { code: [/^language-[\w+#-]+$/] },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesAppliedToAttributes: ['href'],
  allowProtocolRelative: false,
  disallowedTagsMode: 'escape',
  transformTags: {
    a: sanitizeHtml.simpleTransform('a', { rel: 'noopener noreferrer nofollow', target: '_blank' }),
    // GFM task-list boxes only; any other input type becomes a disabled checkbox.
    input: (_tag, attribs) => ({ tagName: 'input', attribs: { type: 'checkbox', disabled: '', ...(attribs.checked !== undefined ? { checked: '' } : {}) } }),
  },
});
let sanitizeSettings: SanitizeHtml.IOptions | null = null;

export function sanitize(html: string): string {
  sanitizeHtmlFn ??= requireOptional<typeof SanitizeHtml>('sanitize-html');
  sanitizeSettings ??= sanitizeOptions(sanitizeHtmlFn);
  return sanitizeHtmlFn(html, sanitizeSettings);
}

// Rendered HTML by source text, for the server's requests: an item's prompt and responses are
// served to every reviewer of the item (and again on a reload), and each render is the costliest
// part of a request and its main source of garbage that V8 moves to its old generation
// (sanitize-html compiles its options, closures and regular expressions on every call; a 10,000-
// request soak filled the old generation 18 → 44 MiB before its first full collection). Two
// generations, each up to RENDER_CACHE_CHARS characters of text and HTML: a hit in the older one
// copies the entry to the current one, and a full current one becomes the older (the oldest
// generation is dropped), so no entry is reordered on a hit and the memory stays bounded.
export const RENDER_CACHE_CHARS = 2 ** 21;
let renderedNow = new Map<string, string>();
let renderedBefore = new Map<string, string>();
let renderedChars = 0;

export function renderMarkdown(text: string): string {
  const hit = renderedNow.get(text);
  if (hit !== undefined) return hit;
  const html = renderedBefore.get(text) ?? renderUncached(text);
  const chars = text.length + html.length;
  if (chars <= RENDER_CACHE_CHARS / 16) {
    if (renderedChars + chars > RENDER_CACHE_CHARS) {
      renderedBefore = renderedNow;
      renderedNow = new Map();
      renderedChars = 0;
    }
    renderedNow.set(text, html);
    renderedChars += chars;
  }
  return html;
}

/** Characters (text + HTML) the render cache holds: at most 2 × RENDER_CACHE_CHARS. */
export function renderCacheChars(): number {
  let n = 0;
  for (const m of [renderedNow, renderedBefore]) for (const [k, v] of m) n += k.length + v.length;
  return n;
}

function renderUncached(text: string): string {
  markedInstance ??= newMarked();
  return sanitize(markedInstance.parse(text, { async: false }) as string);
}

/** A prompt as HTML: plain Markdown, or a conversation with one block per turn. */
export function renderPrompt(prompt: unknown): string {
  if (typeof prompt === 'string') return renderMarkdown(prompt);
  if (!Array.isArray(prompt)) return `<pre>${escapeHtml(JSON.stringify(prompt))}</pre>`;
  return prompt
    .map((t: { role?: unknown; content?: unknown }) => {
      const role = String(t.role ?? '');
      const cls = /^[a-z]+$/.test(role) ? role : 'other';
      return `<div class="turn turn-${cls}"><div class="turn-role">${escapeHtml(role)}</div><div class="md">${renderMarkdown(String(t.content ?? ''))}</div></div>`;
    })
    .join('');
}
