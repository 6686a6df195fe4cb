// Project configuration of an annotation project: DIR/annotate.yaml (settings) and
// DIR/guidelines.md + DIR/consent.md (Markdown shown to reviewers). Validated with zod so a
// hand-edited file fails with the field named.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';

/** Canonical labels, always relative to the stored item (response_a / response_b), never to screen order. */
export const LABELS = ['a', 'b', 'tie', 'both_bad'] as const;
export type Label = (typeof LABELS)[number];

export const CONFIG_FILE = 'annotate.yaml';
export const DB_FILE = 'annotate.sqlite';
export const GUIDELINES_FILE = 'guidelines.md';
export const CONSENT_FILE = 'consent.md';
export const ADMIN_TOKEN_FILE = 'admin-token';

const criterionSchema = z.object({
  id: z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'criterion id: lowercase letters, digits, _'),
  label: z.string().min(1).max(80),
  description: z.string().max(500).default(''),
});

/** The answer every attribute offers besides its own options. */
export const PREFER_NOT_TO_SAY = 'prefer not to say';
/** Group of annotators who did not answer (or chose "prefer not to say"). */
export const NOT_STATED = 'not stated';
/** Group that small groups are merged into. */
export const OTHER_GROUP = 'other';

const attributeSchema = z.object({
  id: z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'attribute id: lowercase letters, digits, _'),
  /** The question shown to annotators. */
  question: z.string().min(1).max(200),
  /** A closed list of answers ("prefer not to say" is always offered too). */
  options: z
    .array(z.string().min(1).max(80))
    .min(2)
    .max(50)
    .refine((o) => new Set(o).size === o.length, 'options: duplicate answer')
    .refine((o) => !o.some((x) => [PREFER_NOT_TO_SAY, NOT_STATED, OTHER_GROUP].includes(x.toLowerCase())), `options: "${PREFER_NOT_TO_SAY}", "${NOT_STATED}" and "${OTHER_GROUP}" are reserved`),
});

export const configSchema = z.object({
  title: z.string().min(1).max(200).default('Which response is better?'),
  /** Which of the four labels reviewers may choose (order = keys 1..4 on screen). */
  labels: z.array(z.enum(LABELS)).min(2).default([...LABELS]),
  rationale: z.enum(['off', 'optional', 'required']).default('optional'),
  /** Per-criterion ratings 1..scale for each response; empty = none asked. */
  criteria: z.array(criterionSchema).max(8).default([]),
  ratingScale: z.number().int().min(2).max(10).default(5),
  /** Annotators per (non-gold) item. */
  overlap: z.number().int().min(1).max(50).default(3),
  /** Probability that the next item served is a gold (control) item while regular items remain. */
  goldRate: z.number().min(0).max(1).default(0.1),
  quality: z
    .object({
      minGoldItems: z.number().int().min(1).default(3),
      minGoldAccuracy: z.number().min(0).max(1).default(0.7),
      /** Share of "A" clicks above which (or below 1 − which) a reviewer is flagged for position bias. */
      maxPositionShare: z.number().min(0.5).max(1).default(0.85),
      minVotesForFlags: z.number().int().min(1).default(10),
      /** Median seconds per item under which a reviewer is flagged as too fast. */
      minMedianSeconds: z.number().min(0).default(3),
      /** Share of one label above which a reviewer is flagged for straight-lining. */
      maxSameLabelShare: z.number().min(0.5).max(1).default(0.9),
    })
    .prefault({}),
  /**
   * Optional annotator attributes (e.g. language, region, age band, expertise), asked once after
   * consent; answering is optional. Used only in aggregate (per-group reports, --group-balance).
   */
  attributes: z.array(attributeSchema).max(10).default([]),
  privacy: z
    .object({
      /** Groups with fewer annotators are merged into "other" in every report and export. */
      minGroupSize: z.number().int().min(1).default(5),
      /** Why the attributes are asked (shown with the consent text and the questions). */
      purpose: z
        .string()
        .min(1)
        .max(1000)
        .default(
          'to check whether the labels represent different groups of people, and to balance them. Answers are optional, ' +
            'stored apart from your labels under your pseudonymous id, reported only for groups of several annotators, and deleted on request.',
        ),
    })
    .prefault({}),
  groups: z
    .object({
      /** Warn when one group contributes more than this share of the votes. */
      maxVoteShare: z.number().min(0).max(1).default(0.6),
    })
    .prefault({}),
  limits: z
    .object({
      maxBodyBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(64 * 1024),
      maxRationaleChars: z.number().int().min(0).default(4000),
      loginAttemptsPerMinute: z.number().int().min(1).default(10),
      sessionDays: z.number().min(0.01).default(30),
    })
    .prefault({}),
});

