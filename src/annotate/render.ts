// Markdown → safe HTML for prompts, responses and guidelines. Texts are untrusted (model output,
// imported data): raw HTML in them is shown as text, never interpreted, and the produced HTML
// goes through an allowlist sanitizer (no scripts, no event handlers, no javascript: URLs, no
// images or styles). The pages' Content-Security-Policy is the second wall.
import type { Marked as MarkedClass } from 'marked';
import type SanitizeHtml from 'sanitize-html';
import { optionalVersion, requireOptional } from '../io/optional-deps.js';

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

export function renderMarkdown(text: string): string {
  markedInstance ??= newMarked();
  return sanitize(markedInstance.parse(text, { async: false }) as string);
}

/** Bump when the Markdown or sanitizer settings above change what a text renders to. */
const RENDER_FORMAT = 1;
let rendererKeyValue: string | null = null;

/**
 * What the HTML of a text depends on besides the text: these settings and the versions of marked
 * and sanitize-html (a security fix of the sanitizer must not be hidden by HTML kept from before).
 * The project database keeps rendered item texts under it (rendered.ts).
 */
export function rendererKey(): string {
  rendererKeyValue ??= `markdown format ${RENDER_FORMAT}; marked ${optionalVersion('marked')}; sanitize-html ${optionalVersion('sanitize-html')}`;
  return rendererKeyValue;
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
