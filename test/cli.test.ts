// The `dpo` command line through its real entry point: unknown commands are errors, with or
// without --help, at the top level and inside command groups.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// dist/test/cli.test.js → dist/src/cli/index.js
const CLI = fileURLToPath(new URL('../src/cli/index.js', import.meta.url));

function dpo(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('an unknown command with --help is "unknown command" and exit 1, like without --help', () => {
  for (const args of [['nosuch'], ['nosuch', '--help'], ['--help', 'nosuch'], ['nosuch', '-h'], ['annotate', 'nosuch', '--help'], ['data', 'nosuch', '--help']]) {
    const r = dpo(...args);
    assert.equal(r.status, 1, `dpo ${args.join(' ')} exits 1 (stdout: ${r.stdout.slice(0, 80)})`);
    assert.match(r.stderr, /error: unknown command 'nosuch'/, `dpo ${args.join(' ')}`);
  }
});

test('help for existing commands still works and exits 0', () => {
  for (const args of [['--help'], ['train', '--help'], ['annotate', '--help'], ['annotate', 'serve', '--help'], ['help', 'train']]) {
    const r = dpo(...args);
    assert.equal(r.status, 0, `dpo ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: dpo/m, `dpo ${args.join(' ')} prints usage`);
  }
});
