// The data itself: the PII detector's precision on true and look-alike strings, per-field counts
// and the redacted copy; languages, near-duplicate clusters, lexical diversity and topic terms;
// per-slice figures with known answers; the data card parses as YAML front matter + Markdown.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Command } from 'commander';
import { auditPreferenceData, renderAuditText, writeRedactedCopy } from '../src/data/audit.js';
import { parseDataCard, sizeCategory, type CollectionSummary } from '../src/data/card.js';
import { registerDataCommands } from '../src/cli/data.js';
import { detectLanguage, DiversityTally, jaccard, minhash, signatureSimilarity } from '../src/data/diversity.js';
import { loadPreferenceData } from '../src/data/load.js';
import { findPii, ibanValid, luhnValid, redactPii, type PiiKind } from '../src/data/pii.js';
import { fx } from './fixtures/data/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'dpo-whose-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const jsonl = (name: string, rows: object[]): string => {
  const p = join(dir, name);
  writeFileSync(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
};

test('PII detector: every true string found with its kind, no look-alike matched (precision and recall 1 on the fixture)', () => {
  const f = JSON.parse(readFileSync(fx('pii-cases.json'), 'utf8')) as { pii: [string, PiiKind, string][]; lookalike: string[] };
  assert.ok(f.pii.length >= 15 && f.lookalike.length >= 15);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const [text, kind, match] of f.pii) {
    const found = findPii(text);
    const hit = found.filter((m) => m.kind === kind && m.text === match);
    tp += hit.length;
    fp += found.length - hit.length;
    fn += 1 - hit.length;
    assert.deepEqual(found.map((m) => [m.kind, m.text]), [[kind, match]], text);
  }
  for (const text of f.lookalike) {
    const found = findPii(text);
    fp += found.length;
    assert.deepEqual(found, [], text);
  }
  assert.equal(tp / (tp + fp), 1, 'precision');
  assert.equal(tp / (tp + fn), 1, 'recall');
  // The checks themselves.
  assert.equal(luhnValid('4111111111111111'), true);
  assert.equal(luhnValid('4111111111111112'), false);
  assert.equal(ibanValid('DE89 3704 0044 0532 0130 00'), true);
  assert.equal(ibanValid('DE89 3704 0044 0532 0130 01'), false);
  assert.equal(redactPii('mail a@b.io, card 4111-1111-1111-1111, ip 10.0.0.1'), 'mail [EMAIL], card [CARD], ip [IP]');
});

