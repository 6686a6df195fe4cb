// The memory under tensor buffers, below the pool (memory.ts): freeing the blocks the pool drops
// at once, and the C allocator's settings. Both come from the native addon (native/memory.cc);
// without it (or with an older build) blocks are left to the garbage collector and the C
// allocator keeps its defaults.
//
// Why: V8 frees an unreachable ArrayBuffer only at a garbage collection, which external memory
// triggers after growing by tens of MB, so blocks the pool evicts (or every released buffer, with
// pooling off) would pile up between collections and RSS would swing with the GC's timing. And
// glibc raises its mmap threshold whenever an mmapped block is freed (up to 32 MiB), after which
// tensor-sized blocks come from the brk heap, whose holes are rarely given back: RSS crept up by
// 10–15% over a DPO run of varying lengths. A fixed 128 KiB threshold (glibc's initial value)
// keeps large blocks in their own mappings, returned to the system when freed.
//
// DPO_MALLOC_TUNE=0 leaves glibc's defaults (as does a threshold set by the user through
// GLIBC_TUNABLES or MALLOC_MMAP_THRESHOLD_).
//
// Huge pages: new blocks of at least HUGE_PAGE_MIN_BYTES are advised to Linux as transparent huge
// pages (madvise MADV_HUGEPAGE, before their first write; the common THP mode "madvise" gives
// none otherwise). The matrix products' packers read operands down rows thousands of floats
// apart, a new 4 KiB page per row; with 2 MiB pages the TLB misses go and the GPT-2 DPO step's
// products run 2-5% faster. DPO_HUGE_PAGES=0 turns it off.

import { nativeAddon, nativeKernels } from './backend.js';

/** The mmap threshold set at the first tensor allocation (bytes). */
export const MMAP_THRESHOLD_BYTES = 128 * 1024;

interface AddonMemory {
  freeArrayBuffer(ab: ArrayBuffer): boolean;
  mallocTune(bytes: number): boolean;
  mallocInfo(): MallocInfo | null;
  mallocTrim(): boolean;
  adviseHugePages?(ab: ArrayBuffer): number;
}

/** Blocks from this size on are advised as huge pages (two 2 MiB pages: at least one lies inside). */
export const HUGE_PAGE_MIN_BYTES = 4 << 20;

/** glibc's allocator counters (mallinfo2), bytes. */
export interface MallocInfo {
  /** Obtained from the system for the heap and arenas (brk/sbrk). */
  arena: number;
  /** In blocks of their own mapping (above the mmap threshold). */
  mmapped: number;
  /** Allocated in the heap and arenas. */
  inUse: number;
  /** Free in the heap and arenas, but held by the allocator (fragmentation shows here). */
  free: number;
}

let addon: AddonMemory | null | undefined;
let tuned: boolean | undefined;

function memoryAddon(): AddonMemory | null {
  if (addon !== undefined) return addon;
  nativeKernels();
  const a = nativeAddon;
  addon = a && typeof a.freeArrayBuffer === 'function' && typeof a.mallocTune === 'function' ? (a as unknown as AddonMemory) : null;
  return addon;
}

/** Whether the user chose glibc's mmap threshold (or DPO_MALLOC_TUNE=0 keeps the defaults). */
export function userChoseMalloc(env: NodeJS.ProcessEnv): boolean {
  if (env.DPO_MALLOC_TUNE === '0') return true;
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined) return true;
  return /glibc\.malloc\.mmap_threshold=/.test(env.GLIBC_TUNABLES ?? '');
}

/**
 * Fixes glibc's mmap threshold (once; memory.ts calls it at the first allocation). Returns
 * whether the threshold is now fixed by us.
 */
export function tuneMalloc(env: NodeJS.ProcessEnv = typeof process === 'undefined' ? {} : process.env): boolean {
  if (tuned !== undefined) return tuned;
  const a = userChoseMalloc(env) ? null : memoryAddon();
  tuned = a ? a.mallocTune(MMAP_THRESHOLD_BYTES) : false;
  return tuned;
}

/**
 * Frees an ArrayBuffer's memory now (it is detached: every view on it reads as empty). The caller
 * guarantees nothing uses it any more. Returns false when only the GC can free it.
 */
export function freeNow(ab: ArrayBuffer): boolean {
  const a = memoryAddon();
  return a ? a.freeArrayBuffer(ab) : false;
}

let hugePages: boolean | undefined;

/**
 * Advises a fresh block (nothing written yet) of at least HUGE_PAGE_MIN_BYTES as transparent huge
 * pages. Returns the bytes advised: 0 when the block is small, DPO_HUGE_PAGES=0, or the platform
 * or addon has no huge pages.
 */
export function adviseHugePages(ab: ArrayBuffer): number {
  if (ab.byteLength < HUGE_PAGE_MIN_BYTES) return 0;
  hugePages ??= typeof process === 'undefined' || process.env.DPO_HUGE_PAGES !== '0';
  if (!hugePages) return 0;
  const a = memoryAddon();
  return a?.adviseHugePages ? a.adviseHugePages(ab) : 0;
}

/** The C allocator's counters, or null (no native addon, or not glibc ≥ 2.33). */
export function mallocInfo(): MallocInfo | null {
  const a = memoryAddon();
  return a ? a.mallocInfo() : null;
}

/** Gives free heap pages back to the system (glibc malloc_trim). */
export function mallocTrim(): boolean {
  const a = memoryAddon();
  return a ? a.mallocTrim() : false;
}

/** Least time between two trims by trimFreeMemory (ms). */
export const MALLOC_TRIM_INTERVAL_MS = 1000;
let lastTrim = -Infinity;

/**
 * Called at step boundaries (the loops' event-loop turn): gives glibc's free heap pages back to
 * the system, at most once per MALLOC_TRIM_INTERVAL_MS (a trim takes 0.1–2 ms). Below the mmap
 * threshold, buffers JS makes with `new Float32Array` (logits, scratch) come and go in the brk
 * heap between collections; the pages they leave free are otherwise held (a tiny GRPO run's glibc
 * heap grew 19 → 28 MiB, 3–14 of it free). DPO_MALLOC_TUNE=0 turns it off with the rest of the
 * tuning. Returns whether it trimmed.
 */
export function trimFreeMemory(now: number = performance.now(), env: NodeJS.ProcessEnv = typeof process === 'undefined' ? {} : process.env): boolean {
  if (now - lastTrim < MALLOC_TRIM_INTERVAL_MS || env.DPO_MALLOC_TUNE === '0') return false;
  lastTrim = now;
  return mallocTrim();
}
