// Labels as the page exports them: preference JSONL that `dpo train --data` reads.

/** A labelled pair as `dpo train` reads it. */
export interface PreferenceRow {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** One {"prompt","chosen","rejected"} object a line. */
export function labelsJsonl(rows: readonly PreferenceRow[]): string {
  return rows.map((r) => JSON.stringify({ prompt: r.prompt, chosen: r.chosen, rejected: r.rejected })).join('\n') + (rows.length ? '\n' : '');
}
