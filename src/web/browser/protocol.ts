// Messages between the page and the training worker (structured-cloned).
import type { CompareRow, ModelInfo, PreferenceRow, SampleSettings, TrainSettings } from '../engine.js';

export type Request =
  | { id: number; type: 'init'; threads: number }
  | { id: number; type: 'files'; files: { path: string; bytes: Uint8Array }[] }
  | { id: number; type: 'load'; path: string; dropDir?: string }
  | { id: number; type: 'sample'; prompts: string[]; settings: SampleSettings }
  | { id: number; type: 'readPreferences'; path: string }
  | { id: number; type: 'train'; rows: PreferenceRow[]; settings: TrainSettings }
  | { id: number; type: 'compare'; prompts: string[]; settings: SampleSettings }
  | { id: number; type: 'exportHf' }
  | { id: number; type: 'exportGguf' }
  | { id: number; type: 'stop' };

export interface Results {
  init: { backend: string; threads: number; note: string };
  files: null;
  load: ModelInfo;
  sample: { prompt: string; a: string; b: string }[];
  readPreferences: PreferenceRow[];
  train: { steps: number; stopped: boolean };
  compare: CompareRow[];
  exportHf: [string, Uint8Array][];
  exportGguf: Uint8Array;
  stop: null;
}

export type Reply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: string }
  | { type: 'step'; step: number; totalSteps: number; metrics: Record<string, number>; seconds: number };
