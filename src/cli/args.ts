// Option-value parsers shared by every command (commander's argParser callbacks). A bad value throws
// commander's InvalidArgumentError naming the option, so `dpo` prints "option '--x <n>' argument 'v'
// is invalid. --x must be ..." and exits 1.

import { InvalidArgumentError } from 'commander';
import type { ColumnMapping } from '../data/types.js';

/** An integer ≥ min (default 1). */
export function intArg(name: string, min = 1) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be ${min === 1 ? 'a positive integer' : `an integer ≥ ${min}`}, got "${v}"`);
    }
    return n;
  };
}

/** A finite number > 0. */
export function positiveNumberArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got "${v}"`);
    return n;
  };
}

/** A share in (0, 1]. */
export function fractionArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`${name} must be a number in (0, 1], got "${v}"`);
    return n;
  };
}

/** A number (or with `integer`, an integer) in [min, max]. */
export function rangeArg(name: string, min: number, max: number, integer = false) {
  return (v: string): number => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < min || x > max || (integer && !Number.isInteger(x))) {
      throw new InvalidArgumentError(`${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got "${v}"`);
    }
    return x;
  };
}

/** A repeatable option whose values may also be comma-separated: `--x a,b --x c` → ['a', 'b', 'c']. */
export const collectList = (v: string, prev: string[] = []): string[] => [...prev, ...v.split(',').map((x) => x.trim()).filter(Boolean)];

/** A repeatable option, one value each time: `--x a --x b` → ['a', 'b']. */
export const collectEach = (v: string, prev: string[] = []): string[] => [...prev, v];

const COLUMN_KEYS = ['prompt', 'chosen', 'rejected', 'completion', 'messages', 'input', 'preferred_output', 'non_preferred_output'];

/** "prompt=question,chosen=good,rejected=bad" → {prompt: 'question', ...}. */
export function parseColumns(value: string): ColumnMapping {
  const out: Record<string, string> = {};
  for (const part of value.split(',')) {
    const m = /^\s*([A-Za-z_]+)\s*=\s*(.+?)\s*$/.exec(part);
    if (!m || !COLUMN_KEYS.includes(m[1]!)) {
      throw new InvalidArgumentError(`--columns: expected NAME=COLUMN pairs with NAME in ${COLUMN_KEYS.join('/')}, got "${part}"`);
    }
    out[m[1]!] = m[2]!;
  }
  return out as ColumnMapping;
}
