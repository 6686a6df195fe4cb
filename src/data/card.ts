// `dpo data card`: a Hugging Face dataset card (README.md with YAML front matter) written from the
// audit's figures, so a data set leaves with its description: languages, size, duplicates,
// length bias, personal data, slices, and — when it came from `dpo annotate` — how it was
// collected and under which consent.

import YAML from 'yaml';
import type { AuditReport, SplitAudit } from './audit.js';
import { languageName } from './diversity.js';

/** What an annotation project contributes to a card (built by src/annotate/card.ts). */
export interface CollectionSummary {
  title: string;
  method: string;
  annotators: number;
  consented: number;
  votes: number;
  items: number;
  overlap: number;
  labels: string[];
  consentSha256: string;
  /** First paragraph(s) of the consent text. */
  consentSummary: string;
  /** Attribute id → question asked (optional, after consent). */
  attributes: Record<string, string>;
  /** Attribute → group → share of votes ("other" merges groups below the minimum size). */
  groupShares: Record<string, Record<string, number>>;
  minGroupSize: number;
  krippendorffAlpha: number | null;
}

export interface CardOptions {
  /** Data set name (title). */
  name: string;
  /** SPDX id or Hugging Face license id ("other", "unknown" …). */
  license: string;
  /** Where the data came from (free text). */
  provenance?: string;
  /** Files the card describes (relative paths as they will be published). */
  files: string[];
  collection?: CollectionSummary;
  /** Share of identified rows a language needs to be listed in the metadata (default 0.05: identification of short texts is noisy). */
  minLanguageShare?: number;
}

