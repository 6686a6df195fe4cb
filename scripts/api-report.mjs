// API report check: runs api-extractor on each public entry point of the package (the root and
// the subpaths of package.json "exports") against the emitted declarations (dist/src/**/*.d.ts,
// so run `npm run build` first), and compares the public surface with the committed reports in
// api/. Fails when the surface changed (run with --local to accept the change and update the
// reports, then commit them) or when a type reachable from the public API is not exported.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CompilerState, Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const local = args.includes('--local');
const option = (flag) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
// --reports DIR: compare with the reports in DIR instead of api/ (tests); --entry SUBPATH: one entry only.
const reportFolder = resolve(option('--reports') ?? join(root, 'api'));
const onlyEntry = option('--entry');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const tmp = join(root, 'dist', 'api-extractor');
mkdirSync(tmp, { recursive: true });

/** Names the root entry exports (from its report): a subpath's API may use them, users import them from 'dpo-ts'. */
function rootExports() {
  const report = join(reportFolder, 'dpo-ts.api.md');
  if (!existsSync(report)) return new Set();
  const names = [...readFileSync(report, 'utf8').matchAll(/^export (?:declare )?(?:abstract )?(?:interface|type|class|function|const|namespace|enum) (\w+)/gm)].map((m) => m[1]);
  return new Set(names);
}

let failed = false;
let compilerState;
const entries = Object.entries(pkg.exports).sort(([a], [b]) => (a === '.' ? -1 : b === '.' ? 1 : a.localeCompare(b)));
for (const [subpath, target] of entries) {
  if (typeof target !== 'object' || !target.types) continue;
  if (onlyEntry !== undefined && subpath !== onlyEntry) continue;
  const name = subpath === '.' ? 'dpo-ts' : `dpo-ts-${subpath.slice(2).replace(/\//g, '-')}`;
  const entry = join(root, target.types);
  if (!existsSync(entry)) throw new Error(`api-report: ${entry} is missing; run \`npm run build\` first`);
  const config = ExtractorConfig.prepare({
    configObject: {
      projectFolder: root,
      newlineKind: 'lf',
      mainEntryPointFilePath: entry,
      compiler: { tsconfigFilePath: join(root, 'tsconfig.json') },
      apiReport: { enabled: true, reportFileName: `${name}.api.md`, reportFolder, reportTempFolder: tmp },
      docModel: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        compilerMessageReporting: { default: { logLevel: 'warning' } },
        extractorMessageReporting: {
          default: { logLevel: 'none' },
          // A type used by the public API but not exported: the user could not name it.
          'ae-forgotten-export': { logLevel: 'error', addToApiReportFile: false },
          'ae-wrong-input-file-type': { logLevel: 'error' },
        },
        tsdocMessageReporting: { default: { logLevel: 'none' } },
      },
    },
    configObjectFullPath: join(root, 'api', `${name}.json`),
    packageJsonFullPath: join(root, 'package.json'),
  });
  const fromRoot = subpath === '.' ? new Set() : rootExports();
  let errors = 0;
  // One TypeScript program for all entries (it is the slow part).
  compilerState ??= CompilerState.create(config, { additionalEntryPoints: entries.filter(([, t]) => typeof t === 'object' && t.types).map(([, t]) => join(root, t.types)) });
  const result = Extractor.invoke(config, { compilerState, localBuild: local, showVerboseMessages: false, messageCallback: (m) => {
    if (m.logLevel !== 'error' && m.logLevel !== 'warning') return;
    const symbol = /The symbol "(\w+?)(?:_\d+)?"/.exec(m.text)?.[1];
    if (m.messageId === 'ae-forgotten-export' && symbol && fromRoot.has(symbol)) {
      m.logLevel = 'none';
      return;
    }
    m.handled = true;
    if (m.logLevel === 'error') errors++;
    console.error(`${name}: ${m.messageId}: ${m.text}${m.sourceFilePath ? ` (${m.sourceFilePath}:${m.sourceFileLine})` : ''}`);
  } });
  if (result.apiReportChanged && !local) {
    console.error(`${name}: the public API changed; compare ${join(reportFolder, `${name}.api.md`)} with ${join(tmp, `${name}.api.md`)}. ` +
      'If the change is intended, run `npm run api:update` and commit api/.');
  }
  if (process.env.API_DEBUG) console.error(name, result.succeeded, result.errorCount, result.warningCount, result.apiReportChanged, errors);
  if (!result.succeeded || errors > 0 || (result.apiReportChanged && !local)) failed = true;
  else console.log(`${name}: API report ${local && result.apiReportChanged ? 'updated' : 'unchanged'}`);
}
process.exitCode = failed ? 1 : 0;