export type AnnotateConfig = z.infer<typeof configSchema>;

export interface Project {
  dir: string;
  config: AnnotateConfig;
  guidelines: string;
  consent: string;
}

export const DEFAULT_GUIDELINES = `# Guidelines

You will see a **prompt** and two responses, **A** and **B**. Pick the better response.

- **Helpful**: does it answer what was asked, correctly and completely?
- **Honest**: no made-up facts; admits uncertainty.
- **Harmless**: no dangerous, hateful or private content.

Choose **Tie** when both are equally good, **Both bad** when neither is acceptable.
The order of A and B is random: do not prefer a side.

Keys: \`1\` A better · \`2\` B better · \`3\` Tie · \`4\` Both bad · \`Enter\` submit.
`;

export const DEFAULT_CONSENT = `# Consent

Your labels will be used to train and evaluate language models. We record your choices, optional
comments, and the time you take per item under a pseudonymous id. Texts may contain offensive
material; you may stop at any time. By continuing you agree to take part.
`;

export function parseConfig(text: string, where: string): AnnotateConfig {
  let raw: unknown;
  try {
    raw = YAML.parse(text) ?? {};
  } catch (e) {
    throw new Error(`annotate config ${where}: invalid YAML: ${(e as Error).message}`);
  }
  const r = configSchema.safeParse(raw);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`annotate config ${where}: ${msg}`);
  }
  const ids = r.data.criteria.map((c) => c.id);
  if (new Set(ids).size !== ids.length) throw new Error(`annotate config ${where}: criteria: duplicate id`);
  if (new Set(r.data.labels).size !== r.data.labels.length) throw new Error(`annotate config ${where}: labels: duplicate label`);
  const attrs = r.data.attributes.map((a) => a.id);
  if (new Set(attrs).size !== attrs.length) throw new Error(`annotate config ${where}: attributes: duplicate id`);
  return r.data;
}

export function loadProject(dir: string): Project {
  const cfgPath = join(dir, CONFIG_FILE);
  if (!existsSync(cfgPath)) throw new Error(`annotate: ${dir} is not an annotation project (no ${CONFIG_FILE}; run "dpo annotate init ${dir}")`);
  const config = parseConfig(readFileSync(cfgPath, 'utf8'), cfgPath);
  const read = (f: string, dflt: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : dflt);
  return { dir, config, guidelines: read(GUIDELINES_FILE, DEFAULT_GUIDELINES), consent: read(CONSENT_FILE, DEFAULT_CONSENT) };
}

/** The YAML written by `init`: every field spelled out so it is easy to edit. */
export function configToYaml(c: AnnotateConfig): string {
  return (
    '# dpo annotate project settings (see README "Human preference collection")\n' + YAML.stringify(c)
  );
}

/**
 * The text annotators agree to: the consent file, plus (when attributes are configured) the
 * optional questions and their purpose, so the recorded hash covers what will be asked.
 */
export function consentText(p: Pick<Project, 'consent' | 'config'>): string {
  const attrs = p.config.attributes;
  if (attrs.length === 0) return p.consent;
  return (
    `${p.consent.trimEnd()}\n\n## Optional questions about you\n\n` +
    `After you agree, you may answer these questions (each also offers "${PREFER_NOT_TO_SAY}", and you may skip them all), ` +
    `${p.config.privacy.purpose}\n\n` +
    attrs.map((a) => `- ${a.question} (${a.options.join(', ')})`).join('\n') +
    '\n'
  );
}
