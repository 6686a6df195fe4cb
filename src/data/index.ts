// Preference and SFT data: read → detect/validate → tokenize/truncate → batch; plus the audit.
//
//   const { pairs } = await preparePreferenceData('train.jsonl', tokenizer, { maxLength: 512, maxPromptLength: 256 });
//   const sampler = new BatchSampler(pairs.length, { batchSize: 4, seed: 1, lengths: pairLengths(pairs) }, savedState);
//   const batch = nextPreferenceBatch(pairs, sampler, { padId: tokenizer.padId, padToMultipleOf: 8 });
//   // save sampler.state() with the checkpoint to resume exactly.

export * from './types.js';
export { readRecords, readJsonLines, readJsonFile, readParquet, detectFileKind } from './readers.js';
export type { FileKind, RawRecord, ReadOptions } from './readers.js';
export {
  applyColumns,
  detectFormat,
  formatOfRow,
  normalizePreference,
  normalizeSft,
  splitImplicitText,
  splitImplicitMessages,
  DEFAULT_PROMPT_BOUNDARY,
} from './formats.js';
export { loadPreferenceData, loadSftData, streamPreferenceExamples } from './load.js';
export type { LoadOptions, LoadSummary, LoadedData } from './load.js';
export {
  encodePrompt,
  encodeResponse,
  encodePair,
  truncatePair,
  pairRow,
  pairRowLength,
  pairLength,
  tokenizePair,
  tokenizePreferenceData,
  tokenizeSft,
  tokenizeSftData,
  renderPreference,
  keepStart,
  keepEnd,
  turnEnd,
} from './tokenize.js';
export type { TokenizedPair, TokenizedSft, TokenizeOptions, TokenizeSummary, TruncationOptions, EncodedPair, SftLossMask } from './tokenize.js';
export { collatePreference, collateSft, BatchSampler, permutation, pairLengths, nextPreferenceBatch, nextSftBatch } from './batch.js';
export { mulberry32 } from '../util/rng.js';
export type { PreferenceBatch, SftBatch, CollateOptions, SamplerOptions, SamplerState } from './batch.js';
export { auditPreferenceData, auditVerdict, renderAuditText, percentiles } from './audit.js';
export type { AuditOptions, AuditReport, AuditVerdict, Finding, SplitAudit, LengthBias, LengthStats, Percentiles, Leakage, ConversationStats, TruncationForecast } from './audit.js';
export { preparePreferenceData, prepareSftData } from './prepare.js';
export type { PreparedPreferenceData, PreparedSftData, PrepareOptions } from './prepare.js';
export { findPii, redactPii, redactValue, luhnValid, ibanValid, PII_KINDS, PiiTally } from './pii.js';
export type { PiiKind, PiiMatch, PiiFieldReport } from './pii.js';
export { DiversityTally, detectLanguage, minhash, jaccard, signatureSimilarity } from './diversity.js';
export type { DiversityReport, DiversityOptions } from './diversity.js';
export { writeRedactedCopy } from './audit.js';
export type { SliceAudit, RedactResult } from './audit.js';
export { renderDataCard, parseDataCard, sizeCategory } from './card.js';
export type { CardOptions, CollectionSummary } from './card.js';
