// The layer rules of ARCHITECTURE.md, checked on the import graph of src/: every TypeScript import
// (static, `export ... from`, dynamic `import()`, type-only) between two folders of src/ must point
// down the layer list ARCHITECTURE.md gives, never up and never sideways; nothing imports src/index.ts;
// no two files import each other in a circle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { FIXTURES } from './helpers/fixtures.js';

const ROOT = resolve(FIXTURES, '..', '..');
const SRC = join(ROOT, 'src');

/** The layers ARCHITECTURE.md lists in its ```layers block: bottom first; one line = one level. */
function readLayers(): string[][] {
  const md = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8');
  const m = /```layers\n([\s\S]*?)```/.exec(md);
  assert.ok(m, 'ARCHITECTURE.md has a ```layers block');
  return m[1]!.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean).map((l) => l.split(/\s+/));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

interface Edge { from: string; to: string; line: number }

/** Every relative import of every file under src/, resolved to a path relative to src/. */
function importGraph(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    const info = ts.preProcessFile(text, true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = resolve(dirname(file), ref.fileName.replace(/\.js$/, '.ts'));
      const line = ts.getLineAndCharacterOfPosition(ts.createSourceFile('x.ts', text, ts.ScriptTarget.Latest), ref.pos).line + 1;
      edges.push({ from: relative(SRC, file).split(sep).join('/'), to: relative(SRC, target).split(sep).join('/'), line });
    }
  }
  return edges;
}

const layerOf = (path: string): string => (path.includes('/') ? path.split('/')[0]! : path);

test('architecture: every import between layers points down the ARCHITECTURE.md layer list', () => {
  const levels = readLayers();
  const level = new Map<string, number>();
  levels.forEach((names, i) => names.forEach((n) => level.set(n, i)));
  const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  const unnamed = folders.filter((f) => !level.has(f));
  assert.deepEqual(unnamed, [], `folders of src/ that ARCHITECTURE.md's layer list does not name: ${unnamed.join(', ')}`);

  const edges = importGraph();
  assert.ok(edges.length > 100, `the import graph was read (${edges.length} imports)`);
  const bad: string[] = [];
  for (const e of edges) {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (b === 'index.ts') {
      bad.push(`src/${e.from}:${e.line} imports src/index.ts (the public API is the top; nothing inside imports it)`);
      continue;
    }
    if (a === b || a === 'index.ts') continue;
    const la = level.get(a)!;
    const lb = level.get(b);
    assert.ok(lb !== undefined, `src/${e.from}:${e.line} imports ${e.to}, outside the named layers`);
    if (lb < la) continue;
    const kind = lb === la ? 'sideways' : 'upward';
    bad.push(`src/${e.from}:${e.line} imports src/${e.to} (${kind}: ${a} → ${b})`);
  }
  assert.deepEqual(bad, [], `imports against ARCHITECTURE.md's layers:\n${bad.join('\n')}`);
});

test('architecture: no circle of imports between files of src/', () => {
  const next = new Map<string, string[]>();
  for (const e of importGraph()) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  // Tarjan's strongly connected components: any component of two or more files is a circle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) circles.push(comp.sort());
    }
  };
  for (const v of next.keys()) if (!idx.has(v)) visit(v);
  assert.deepEqual(circles, [], `import circles:\n${circles.map((c) => c.join(' ↔ ')).join('\n')}`);
});

test('architecture: the checker sees upward, sideways and dynamic imports (self-test on a made-up file)', () => {
  const text = "import { a } from '../cli/index.js';\nexport * from '../eval/run.js';\nconst m = await import('../train/dpo.js');\nimport type { T } from '../tensor/index.js';";
  const names = ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
  assert.deepEqual(names.sort(), ['../cli/index.js', '../eval/run.js', '../tensor/index.js', '../train/dpo.js']);
});
