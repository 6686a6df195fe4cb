// V8 collections seen through node:v8's GCProfiler: the bytes the scavenges moved into the old
// generation (promoted), for tests that keep long runs' garbage young.
import { GCProfiler } from 'node:v8';

interface GcStat {
  gcType: string;
  beforeGC: { heapSpaceStatistics: { spaceName: string; spaceUsedSize: number }[] };
  afterGC: { heapSpaceStatistics: { spaceName: string; spaceUsedSize: number }[] };
}

/** Starts recording; stop() returns the bytes promoted by the scavenges since (old space used after − before, summed). */
export function recordPromotion(): { stop(): { promoted: number; scavenges: number } } {
  const prof = new GCProfiler();
  prof.start();
  return {
    stop: () => {
      const stats = (prof.stop() as { statistics: GcStat[] }).statistics;
      const old = (s: GcStat['beforeGC']): number => s.heapSpaceStatistics.find((x) => x.spaceName === 'old_space')!.spaceUsedSize;
      let promoted = 0, scavenges = 0;
      for (const g of stats) {
        if (g.gcType !== 'Scavenge') continue;
        scavenges++;
        promoted += Math.max(0, old(g.afterGC) - old(g.beforeGC));
      }
      return { promoted, scavenges };
    },
  };
}