test('data check: PII counted per field with line numbers; --redact writes a copy with placeholders in every string', async () => {
  const f = jsonl('pii.jsonl', [
    { prompt: 'My mail is ann@example.com, call +1 (555) 123-4567', chosen: 'Noted.', rejected: 'ok', meta: { note: 'card 4111 1111 1111 1111' } },
    { prompt: 'Hello there', chosen: 'Reach us at 192.168.0.7', rejected: 'No IBAN: DE89 3704 0044 0532 0130 01' },
    'not json',
  ].map((r) => r) as object[]);
  // Third line is a bare JSON string (not an object): a bad row for the audit, still redacted as a value.
  const r = await auditPreferenceData({ train: f, diversity: false });
  const pii = r.train.pii!;
  assert.equal(pii.total, 3);
  assert.deepEqual(pii.fields.prompt, { matches: 2, byKind: { email: 1, phone: 1 }, rows: 1, examples: [`${f}:1 (email 1, phone 1)`] });
  assert.deepEqual(pii.fields.chosen, { matches: 1, byKind: { ipv4: 1 }, rows: 1, examples: [`${f}:2 (ipv4 1)`] });
  assert.equal(pii.fields.rejected, undefined, 'an IBAN failing mod 97 is not one');
  assert.match(renderAuditText(r), /personal data: 3 matches/);

  const out = join(dir, 'sub', 'redacted.jsonl');
  let text = '';
  const program = new Command().exitOverride();
  registerDataCommands(program, { write: (s) => (text += s), setExitCode: () => {} });
  await program.parseAsync(['data', 'check', f, '--redact', out, '--no-diversity'], { from: 'user' });
  const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
  assert.deepEqual(rows[0], { prompt: 'My mail is [EMAIL], call [PHONE]', chosen: 'Noted.', rejected: 'ok', meta: { note: 'card [CARD]' } });
  assert.deepEqual(rows[1], { prompt: 'Hello there', chosen: 'Reach us at [IP]', rejected: 'No IBAN: DE89 3704 0044 0532 0130 01' });
  assert.equal(rows[2], 'not json');
  assert.match(text, /personal data: 3 matches/);
  // A line that is not JSON cannot be rewritten field by field: reported, left out; nothing half-written.
  const broken = join(dir, 'broken.jsonl');
  writeFileSync(broken, '{"prompt": "mail x@y.org", "chosen": "a", "rejected": "b"}\n{not json\n');
  const res = await writeRedactedCopy(broken, join(dir, 'broken-red.jsonl'));
  assert.deepEqual(res, { rows: 1, redactedRows: 1, byKind: { email: 1 }, unreadable: [`${broken}:2`] });
  assert.equal(readFileSync(join(dir, 'broken-red.jsonl'), 'utf8'), '{"prompt":"mail [EMAIL]","chosen":"a","rejected":"b"}\n');
  await assert.rejects(writeRedactedCopy(join(dir, 'missing.jsonl'), join(dir, 'never.jsonl')));
  assert.ok(!existsSync(join(dir, 'never.jsonl')), 'no output for a failed copy');
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary file left behind');
});

test('language identification (franc-min): English, German, French, Spanish; short text undetermined', () => {
  assert.equal(detectLanguage('The committee will publish its final report on the new railway line next spring.'), 'en');
  assert.equal(detectLanguage('Der Ausschuss wird seinen Abschlussbericht über die neue Bahnstrecke im nächsten Frühjahr veröffentlichen.'), 'de');
  assert.equal(detectLanguage('Le comité publiera son rapport final sur la nouvelle ligne de chemin de fer au printemps prochain.'), 'fr');
  assert.equal(detectLanguage('El comité publicará su informe final sobre la nueva línea de ferrocarril la próxima primavera, y los ciudadanos podrán leerlo en la biblioteca municipal.'), 'es');
  assert.equal(detectLanguage('ok thanks'), 'und');
});

test('MinHash: the estimate tracks the exact Jaccard similarity', () => {
  const base = Array.from({ length: 60 }, (_, i) => `word${i % 37} token${(i * 7) % 23}`).join(' ');
  const near = base + ' and one more clause at the end';
  const far = Array.from({ length: 60 }, (_, i) => `other${i}`).join(' ');
  const j = jaccard(base, near);
  const est = signatureSimilarity(minhash(base), minhash(near));
  assert.ok(j > 0.85, String(j));
  assert.ok(Math.abs(est - j) < 0.15, `estimate ${est} vs exact ${j}`);
  assert.ok(signatureSimilarity(minhash(base), minhash(far)) < 0.1);
});

