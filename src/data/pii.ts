// Personal data in text: one detector for `dpo data check` (counts, `--redact OUT`) and
// `dpo annotate export --redact`. Patterns find candidates; checks keep look-alikes out:
// card numbers must pass the Luhn check and have 13–19 digits, IBANs the ISO 13616 mod-97 check
// and their country's length, IPv4 addresses four octets ≤ 255, IPv6 addresses node's parser,
// US social security numbers the SSA's never-issued ranges, phone numbers 7–15 digits in
// groups (dates, decimals, versions and plain numbers are not phones). Kinds are matched in a
// fixed order and a matched span is masked, so one string is never counted twice.

import { isIPv6 } from 'node:net';

export const PII_KINDS = ['email', 'iban', 'card', 'ipv6', 'ipv4', 'ssn', 'phone'] as const;
export type PiiKind = (typeof PII_KINDS)[number];

/** The placeholder each kind is replaced with. */
export const PII_PLACEHOLDER: Record<PiiKind, string> = {
  email: '[EMAIL]',
  iban: '[IBAN]',
  card: '[CARD]',
  ipv6: '[IP]',
  ipv4: '[IP]',
  ssn: '[SSN]',
  phone: '[PHONE]',
};

export interface PiiMatch {
  kind: PiiKind;
  start: number;
  end: number;
  text: string;
}

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
// Phone candidates: optional +, digits with space/dot/dash/parenthesis separators; filtered by looksLikePhone.
const PHONE_CANDIDATE = /(?<![\w.+-])\+?\(?\d[\d\s().-]{5,}\d\)?(?![\w]|\.\d)/g;
// 13–19 digits, optionally in groups separated by one space or dash.
const CARD_CANDIDATE = /(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w]|[.-]\d)/g;
const IBAN_CANDIDATE = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}/g;
const IPV4 = /(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)/g;
const IPV6_CANDIDATE = /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])/g;
const SSN = /(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w]|-\d)/g;

/** IBAN length per country (SWIFT IBAN registry). */
const IBAN_LENGTH: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28,
  CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18,
  GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32,
  LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24,
  PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24, SC: 31, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28,
  TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20,
};

