// The annotation server's Markdown rendering: the same text renders to the same sanitized HTML
// whether it comes from the render cache or not, and the cache stays within its bound (two
// generations of RENDER_CACHE_CHARS characters; texts too large for it are never kept).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RENDER_CACHE_CHARS, renderCacheChars, renderMarkdown } from '../src/annotate/render.js';

test('a cached render is the sanitized render; hostile HTML stays escaped on a hit', () => {
  const text = `**bold** <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)> ${Date.now()}`;
  const before = renderCacheChars();
  const first = renderMarkdown(text);
  assert.ok(first.includes('<strong>bold</strong>'));
  assert.ok(!/<script|<img|javascript:|onerror=/i.test(first.replace(/&lt;[^&]*&gt;/g, '')), first);
  const kept = renderCacheChars();
  assert.ok(kept > before, 'the render was not kept');
  assert.equal(renderMarkdown(text), first);
  assert.equal(renderCacheChars(), kept, 'a hit rendered and kept the text again');
});

test('the render cache stays within two generations; evicted texts render again, the same', () => {
  const first = renderMarkdown('# evicted heading\n\n- a list');
  const long = 'word '.repeat(400);
  for (let i = 0; renderCacheChars() <= RENDER_CACHE_CHARS * 1.5 && i < 20_000; i++) renderMarkdown(`${i}: ${long}`);
  for (let i = 0; i < 3000; i++) renderMarkdown(`again ${i}: ${long}`);
  assert.ok(renderCacheChars() <= 2 * RENDER_CACHE_CHARS, `cache holds ${renderCacheChars()} characters`);
  assert.equal(renderMarkdown('# evicted heading\n\n- a list'), first);
  // A text too large to keep: rendered, not kept.
  const huge = 'x'.repeat(RENDER_CACHE_CHARS / 8);
  const n = renderCacheChars();
  assert.equal(renderMarkdown(huge), `<p>${huge}</p>\n`);
  assert.ok(renderCacheChars() <= n, 'a huge text was kept');
});