test('diversity: languages per row, the near-duplicate cluster and its share as a warning, lexical diversity, topic terms', () => {
  const long = 'Please explain in simple words how the human heart pumps blood through the arteries and veins of the body, what the valves do, and why the pulse changes when we run up a hill or climb the stairs quickly';
  const t = new DiversityTally({ maxClusterShare: 0.2 });
  const suffixes = ['', ' please', ' thanks', ' for a child', ' briefly'];
  suffixes.forEach((s, i) => t.add(long + s, ['The heart is a muscle that pumps blood.', 'No idea.'], `f:${i + 1}`));
  const others = [
    'Write a short poem about the autumn rain falling on the old town roofs',
    'Translate the following sentence about gardening tools into plain English',
    'What are the main causes of inflation in a growing economy with low unemployment',
    'Describe the rules of chess for someone who has never played a board game',
    'Schreibe eine kurze Geschichte über einen Hund, der im Wald einen alten Schatz findet',
  ];
  others.forEach((p, i) => t.add(p, ['A reasonable answer with several different words in it.', 'Short.'], `f:${i + 6}`));
  const r = t.report();
  assert.equal(r.rows, 10);
  assert.equal(r.languages.en, 9);
  assert.equal(r.languages.de, 1);
  assert.equal(r.nearDuplicates.clusters, 1);
  assert.equal(r.nearDuplicates.largest[0]!.rows, 5);
  assert.deepEqual(r.nearDuplicates.largest[0]!.examples, ['f:1', 'f:2', 'f:3', 'f:4', 'f:5']);
  assert.equal(r.nearDuplicates.largestShare, 0.5);
  assert.match(r.warnings[0]!, /largest near-duplicate prompt cluster holds 50\.0% of the rows \(over 20%\)/);
  // Every word of the repeated prompt is in 5 rows; stopwords ("the", "and", "how") are not topics.
  assert.ok(r.topTerms.slice(0, 10).every((t) => t.prompts === 5), JSON.stringify(r.topTerms));
  assert.ok(r.topTerms.some((t) => t.term === 'heart'));
  assert.ok(!r.topTerms.some((t) => ['the', 'and', 'how', 'what', 'why'].includes(t.term)));
  // distinct-1 of the responses: counted by hand from the two response texts used.
  const resp = [
    ...Array(5).fill(['the heart is a muscle that pumps blood', 'no idea']),
    ...Array(5).fill(['a reasonable answer with several different words in it', 'short']),
  ].flat() as string[];
  const toks = resp.flatMap((x) => x.split(' '));
  assert.equal(r.lexical.responses.tokens, toks.length);
  assert.equal(r.lexical.responses.distinct1, new Set(toks).size / toks.length);
});

test('slices: counts, length bias and agreement within and across slices with known answers', async () => {
  const x = 'short';
  const y = 'a much longer answer';
  const row = (prompt: string, chosen: string, group: string) => ({ prompt, chosen, rejected: chosen === x ? y : x, annotator_group: { region: group } });
  const f = jsonl('slices.jsonl', [
    row('Q1', x, 'A'), row('Q1', x, 'A'), row('Q1', x, 'A'), row('Q1', y, 'B'), row('Q1', y, 'B'),
    row('Q2', x, 'A'), row('Q2', x, 'A'), row('Q2', y, 'A'), row('Q2', x, 'B'),
    row('Q3', x, 'A'),
  ]);
  const r = await auditPreferenceData({ train: f, sliceColumns: ['annotator_group.region', 'missing_col'], diversity: false, pii: false });
  const [a, b] = r.train.slices!['annotator_group.region']!;
  assert.equal(a!.value, 'A');
  assert.equal(a!.rows, 7);
  assert.equal(a!.share, 0.7);
  assert.equal(a!.lengthBiasChars.chosenLonger, 1);
  assert.equal(a!.repeatedPairs, 2);
  assert.equal(a!.withinAgreement, 4 / 6, 'Q1: 3 of 3 row pairs agree, Q2: 1 of 3');
  assert.equal(a!.sharedPairs, 2);
  assert.equal(a!.agreementWithOthers, 0.5, 'Q1 disagrees with B, Q2 agrees');
  assert.equal(b!.value, 'B');
  assert.equal(b!.rows, 3);
  assert.equal(b!.lengthBiasChars.chosenLonger, 2);
  assert.equal(b!.withinAgreement, 1);
  assert.equal(b!.agreementWithOthers, 0.5);
  assert.deepEqual(r.train.slices!.missing_col!.map((s) => [s.value, s.rows]), [['(missing)', 10]]);
  assert.match(renderAuditText(r), /slice annotator_group\.region: 2 values\n {4}A: 7 rows \(70\.0%\); chosen longer 14\.3%; agreement within 66\.7% on 2 repeated pairs, with the other slices 50\.0% on 2 shared pairs/);
  // The command line: --slice (repeatable, comma lists too) reaches the same figures.
  let json = '';
  const program = new Command().exitOverride();
  registerDataCommands(program, { write: (t) => (json += t), setExitCode: () => {} });
  await program.parseAsync(['data', 'check', f, '--slice', 'annotator_group.region', '--no-pii', '--no-diversity', '--json'], { from: 'user' });
  const viaCli = JSON.parse(json) as { train: { slices: Record<string, unknown>; pii?: unknown; diversity?: unknown } };
  assert.deepEqual(viaCli.train.slices, JSON.parse(JSON.stringify({ 'annotator_group.region': r.train.slices!['annotator_group.region'] })));
  assert.equal(viaCli.train.pii, undefined);
  assert.equal(viaCli.train.diversity, undefined);
  // The loader carries the slice values for training-side consumers (score, eval).
  const loaded = await loadPreferenceData(f, { sliceColumns: ['annotator_group.region'] });
  assert.deepEqual(loaded.examples.map((e) => e.slices!['annotator_group.region']), ['A', 'A', 'A', 'B', 'B', 'A', 'A', 'A', 'B', 'A']);
});

