// Binary max-heap ordered by a "comes first" predicate. Used for the llama2.c encoder's merge
// candidates and the BPE trainer's pair counts; both push stale entries and skip them when popped.

export class MaxHeap<T> {
  private items: T[] = [];

  /** `first(a, b)`: true when a must be popped before b. */
  constructor(private readonly first: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const h = this.items;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.first(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  /** Removes and returns the first item (the heap must not be empty). */
  pop(): T {
    const h = this.items;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && this.first(h[l]!, h[best]!)) best = l;
        if (r < h.length && this.first(h[r]!, h[best]!)) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best]!, h[i]!];
        i = best;
      }
    }
    return top;
  }
}
