/**
 * `dpo-ts/annotate`: human preference collection (what `dpo annotate` runs) as library calls:
 * create a project, add pairs or model-sampled prompts, start and stop the labeling server,
 * create annotators, measure agreement and export majority-vote preference data. Needs the
 * optional packages better-sqlite3, marked and sanitize-html.
 *
 * @packageDocumentation
 */
export { initProject, addPairs, createAnnotator, resetInvite, setAnnotatorDisabled, listAnnotators, inviteUrl, countItems, dbPath } from './store.js';
export type { InitResult, NewItem, AddPairsResult, AnnotatorRow, NewAnnotator, DB } from './store.js';
export { openDatabase } from './db.js';
export { loadProject, parseConfig, configSchema, LABELS, type AnnotateConfig, type Label, type Project } from './config.js';
export { readPairsForAnnotation, type PairForAnnotation, type ReadPairsOptions, type ReadPairsResult, type ChatTurn } from './import.js';
export { addPrompts, readPromptsFile, DEFAULT_SAMPLING, type CandidateGenerator, type SamplingOptions, type PromptForAnnotation, type AddPromptsResult } from './generate.js';
export { modelCandidateGenerator, loadLocalCandidateGenerator } from './local-model.js';
export { startServer, readAdminToken, type ServerOptions, type AnnotateServer } from './server.js';
export { buildExport, writeJsonl, DEFAULT_EXPORT, type ExportOptions, type ExportResult, type PreferenceRecord, type RawVoteRecord, type VotePairRecord } from './export.js';
export { computeQuality, type QualityReport, type AnnotatorQuality, type Flag } from './quality.js';

// Types of the core package this entry's API refers to.
export type { CausalLM } from '../models/model.js';
export type { Tokenizer, ChatMessage } from '../io/tokenizer.js';
export type { LoadSummary } from '../data/load.js';
export type { PreferenceFormat, ColumnMapping, OnBadRow } from '../data/types.js';
export type { Rng } from './queue.js';
