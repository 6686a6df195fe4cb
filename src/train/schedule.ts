// Learning-rate schedules with linear warmup, as Hugging Face's get_*_schedule_with_warmup:
// the rate for optimizer step s (0-based) is base · factor(s), where factor rises linearly from 0
// over the warmup steps, then stays (constant), falls linearly to 0 (linear), or follows a half
// cosine to 0 (cosine) at totalSteps.

export type ScheduleType = 'constant' | 'linear' | 'cosine';

export interface Schedule {
  type: ScheduleType;
  baseLr: number;
  warmupSteps: number;
  totalSteps: number;
}

export function learningRate(s: Schedule, step: number): number {
  const { type, baseLr, warmupSteps, totalSteps } = s;
  if (step < warmupSteps) return (baseLr * step) / Math.max(1, warmupSteps);
  if (type === 'constant') return baseLr;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  if (type === 'linear') return baseLr * Math.max(0, 1 - progress);
  return baseLr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

/** Warmup steps from warmup_steps, else ceil(warmup_ratio · total) (Hugging Face's rule). */
export function warmupSteps(totalSteps: number, warmupRatio: number, steps?: number): number {
  if (steps !== undefined && steps > 0) return steps;
  return Math.ceil(totalSteps * warmupRatio);
}