/** Hugging Face's size_categories buckets. */
export function sizeCategory(n: number): string {
  if (n < 1_000) return 'n<1K';
  if (n < 10_000) return '1K<n<10K';
  if (n < 100_000) return '10K<n<100K';
  if (n < 1_000_000) return '100K<n<1M';
  if (n < 10_000_000) return '1M<n<10M';
  if (n < 100_000_000) return '10M<n<100M';
  if (n < 1_000_000_000) return '100M<n<1B';
  return 'n>1B';
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const mdEscape = (s: string): string => s.replace(/[|\\`*_<>[\]]/g, (c) => `\\${c}`).replace(/\n/g, ' ');

function splitSection(name: string, a: SplitAudit): string[] {
  const out: string[] = [];
  out.push(`### ${name}`, '');
  out.push(`| figure | value |`, `| --- | --- |`);
  out.push(`| rows (valid / read) | ${a.valid} / ${a.rowsRead} |`);
  out.push(`| format | ${a.format} |`);
  out.push(`| bad rows | ${a.bad}${a.bad ? ` (${Object.entries(a.badByReason).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''} |`);
  out.push(`| duplicate pairs / prompts | ${a.duplicatePairs.count} / ${a.duplicatePrompts.count} |`);
  out.push(`| chosen longer than rejected (characters) | ${pct(a.lengthBiasChars.chosenLongerShare)} of pairs |`);
  out.push(`| prompt length p50 / p90 / max (characters) | ${a.lengthsChars.prompt.p50} / ${a.lengthsChars.prompt.p90} / ${a.lengthsChars.prompt.max} |`);
  out.push(`| response length p50 / p90 (chosen, characters) | ${a.lengthsChars.chosen.p50} / ${a.lengthsChars.chosen.p90} |`);
  if (a.pii) {
    const kinds: Record<string, number> = {};
    for (const f of Object.values(a.pii.fields)) for (const [k, n] of Object.entries(f.byKind)) kinds[k] = (kinds[k] ?? 0) + (n ?? 0);
    out.push(`| personal data matches | ${a.pii.total}${a.pii.total ? ` (${Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(', ')})` : ''} |`);
  }
  const d = a.diversity;
  if (d) {
    out.push(`| languages | ${Object.entries(d.languages).slice(0, 8).map(([l, n]) => `${l === 'und' ? 'undetermined' : l} ${pct(n / Math.max(1, d.languageRows))}`).join(', ')} |`);
    out.push(`| near-duplicate prompt clusters | ${d.nearDuplicates.clusters} (largest ${pct(d.nearDuplicates.largestShare)} of rows) |`);
    out.push(`| distinct-1 / distinct-2 (responses) | ${d.lexical.responses.distinct1.toFixed(3)} / ${d.lexical.responses.distinct2.toFixed(3)} |`);
    if (d.topTerms.length) out.push(`| top prompt terms | ${d.topTerms.slice(0, 10).map((t) => mdEscape(t.term)).join(', ')} |`);
  }
  out.push('');
  for (const [col, slices] of Object.entries(a.slices ?? {})) {
    out.push(`Slices by \`${col}\`:`, '', '| value | rows | share | chosen longer | agreement within | agreement with others |', '| --- | --- | --- | --- | --- | --- |');
    for (const s of slices) {
      out.push(
        `| ${mdEscape(s.value)} | ${s.rows} | ${pct(s.share)} | ${pct(s.lengthBiasChars.chosenLongerShare)} | ` +
          `${s.withinAgreement === null ? '-' : pct(s.withinAgreement)} | ${s.agreementWithOthers === null ? '-' : pct(s.agreementWithOthers)} |`,
      );
    }
    out.push('');
  }
  const warnings = [...(d?.warnings ?? [])];
  if (warnings.length) out.push(...warnings.map((w) => `- Warning: ${mdEscape(w)}`), '');
  return out;
}

/** The card: YAML front matter (Hugging Face metadata) then Markdown. */
export function renderDataCard(report: AuditReport, o: CardOptions): string {
  const rows = report.train.valid + (report.eval?.valid ?? 0);
  const langRows: Record<string, number> = {};
  for (const s of [report.train, report.eval]) {
    for (const [l, n] of Object.entries(s?.diversity?.languages ?? {})) if (l !== 'und') langRows[l] = (langRows[l] ?? 0) + n;
  }
  const identified = Object.values(langRows).reduce((a, b) => a + b, 0);
  const minShare = o.minLanguageShare ?? 0.05;
  const languages = Object.entries(langRows)
    .filter(([, n]) => identified && n / identified >= minShare)
    .sort((a, b) => b[1] - a[1])
    .map(([l]) => l);
  const meta: Record<string, unknown> = {
    license: o.license,
    ...(languages.length ? { language: languages } : {}),
    size_categories: [sizeCategory(rows)],
    task_categories: ['text-generation'],
    tags: ['dpo', 'preference', 'rlhf', ...(o.collection ? ['human-feedback'] : [])],
    pretty_name: o.name,
    configs: [
      {
        config_name: 'default',
        data_files: [
          { split: 'train', path: o.files[0] ?? 'train.jsonl' },
          ...(report.eval && o.files[1] ? [{ split: 'test', path: o.files[1] }] : []),
        ],
      },
    ],
  };
  const md: string[] = [];
  md.push(`# ${o.name}`, '');
  md.push(
    `Preference pairs (prompt, chosen, rejected) for Direct Preference Optimization and related methods: ${rows} rows` +
      `${languages.length ? ` in ${languages.map((l) => `${languageName(l)} (${l})`).join(', ')}` : ''}.`,
    '',
  );
  md.push('## Data set structure', '');
  md.push(`Format: ${report.train.format} (${report.train.format === 'conversational' ? 'message lists' : 'strings'}). Files: ${o.files.map((f) => `\`${f}\``).join(', ')}.`, '');
  md.push('## Figures from `dpo data check`', '');
  md.push(...splitSection('train', report.train));
  if (report.eval) md.push(...splitSection('eval', report.eval));
  if (report.leakage) md.push(`Eval prompts found in train: ${report.leakage.exact} verbatim, ${report.leakage.normalized} after normalization (of ${report.leakage.evalRows}).`, '');
  md.push('## Provenance', '', o.provenance ? o.provenance : 'Not stated.', '');
  const c = o.collection;
  md.push('## Collection method', '');
  if (c) {
    md.push(
      `${c.method} Project "${mdEscape(c.title)}": ${c.items} items, ${c.votes} votes by ${c.annotators} annotators (${c.consented} consented), ` +
        `${c.overlap} annotators per item, labels ${c.labels.join('/')}. ` +
        `Krippendorff's alpha (nominal): ${c.krippendorffAlpha === null ? 'not computable' : c.krippendorffAlpha.toFixed(3)}.`,
      '',
    );
    if (Object.keys(c.attributes).length) {
      md.push(
        `Annotators could optionally state (after consenting): ${Object.entries(c.attributes).map(([k, q]) => `${k} ("${mdEscape(q)}")`).join('; ')}. ` +
          `Groups with fewer than ${c.minGroupSize} annotators are merged into "other".`,
        '',
      );
      for (const [attr, shares] of Object.entries(c.groupShares)) {
        md.push(`Vote share by ${attr}: ${Object.entries(shares).map(([g, s]) => `${mdEscape(g)} ${pct(s)}`).join(', ')}.`, '');
      }
    }
    md.push('## Consent', '', `Annotators agreed to this text (sha256 \`${c.consentSha256}\`) before labelling:`, '');
    md.push(...c.consentSummary.split('\n').map((l) => `> ${l}`), '');
  } else {
    md.push('Not stated (no annotation project given).', '');
  }
  md.push('## Personal and sensitive information', '');
  const piiTotal = (report.train.pii?.total ?? 0) + (report.eval?.pii?.total ?? 0);
  md.push(
    report.train.pii
      ? piiTotal
        ? `The scan found ${piiTotal} possible personal data matches (e-mail, phone, card, IBAN, IP, SSN); \`dpo data check --redact OUT\` writes a redacted copy.`
        : 'The scan for e-mail addresses, phone numbers, card numbers, IBANs, IP addresses and US SSNs found none.'
      : 'Not scanned.',
    '',
  );
  return `---\n${YAML.stringify(meta)}---\n\n${md.join('\n')}`;
}

/** Splits a card into its YAML metadata and Markdown body (throws if the front matter is malformed). */
export function parseDataCard(text: string): { meta: Record<string, unknown>; body: string } {
  const m = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
  if (!m) throw new Error('data card: no YAML front matter (--- ... ---) at the start');
  const meta = YAML.parse(m[1]!) as unknown;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new Error('data card: front matter is not a YAML mapping');
  return { meta: meta as Record<string, unknown>, body: m[2]! };
}
