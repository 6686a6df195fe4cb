// Read and audit a preference file (JSONL, JSON or Parquet): bad rows, duplicates, length bias,
// leakage; exit status 1 when rows are bad.
//   node audit.js prefs.jsonl
import { auditPreferenceData, auditVerdict, renderAuditText } from 'dpo-ts';

const [file = 'prefs.jsonl'] = process.argv.slice(2);
const report = await auditPreferenceData({ train: file });
process.stdout.write(renderAuditText(report));
const verdict = auditVerdict(report);
console.log(verdict.passed ? 'verdict: ok' : `verdict: ${verdict.badRows} bad rows`);
if (!verdict.passed) process.exitCode = 1;
