// Supervised fine-tuning (the first stage of the seed pipeline): next-token NLL on completion /
// assistant tokens only (prompt tokens are masked), with the same loop, checkpoints and resume as
// DPO. The loss of a micro-batch is the token-level mean over its trained tokens.

import * as T from '../tensor/index.js';
import { withMatmulPrecision } from '../tensor/autocast.js';
import { storeFrozenLinearsAsBf16 } from '../nn/linear.js';
import { storeFrozenEmbeddingsAsBf16 } from '../models/decoder.js';
import { collateSft, packRows } from '../data/batch.js';
import { prepareSftData } from '../data/prepare.js';
import type { TokenizedSft } from '../data/tokenize.js';
import type { DataFormat, DataSource } from '../data/types.js';
import { fingerprintSettings, loadTrainable, loopConfig, saveModel, type ModelInput, type TokenizerInput, type TrainedRun } from './setup.js';
import { createHash } from 'node:crypto';
import { parseSftConfig, type SftConfig, type SftConfigInput } from './config.js';
import { runTrainingLoop, yieldToEventLoop, type MicroResult, type TrainingEvents } from './loop.js';

export interface SftRunOptions {
  /** Starting model: a path or a model in memory (trained in place). */
  model: ModelInput;
  /** Tokenizer path or object (default: the model's). */
  tokenizer?: TokenizerInput | undefined;
  /** Training rows: file(s) or rows in memory (`{prompt, completion}` or `{messages}`). */
  data: DataSource;
  evalData?: DataSource | undefined;
  /** TRL SFTConfig options (snake_case); anything left out takes its default. */
  config?: SftConfigInput | undefined;
  /** Where metrics.jsonl, checkpoints and the final model go (default: config.output_dir); without either nothing is written. */
  outputDir?: string | undefined;
  resume?: boolean | string | undefined;
  quiet?: boolean | undefined;
  stopAfterSteps?: number | undefined;
  /** Handlers for step, log, eval, checkpoint and warning events (awaited). */
  on?: TrainingEvents | undefined;
  /** Aborting stops training between two micro-batches; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** A finished SFT run: the trained model in memory, its metrics and data counts. */
export interface SftRunResult extends TrainedRun<SftConfig> {
  trainRows: number;
  evalRows: number;
}

/** Supervised fine-tuning; returns the trained model in memory (see runDpo for events and abort). */
export async function runSft(opts: SftRunOptions): Promise<SftRunResult> {
  const cfg = parseSftConfig(opts.config ?? {});
  return withMatmulPrecision(cfg.bf16 === true ? 'bf16' : 'float32', () => runSftWith(opts, cfg));
}

async function runSftWith(opts: SftRunOptions, cfg: SftConfig): Promise<SftRunResult> {
  const { loaded, lora } = await loadTrainable(opts.model, opts.tokenizer, cfg);
  const { model, tokenizer } = loaded;
  model.ctx.gradientCheckpointing = cfg.gradient_checkpointing;
  // frozen_dtype bfloat16: a LoRA base kept only as bf16 (nothing is frozen in a full fine-tune).
  if (cfg.frozen_dtype === 'bfloat16' && lora) {
    storeFrozenLinearsAsBf16(model.linears());
    storeFrozenEmbeddingsAsBf16(model);
  }
  await yieldToEventLoop(opts.signal);
  const prep = async (files: DataSource): Promise<TokenizedSft[]> =>
    (await prepareSftData(files, tokenizer, {
      format: (cfg.dataset_format ?? undefined) as DataFormat | undefined,
      columns: cfg.columns ?? undefined,
      onBadRow: cfg.on_bad_row,
      maxLength: cfg.max_length ?? undefined,
      completionOnlyLoss: cfg.completion_only_loss,
      assistantOnlyLoss: cfg.assistant_only_loss,
    })).rows;
  let rows = await prep(opts.data);
  await yieldToEventLoop(opts.signal);
  let evalRows: TokenizedSft[] =
    opts.evalData !== undefined && !(Array.isArray(opts.evalData) && opts.evalData.length === 0) ? await prep(opts.evalData) : [];
  if (!evalRows.length && cfg.eval_split > 0 && rows.length > 1) {
    const nEval = Math.max(1, Math.round(rows.length * cfg.eval_split));
    evalRows = rows.slice(rows.length - nEval);
    rows = rows.slice(0, rows.length - nEval);
  }
  if (rows.length === 0) throw new Error(`no usable SFT rows in ${typeof opts.data === 'string' ? opts.data : Array.isArray(opts.data) && opts.data.every((d) => typeof d === 'string') ? opts.data.join(', ') : 'the rows given'}`);
  const padToMultipleOf = cfg.pad_to_multiple_of ?? undefined;

  const runBatch = (idx: readonly number[], data: readonly TokenizedSft[], gradScale: number | null): MicroResult => {
    const b = collateSft(idx.map((i) => data[i]!), { padId: tokenizer.padId, padToMultipleOf });
    let ntok = 0, tokens = 0;
    for (let r = 0; r < b.rows; r++) {
      ntok += b.trainedTokens[r]!;
      tokens += b.lengths[r]!;
    }
    if (ntok === 0) return { sums: {}, count: 0, tokens };
    // Evaluation runs under noGrad: tidy releases the forward's tensors there (the tape does in training).
    const loss = T.tidy(() => {
      let lp: T.Tensor;
      if (cfg.padding_free) {
        // Rows packed back to back: no padding through the model (TRL's padding_free).
        const p = packRows(b.inputIds, b.targets, b.lengths, b.seqLen);
        lp = model.tokenLogprobs({ ids: p.ids, batch: 1, seq: p.ids.length, segments: p.lengths }, p.targets);
      } else {
        lp = model.tokenLogprobs({ ids: b.inputIds, batch: b.rows, seq: b.seqLen }, b.targets);
      }
      return T.scale(T.sumAll(lp), -1 / ntok);
    });
    const value = loss.data[0]!;
    if (gradScale !== null) T.backward(loss, Float32Array.of(gradScale), { releaseRoot: true });
    else loss.dispose();
    // Sums weighted by examples so the logged value is the mean of micro-batch losses.
    return { sums: { loss: value * b.rows }, count: b.rows, tokens };
  };

  const fingerprint = createHash('sha256');
  fingerprint.update(fingerprintSettings(cfg));
  for (const r of rows) fingerprint.update(Int32Array.from(r.ids));

  const result = await runTrainingLoop({
    numExamples: rows.length,
    lengths: rows.map((r) => r.ids.length),
    params: model.trainableParameters(),
    trainMicroBatch: (idx, scale, rng) => {
      model.ctx.rng = rng;
      return runBatch(idx, rows, scale);
    },
    evaluate: () => {
      if (!evalRows.length) return null;
      let sum = 0, count = 0;
      for (let i = 0; i < evalRows.length; i += cfg.per_device_eval_batch_size) {
        const idx = Array.from({ length: Math.min(cfg.per_device_eval_batch_size, evalRows.length - i) }, (_, j) => i + j);
        const r = T.noGrad(() => runBatch(idx, evalRows, null));
        sum += r.sums.loss ?? 0;
        count += r.count;
      }
      const loss = sum / Math.max(1, count);
      return { loss, perplexity: Math.exp(loss) };
    },
    saveFinal: (dir) => saveModel(dir, { ...loaded, lora }, { dtype: cfg.save_dtype }),
  }, loopConfig(cfg, opts, fingerprint.digest('hex'))).finally(() => {
    model.ctx.rng = null;
  });
  return {
    ...result, model, tokenizer, generation: loaded.generation, lora, source: loaded.source, format: loaded.format, config: cfg,
    trainRows: rows.length, evalRows: evalRows.length,
  };
}
