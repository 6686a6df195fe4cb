// A progress bar for long work: done/total, rate, ETA and a few live figures, redrawn in place on
// a terminal and printed as plain lines (at most every few seconds) when output is a file or CI.

export interface ProgressOptions {
  /** What is counted ("steps", "pairs", ...). */
  unit?: string;
  /** Stream (default stderr). */
  stream?: NodeJS.WriteStream;
  /** Seconds between lines when not a terminal (default 10). */
  plainInterval?: number;
  /** Suppress all output. */
  quiet?: boolean;
}

export class ProgressBar {
  private readonly start = Date.now();
  private lastDraw = 0;
  /** The count shown by the last draw (finish() does not repeat an identical last line). */
  private drawnDone = -1;
  private done = 0;
  private fields = '';
  private readonly tty: boolean;
  private readonly stream: NodeJS.WriteStream;

  constructor(readonly label: string, readonly total: number, readonly opts: ProgressOptions = {}, readonly initial = 0) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY) && !process.env.CI;
    this.done = initial;
  }

  /** Sets the count done and optional figures shown after the bar (e.g. {loss: 0.69}). */
  update(done: number, figures: Record<string, number | string> = {}): void {
    this.done = done;
    this.fields = Object.entries(figures)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? formatNumber(v) : v}`)
      .join('  ');
    const now = Date.now();
    const interval = this.tty ? 100 : (this.opts.plainInterval ?? 10) * 1000;
    if (now - this.lastDraw >= interval || done >= this.total) {
      this.lastDraw = now;
      this.draw();
    }
  }

  tick(figures: Record<string, number | string> = {}): void {
    this.update(this.done + 1, figures);
  }

  /** Text of the current state (also used for plain output). */
  line(): string {
    const elapsed = (Date.now() - this.start) / 1000;
    const counted = this.done - this.initial;
    const rate = elapsed > 0 ? counted / elapsed : 0;
    const eta = rate > 0 ? (this.total - this.done) / rate : NaN;
    const unit = this.opts.unit ?? 'it';
    const pct = this.total > 0 ? Math.min(100, (100 * this.done) / this.total) : 100;
    const width = 24;
    const filled = Math.round((pct / 100) * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const rateStr = rate >= 1 || rate === 0 ? `${rate.toFixed(2)} ${unit}/s` : `${(1 / rate).toFixed(1)} s/${unit}`;
    return `${this.label} ${bar} ${this.done}/${this.total} ${pct.toFixed(0)}% ${rateStr} ETA ${formatDuration(eta)}${this.fields ? '  ' + this.fields : ''}`;
  }

  private draw(): void {
    if (this.opts.quiet) return;
    this.drawnDone = this.done;
    if (this.tty) this.stream.write(`\r\x1b[2K${this.line()}`);
    else this.stream.write(`${this.line()}\n`);
  }

  /** Final draw and newline. */
  finish(): void {
    if (this.opts.quiet) return;
    if (this.drawnDone !== this.done || this.tty) this.draw();
    if (this.tty) this.stream.write('\n');
  }

  /** Prints a message above the bar. */
  log(msg: string): void {
    if (this.opts.quiet) return;
    if (this.tty) this.stream.write(`\r\x1b[2K${msg}\n`);
    else this.stream.write(`${msg}\n`);
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return v.toFixed(a >= 100 ? 1 : 4);
}