/** Luhn (mod 10) check of a digit string. */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** ISO 13616 check: move the first four characters to the end, letters → 10..35, mod 97 = 1. */
export function ibanValid(iban: string): boolean {
  const s = iban.replace(/ /g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(s)) return false;
  const len = IBAN_LENGTH[s.slice(0, 2)];
  if (len === undefined || s.length !== len) return false;
  const r = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (const ch of r) {
    const v = ch >= 'A' ? ch.charCodeAt(0) - 55 : ch.charCodeAt(0) - 48;
    rem = v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

/** Issuer prefix and length of the major card networks (ISO/IEC 7812 IIN ranges). */
export function cardBrandFits(d: string): boolean {
  const n = d.length;
  const p2 = Number(d.slice(0, 2));
  const p3 = Number(d.slice(0, 3));
  const p4 = Number(d.slice(0, 4));
  const p6 = Number(d.slice(0, 6));
  if (d[0] === '4') return n === 13 || n === 16 || n === 19; // Visa
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return n === 16; // Mastercard
  if (p2 === 34 || p2 === 37) return n === 15; // American Express
  if (p4 === 6011 || p2 === 65 || (p3 >= 644 && p3 <= 649) || (p6 >= 622126 && p6 <= 622925)) return n >= 16 && n <= 19; // Discover
  if (p2 === 36 || p2 === 38 || p2 === 39 || (p3 >= 300 && p3 <= 305) || p2 === 30) return n >= 14 && n <= 19; // Diners Club
  if (p4 >= 3528 && p4 <= 3589) return n >= 16 && n <= 19; // JCB
  if (p2 === 62 || p2 === 81) return n >= 16 && n <= 19; // UnionPay
  if (p2 === 50 || (p2 >= 56 && p2 <= 69)) return n >= 12 && n <= 19; // Maestro
  if (d[0] === '2' && p4 >= 2200 && p4 <= 2204) return n === 16; // Mir
  return false;
}

/** ISBN-13 (978/979 prefix, weights 1,3 mod 10). */
function isIsbn13(d: string): boolean {
  if (d.length !== 13 || !/^97[89]/.test(d)) return false;
  let sum = 0;
  for (let i = 0; i < 13; i++) sum += (d.charCodeAt(i) - 48) * (i % 2 ? 3 : 1);
  return sum % 10 === 0;
}

function looksLikePhone(s: string): boolean {
  if (/^\d{3}-\d{2}-\d{4}$/.test(s)) return false; // the shape of a US SSN (checked as such)
  if (isIsbn13(s.replace(/\D/g, ''))) return false; // a book number
  const digits = s.replace(/\D/g, '').length;
  if (digits < 7 || digits > 15) return false;
  if (/^\d{4}-\d{2}-\d{2}/.test(s)) return false; // ISO date
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) return false; // IPv4
  const groups = s.split(/[\s().-]+/).filter((g) => g !== '');
  if (s.startsWith('+')) return groups.length >= 2;
  if (groups.length < 2) return false; // one run of digits: a number, not a phone
  if (/^[\d.]+$/.test(s) && groups.length < 3) return false; // a decimal number
  return groups.length >= 3 || groups.some((g) => g.length >= 4);
}

type Finder = (masked: string) => { start: number; end: number }[];

function regexFinder(re: RegExp, accept: (m: string) => string | null): Finder {
  return (masked) => {
    const out: { start: number; end: number }[] = [];
    for (const m of masked.matchAll(re)) {
      const kept = accept(m[0]);
      if (kept !== null && kept.length > 0) out.push({ start: m.index, end: m.index + kept.length });
    }
    return out;
  };
}

const FINDERS: Record<PiiKind, Finder> = {
  email: regexFinder(EMAIL, (m) => m),
  // The candidate may run on into following words: keep exactly the country's length.
  iban: regexFinder(IBAN_CANDIDATE, (m) => {
    const len = IBAN_LENGTH[m.slice(0, 2)];
    if (len === undefined) return null;
    let n = 0;
    let i = 0;
    for (; i < m.length && n < len; i++) if (m[i] !== ' ') n++;
    if (n < len) return null;
    const cand = m.slice(0, i);
    return ibanValid(cand) ? cand : null;
  }),
  card: regexFinder(CARD_CANDIDATE, (m) => {
    const digits = m.replace(/\D/g, '');
    if (digits.length < 13 || digits.length > 19 || /^(\d)\1+$/.test(digits)) return null;
    // Separators, if any, must be all spaces or all dashes (not a date-like or list-like mix).
    if (/ /.test(m) && /-/.test(m)) return null;
    return luhnValid(digits) && cardBrandFits(digits) ? m : null;
  }),
  ipv6: regexFinder(IPV6_CANDIDATE, (m) => {
    if (!isIPv6(m)) return null;
    const groups = m.split(':').filter((g) => g !== '');
    // "a::b" and the like in code are not addresses worth flagging; an address has ≥ 3 groups.
    return groups.length >= 3 && /\d/.test(m) ? m : null;
  }),
  ipv4: regexFinder(IPV4, (m) => (m.split('.').every((o) => Number(o) <= 255 && (o.length === 1 || o[0] !== '0')) ? m : null)),
  ssn: regexFinder(SSN, (m) => m),
  phone: regexFinder(PHONE_CANDIDATE, (m) => {
    const t = m.trimEnd();
    return looksLikePhone(t) ? t : null;
  }),
};

/** All personal-data matches in `text`, in text order, non-overlapping. */
export function findPii(text: string, kinds: readonly PiiKind[] = PII_KINDS): PiiMatch[] {
  let masked = text;
  const found: PiiMatch[] = [];
  for (const kind of PII_KINDS) {
    if (!kinds.includes(kind)) continue;
    const spans = FINDERS[kind](masked);
    if (spans.length === 0) continue;
    for (const s of spans) found.push({ kind, start: s.start, end: s.end, text: text.slice(s.start, s.end) });
    // Mask with a same-length non-word character so later kinds neither match nor shift.
    let next = '';
    let at = 0;
    for (const s of spans) {
      next += masked.slice(at, s.start) + '\u2588'.repeat(s.end - s.start);
      at = s.end;
    }
    masked = next + masked.slice(at);
  }
  return found.sort((a, b) => a.start - b.start);
}

/** `text` with every match replaced by its placeholder ([EMAIL], [PHONE], [CARD], [IBAN], [IP], [SSN]). */
export function redactPii(text: string, kinds: readonly PiiKind[] = PII_KINDS): string {
  const ms = findPii(text, kinds);
  if (ms.length === 0) return text;
  let out = '';
  let at = 0;
  for (const m of ms) {
    out += text.slice(at, m.start) + PII_PLACEHOLDER[m.kind];
    at = m.end;
  }
  return out + text.slice(at);
}

/** Every string inside a JSON value redacted (objects and arrays rebuilt, other values kept). */
export function redactValue(v: unknown, kinds: readonly PiiKind[] = PII_KINDS): unknown {
  if (typeof v === 'string') return redactPii(v, kinds);
  if (Array.isArray(v)) return v.map((x) => redactValue(x, kinds));
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = redactValue(x, kinds);
    return out;
  }
  return v;
}

/** Per field: count of matches per kind, and the first locations ("file:line"). */
export interface PiiFieldReport {
  matches: number;
  byKind: Partial<Record<PiiKind, number>>;
  /** Rows with at least one match. */
  rows: number;
  examples: string[];
}

/** Accumulates PII findings per field over a data set. */
export class PiiTally {
  readonly fields: Record<string, PiiFieldReport> = {};
  constructor(private readonly maxExamples = 5) {}

  /** Scans one field of one row (several texts, e.g. the messages of a conversation). */
  add(field: string, where: string, texts: readonly string[]): void {
    let n = 0;
    const byKind: Partial<Record<PiiKind, number>> = {};
    for (const t of texts) {
      for (const m of findPii(t)) {
        n++;
        byKind[m.kind] = (byKind[m.kind] ?? 0) + 1;
      }
    }
    if (n === 0) return;
    const f = (this.fields[field] ??= { matches: 0, byKind: {}, rows: 0, examples: [] });
    f.matches += n;
    f.rows++;
    for (const [k, c] of Object.entries(byKind) as [PiiKind, number][]) f.byKind[k] = (f.byKind[k] ?? 0) + c;
    if (f.examples.length < this.maxExamples) f.examples.push(`${where} (${Object.entries(byKind).map(([k, c]) => `${k} ${c}`).join(', ')})`);
  }

  total(): number {
    return Object.values(this.fields).reduce((a, f) => a + f.matches, 0);
  }
}