test('data card: YAML front matter (license, language, size, task) + Markdown with the audit, provenance and consent', async () => {
  const rows = Array.from({ length: 30 }, (_, i) => ({
    prompt: `Question ${i}: how should a small town plan its public library opening hours for students and workers?`,
    chosen: `A careful answer number ${i} that weighs the needs of students and of people who work late.`,
    rejected: `No.`,
    group: i % 3 === 0 ? 'B' : 'A',
  }));
  const f = jsonl('card-train.jsonl', rows);
  const out = join(dir, 'card', 'README.md');
  const collection: CollectionSummary = {
    title: 'Library hours', method: 'Pairwise human judgements.', annotators: 12, consented: 11, votes: 90, items: 30, overlap: 3,
    labels: ['a', 'b', 'tie'], consentSha256: 'ab'.repeat(32), consentSummary: 'Your labels train models.\n\nYou may stop at any time.',
    attributes: { region: 'Where do you live?' }, groupShares: { region: { north: 0.6, other: 0.4 } }, minGroupSize: 5, krippendorffAlpha: 0.41,
  };
  const program = new Command().exitOverride();
  registerDataCommands(program, { loadCollection: (d) => (assert.equal(d, 'proj-dir'), collection) });
  await program.parseAsync(
    ['data', 'card', f, '--out', out, '--license', 'cc-by-4.0', '--name', 'Library prefs', '--provenance', 'Written for the test.', '--project', 'proj-dir', '--slice', 'group'],
    { from: 'user' },
  );
  const { meta, body } = parseDataCard(readFileSync(out, 'utf8'));
  assert.equal(meta.license, 'cc-by-4.0');
  assert.deepEqual(meta.language, ['en']);
  assert.deepEqual(meta.size_categories, ['n<1K']);
  assert.deepEqual(meta.task_categories, ['text-generation']);
  assert.equal(meta.pretty_name, 'Library prefs');
  assert.deepEqual(meta.configs, [{ config_name: 'default', data_files: [{ split: 'train', path: 'card-train.jsonl' }] }]);
  assert.match(body, /^\n# Library prefs\n/);
  assert.match(body, /\| rows \(valid \/ read\) \| 30 \/ 30 \|/);
  assert.match(body, /Slices by `group`:[\s\S]*\| A \| 20 \| 66\.7% \|/);
  assert.match(body, /## Provenance\n\nWritten for the test\./);
  assert.match(body, /12 annotators \(11 consented\)/);
  assert.match(body, /Vote share by region: north 60\.0%, other 40\.0%/);
  assert.match(body, new RegExp(`sha256 \`${'ab'.repeat(32)}\``));
  assert.match(body, /> You may stop at any time\./);
  assert.equal(sizeCategory(999), 'n<1K');
  assert.equal(sizeCategory(12_000), '10K<n<100K');
  assert.throws(() => parseDataCard('# no front matter'), /no YAML front matter/);
});
