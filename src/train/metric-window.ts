// Sums of named metrics over a logging window (or a step's micro-batches), kept in typed arrays.
//
// Why not a plain object (`window[k] = (window[k] ?? 0) + v`): a long-lived object's number
// fields are boxed, so every addition allocates a heap number that the object — by then in V8's
// old generation — keeps alive through scavenges; those numbers are promoted and die there, and on
// a long RL run such per-step garbage sized V8's old space up until a mark-compact (RSS +5–8%).
// Here an addition writes a Float64Array element: nothing is allocated after the first time a
// name is seen. Names keep their first-seen order, so records list them as the objects did.

export class MetricWindow {
  private readonly index = new Map<string, number>();
  private readonly names: string[] = [];
  private sums = new Float64Array(16);
  /** Additions per name since the last clear(): a name with none is left out of record(). */
  private counts = new Uint32Array(16);

  /** Adds v to the sum of `name`. */
  add(name: string, v: number): void {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.index.set(name, i);
      if (i >= this.sums.length) {
        const sums = new Float64Array(2 * this.sums.length), counts = new Uint32Array(2 * this.counts.length);
        sums.set(this.sums);
        counts.set(this.counts);
        this.sums = sums;
        this.counts = counts;
      }
    }
    this.sums[i] += v;
    this.counts[i]++;
  }

  /** Adds every entry of a record. */
  addAll(rec: Readonly<Record<string, number>>): void {
    for (const name in rec) this.add(name, rec[name]!);
  }

  /** The sum of `name` since the last clear() (undefined if nothing was added). */
  sum(name: string): number | undefined {
    const i = this.index.get(name);
    return i === undefined || this.counts[i] === 0 ? undefined : this.sums[i];
  }

  /** Whether anything was added since the last clear(). */
  get empty(): boolean {
    for (let i = 0; i < this.names.length; i++) if (this.counts[i]) return false;
    return true;
  }

  /** Calls f(name, sum) for each name added to since the last clear(), in first-seen order. */
  forEach(f: (name: string, sum: number) => void): void {
    for (let i = 0; i < this.names.length; i++) if (this.counts[i]) f(this.names[i]!, this.sums[i]!);
  }

  /** The sums divided by `divisor`, as a record. */
  record(divisor = 1): Record<string, number> {
    const out: Record<string, number> = {};
    this.forEach((name, s) => {
      out[name] = s / divisor;
    });
    return out;
  }

  /** Starts a new window (the names and their order are kept). */
  clear(): void {
    this.sums.fill(0);
    this.counts.fill(0);
  }
}
