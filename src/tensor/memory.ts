// Tensor storage: every tensor buffer is allocated here, so the process can report the bytes
// held by tensors (current and peak) and reuse freed buffers instead of waiting for the GC.
//
// Lifetime: a buffer is either released explicitly (release(), called by the autograd tape as soon
// as a saved activation or an intermediate gradient is no longer needed, or by Tensor.dispose()),
// or, when its tensor is simply dropped, reclaimed by the garbage collector (counted through a
// FinalizationRegistry). Released buffers go to the reuse pool and are handed out again.
//
// The pool works in size classes, so that batches padded to different lengths share buffers: a
// request for n elements gets a view of length n on a block of the class's capacity (n rounded up
// to one of 8 geometric steps per power of two, at most 12.5% more); when its class is empty, a
// block of a larger class up to 1.5n will do (a shorter batch reusing a longer one's buffers).
// The bound: the working set is the highest number of bytes live tensor buffers have held at once
// (currentBytes: the bytes requested by the buffers handed out and not yet released or collected
// — one training step's peak of activations and gradients, one generation batch's); every block
// the pool owns, live or idle (with the size-class rounding), takes at most 1.75 × that. It is
// checked when a request needs a new block: idle blocks of the least recently requested classes
// (the sizes of lengths no longer seen) are dropped first, before the allocation, so at a step's
// peak the idle blocks are at most three quarters of a working set, and the pool follows a length
// change instead of filling up with blocks nobody asks for. (Bounding only the idle bytes, by
// twice the working set, let them sit on top of the live ones at the peak: the peak RSS was 13–22%
// over the goal; 1.5 × slowed RL runs, whose rollouts and updates ask for different sizes.)
// DPO_POOL_LIMIT_MB fixes a bound on the idle bytes instead (0 turns pooling off).
// A block the pool drops is freed at once through the native addon (allocator.ts), not when the
// GC gets to it, and the first allocation fixes glibc's mmap threshold: both keep RSS flat.
//
// Reuse never changes results: zero = true buffers are cleared, and zero = false ones are only
// requested by kernels that overwrite all n elements (setPoolPoison(true) fills them with NaN to
// prove it).

import type { Buf } from './kernels.js';
import { adviseHugePages, freeNow, tuneMalloc } from './allocator.js';

export type DType = 'float32' | 'float64';

/** 'classes': geometric size classes (default); 'exact': keyed by exact element count (the former pool, kept for comparison benchmarks). */
export type PoolClasses = 'classes' | 'exact';

/**
 * What the auto bound limits: 'owned' = every byte of the pool's blocks, live (heldBytes) and idle
 * (pooledBytes) — the default, checked when a request needs a new block, so the pool never owns
 * more than the bound even at a step's peak; 'idle' = the idle bytes only (the previous design,
 * kept for comparison benchmarks: at a step's peak it can hold the bound on top of the live set).
 */
export type PoolBound = 'owned' | 'idle';

export interface PoolConfig {
  classes: PoolClasses;
  /** Fixed bound on the pooled (idle) bytes, or 'auto' (`factor` × the working set, see `bound`). 0 disables pooling. */
  limitBytes: number | 'auto';
  /** The auto bound's multiple of the working set. */
  factor: number;
  /** What the auto bound limits (a fixed limitBytes always limits the idle bytes). */
  bound: PoolBound;
  /**
   * Free the blocks the pool drops (evicted, too large, or released with pooling off) at once
   * through the native addon (see allocator.ts), instead of when the GC gets to them.
   */
  freeDropped: boolean;
}

/** The auto bound: the pool's blocks (live and idle) take at most this multiple of the working set (the peak bytes held by live tensors)… */
export const POOL_WORKING_SET_FACTOR = 1.75;
/** …but never less than this (1 MiB: the smallest models still reuse their buffers). */
export const POOL_MIN_LIMIT_BYTES = 2 ** 20;

/** Steps per power of two: capacities n ≤ c ≤ n·(1 + 1/8). */
const CLASS_STEPS_LOG2 = 3;
/** An empty class borrows from up to this many larger classes. */
const LARGER_CLASSES = 8;
/** Requests up to this many elements share the smallest class. */
const MIN_CLASS = 16;

let currentBytes = 0;
let peakBytes = 0;
/** Capacity bytes of live buffers (≥ currentBytes by the size-class rounding). */
let heldBytes = 0;
/** The working set: highest currentBytes (bytes of live tensor buffers, as requested) since start or configurePool() (not reset by resetPeak()). */
let workingSetBytes = 0;
let pooledBytes = 0;
let hits = 0;
let misses = 0;
let evictedBytes = 0;
/** Bytes of dropped blocks freed at once (the rest of them wait for the GC). */
let freedBytes = 0;
/** Buffers never released, reclaimed by the garbage collector instead (bytes, count). */
let collectedBytes = 0;
let collectedBuffers = 0;
let poison = false;

let mallocTuned = false;
let config: PoolConfig = configFromEnv(process.env.DPO_POOL_LIMIT_MB);

function configFromEnv(v: string | undefined): PoolConfig {
  if (v === undefined || v.trim() === '' || v.trim() === 'auto') return { classes: 'classes', limitBytes: 'auto', factor: POOL_WORKING_SET_FACTOR, bound: 'owned', freeDropped: true };
  const mb = Number(v);
  if (!Number.isFinite(mb) || mb < 0) {
    throw new Error(`DPO_POOL_LIMIT_MB=${JSON.stringify(v)}: expected a number of MiB ≥ 0 (0 disables the tensor buffer pool) or "auto"`);
  }
  return { classes: 'classes', limitBytes: Math.floor(mb * 2 ** 20), factor: POOL_WORKING_SET_FACTOR, bound: 'owned', freeDropped: true };
}

interface SizeClass {
  /**
   * Idle blocks of this class (ArrayBuffers of the class's capacity): blocks[0..count). A stack
   * with its own count, never shrunk: Array push/pop let V8 shrink and regrow the backing store,
   * each new store allocated young, kept alive through scavenges by this old array, promoted
   * and soon dead (a steady trickle of old-generation garbage on long runs).
   */
  blocks: (ArrayBuffer | undefined)[];
  count: number;
  /** When it was last requested (the request counter's value): eviction takes the oldest first. */
  used: number;
}

/**
 * Size classes by key (see key()). Recency is a counter stamped on the class, not the Map's
 * order: moving a class to the end on every request (delete + set) left a hole per request, and
 * the long-lived Map's table, rebuilt every few hundred requests, was allocated straight into
 * V8's old generation — ~40% of the old-space garbage of a tiny GRPO run (see `settle` below).
 */
const pools = new Map<number, SizeClass>();
let requests = 0;

/** The class of key k (created once: classes stay in the Map, emptied ones too — see SizeClass.blocks). */
function classOf(k: number): SizeClass {
  let cls = pools.get(k);
  if (!cls) pools.set(k, (cls = { blocks: [], count: 0, used: 0 }));
  return cls;
}

function takeBlock(cls: SizeClass | undefined): ArrayBuffer | undefined {
  if (!cls || cls.count === 0) return undefined;
  const b = cls.blocks[--cls.count];
  cls.blocks[cls.count] = undefined;
  return b;
}

function putBlock(cls: SizeClass, b: ArrayBuffer): void {
  cls.blocks[cls.count++] = b;
}

// Buffers handed out and not yet released: the block (ArrayBuffer) under each one names its
// current owner (the view handed out) and the owner's LiveInfo, so a release of anything else (a
// second release, a sub-view, a foreign array) is ignored. The registry notices when the GC takes
// an owner that was never released. (A WeakMap from view to info did the same, but its table,
// rebuilt as thousands of buffers per step came and went, was allocated in V8's old generation.)
interface LiveInfo {
  bytes: number;
  capacity: number;
  /** Whether the buffer is in the FinalizationRegistry yet (see the nursery below). */
  registered: boolean;
  /** The settles it has been live at without being registered (see SETTLES_BEFORE_REGISTER). */
  settles: number;
}
const OWNER = Symbol('dpo-ts pool owner');
const INFO = Symbol('dpo-ts pool info');
interface Block extends ArrayBuffer {
  [OWNER]?: Buf;
  [INFO]?: LiveInfo;
}

/** The LiveInfo of a buffer handed out by alloc() and not yet released, else undefined. */
function liveInfo(buf: Buf): LiveInfo | undefined {
  const block = buf.buffer as Block;
  return block[OWNER] === buf ? block[INFO] : undefined;
}
// The nursery: buffers handed out since the last settle(), not yet in the FinalizationRegistry.
// V8's minor collections (scavenges) treat a registry's targets as live, so every registered
// buffer — with its typed array, ArrayBuffer and registry cell — is promoted to the old
// generation and stays until a full collection, even when it is released a microsecond later.
// Most buffers are (a step's activations, a generated token's scratch): registering them all
// promoted ~80 KiB per step on a tiny GRPO run, and V8 sized its old generation to that rate
// (old space 25 → 71 MiB, RSS +30%). So a buffer enters the registry only if it is still live at
// the end of the synchronous work that made it (a queued microtask) or when the nursery is full
// (its older half); released before then, it never does. A buffer still live at a settle() stays
// in the nursery until it has been live at SETTLES_BEFORE_REGISTER of them: parameter gradients
// live from a micro-batch's backward, across the training loop's await, to the optimizer step
// (and across the accumulation steps' awaits), and registering them at the first settle put ~40
// registry cells per step (allocated straight into the old generation) and the gradients'
// buffers into V8's old space, 4–6 KiB of garbage per DPO step. The nursery holds its buffers
// strongly, so a tensor dropped without release() is reclaimed at most SETTLES_BEFORE_REGISTER
// settles (or one nursery flush) later than it would be otherwise.
// nursery[0..nurseryCount): a preallocated array with its own count, for the reason given at
// SizeClass.blocks (`length = 0` and push() reallocated its backing store every settle).
export const NURSERY_CAPACITY = 4096;
const nursery: (Buf | undefined)[] = new Array<Buf | undefined>(NURSERY_CAPACITY).fill(undefined);
let nurseryCount = 0;
let settleQueued = false;

/** A buffer live at this many settles (the microtasks after synchronous work) enters the registry. */
export const SETTLES_BEFORE_REGISTER = 8;

/**
 * Drops released buffers from the nursery and registers live ones: at a settle (flush = false)
 * those live at SETTLES_BEFORE_REGISTER settles, the rest stay; when the nursery is full
 * (flush = true) every live one of the older `count` entries.
 */
function settle(count: number, flush: boolean): void {
  let kept = 0;
  for (let i = 0; i < nurseryCount; i++) {
    const buf = nursery[i]!;
    const info = liveInfo(buf);
    if (!info || info.registered) continue;
    if (i < count && (flush || ++info.settles >= SETTLES_BEFORE_REGISTER)) {
      registry.register(buf, info, info);
      info.registered = true;
    } else nursery[kept++] = buf;
  }
  nursery.fill(undefined, kept, nurseryCount);
  nurseryCount = kept;
}

function settleLater(): void {
  settleQueued = false;
  settle(nurseryCount, false);
  // Live buffers still waiting: settle again in the next turn of the event loop (after the
  // callbacks already queued, such as the training loop's resumption), and every turn after
  // until none waits, so that a dropped tensor is registered (and reclaimed) even when nothing
  // allocates any more. Unref'd: it never keeps the process alive.
  if (nurseryCount > 0 && !recheckQueued) {
    recheckQueued = true;
    // (The browser bundle's setImmediate returns no handle: nothing to unref there.)
    (setImmediate(recheck) as unknown as { unref?: () => void } | undefined)?.unref?.();
  }
}

let recheckQueued = false;
function recheck(): void {
  recheckQueued = false;
  if (!settleQueued) settleLater();
}
const registry = new FinalizationRegistry<LiveInfo>((r) => {
  currentBytes -= r.bytes;
  heldBytes -= r.capacity;
  collectedBytes += r.capacity;
  collectedBuffers++;
});

/** Capacity (elements) of the class serving a request for n elements. */
export function sizeClass(n: number, classes: PoolClasses = config.classes): number {
  if (classes === 'exact') return n;
  if (n <= MIN_CLASS) return MIN_CLASS;
  // 2^e < n ≤ 2^(e+1); steps of 2^(e-CLASS_STEPS_LOG2): 8 classes per power of two.
  const e = n - 1 < 2 ** 31 ? 31 - Math.clz32(n - 1) : Math.floor(Math.log2(n - 1));
  const step = 2 ** Math.max(0, e - CLASS_STEPS_LOG2);
  return Math.ceil(n / step) * step;
}

/** Whether the bound limits the pool's owned bytes (live + idle) rather than the idle ones. */
function boundsOwned(): boolean {
  return config.limitBytes === 'auto' && config.bound === 'owned';
}

function limitBytes(): number {
  const l = config.limitBytes;
  if (l !== 'auto') return l;
  return Math.max(POOL_MIN_LIMIT_BYTES, config.factor * workingSetBytes);
}

/** A class's key: its capacity in elements, negated for float64 (numbers: no string per request). */
function key(dtype: DType, capacity: number): number {
  return dtype === 'float32' ? capacity : -capacity;
}

/**
 * A buffer of n elements. zero = true guarantees zeros (a fresh buffer is zero; a pooled one is
 * cleared); zero = false leaves pooled contents, for outputs the kernel overwrites entirely.
 */
export function alloc(dtype: DType, n: number, zero = true): Buf {
  if (!mallocTuned) mallocTuned = (tuneMalloc(), true);
  const width = dtype === 'float32' ? 4 : 8;
  const bytes = n * width;
  let buf: Buf;
  let capacity: number;
  if (config.limitBytes === 0) {
    capacity = bytes;
    // An explicit ArrayBuffer even for tiny arrays (V8 keeps those on its heap, without one).
    const ab = new ArrayBuffer(bytes);
    adviseHugePages(ab);
    buf = dtype === 'float32' ? new Float32Array(ab) : new Float64Array(ab);
  } else {
    const c = sizeClass(n);
    const k = key(dtype, c);
    const cls = classOf(k);
    cls.used = ++requests;
    let block = takeBlock(cls);
    capacity = c * width;
    // Empty class: a block of one of the next few larger classes will do (a shorter batch
    // reusing a longer one's buffers), at most 1.5x the request.
    if (!block && config.classes === 'classes') {
      for (let up = 0, cu = c; up < LARGER_CLASSES && !block; up++) {
        cu = sizeClass(cu + 1);
        if (cu > 1.5 * n) break;
        block = takeBlock(pools.get(key(dtype, cu)));
        if (block) capacity = cu * width;
      }
    }
    if (block) {
      hits++;
      pooledBytes -= capacity;
      buf = dtype === 'float32' ? new Float32Array(block, 0, n) : new Float64Array(block, 0, n);
      if (zero) buf.fill(0);
      else if (poison) buf.fill(NaN);
    } else {
      misses++;
      // A new block: the pool now owns more. Past the bound, idle blocks of the classes
      // requested least recently make room (before the allocation, so they are gone at the peak).
      if (boundsOwned()) {
        const over = heldBytes + capacity + pooledBytes - Math.max(limitBytes(), heldBytes + capacity);
        if (over > 0) evict(Math.min(over, pooledBytes), k);
      }
      const ab = new ArrayBuffer(capacity);
      adviseHugePages(ab);
      buf = dtype === 'float32' ? new Float32Array(ab, 0, n) : new Float64Array(ab, 0, n);
      if (!zero && poison) buf.fill(NaN);
    }
  }
  // One object is the registry's holdings and its unregister token (registered by settle()).
  const info: LiveInfo = { bytes, capacity, registered: false, settles: 0 };
  const block = buf.buffer as Block;
  block[OWNER] = buf;
  block[INFO] = info;
  nursery[nurseryCount++] = buf;
  if (nurseryCount >= NURSERY_CAPACITY) settle(NURSERY_CAPACITY / 2, true);
  if (!settleQueued) {
    settleQueued = true;
    queueMicrotask(settleLater);
  }
  currentBytes += bytes;
  heldBytes += capacity;
  if (currentBytes > peakBytes) peakBytes = currentBytes;
  if (currentBytes > workingSetBytes) workingSetBytes = currentBytes;
  return buf;
}

/**
 * Returns a buffer to the pool. The caller guarantees nothing reads or writes it afterwards.
 * Releasing a buffer that did not come from alloc() (or twice) is ignored.
 */
export function release(buf: Buf): void {
  const info = liveInfo(buf);
  if (!info) return;
  const block = buf.buffer as Block;
  block[OWNER] = undefined;
  block[INFO] = undefined;
  if (info.registered) registry.unregister(info);
  currentBytes -= info.bytes;
  heldBytes -= info.capacity;
  const capacity = info.capacity;
  if (capacity === 0) return;
  if (config.limitBytes === 0) {
    drop(buf.buffer as ArrayBuffer);
    return;
  }
  const width = buf instanceof Float32Array ? 4 : 8;
  const k = key(width === 4 ? 'float32' : 'float64', capacity / width);
  // Owned bound: a release moves a block from live to idle, the pool owns no more (the bound
  // grows with the working set only). Idle bound: the idle bytes are checked here.
  const limit = boundsOwned() ? Infinity : limitBytes();
  if (pooledBytes + capacity > limit && !evict(pooledBytes + capacity - limit, k)) {
    drop(buf.buffer as ArrayBuffer);
    return;
  }
  putBlock(classOf(k), buf.buffer as ArrayBuffer);
  pooledBytes += capacity;
}

/**
 * Drops idle blocks of the least recently requested classes (never `keep`) until `need` bytes
 * are freed. Returns false (dropping nothing) when that is impossible.
 */
function evict(need: number, keep: number): boolean {
  const kept = pools.get(keep);
  const available = pooledBytes - (kept ? kept.count * capacityOf(keep) : 0);
  if (available < need) return false;
  // Free a little more than needed (1/16 of the bound) so that a run of releases does not evict
  // one block at a time.
  const target = Math.min(available, need + limitBytes() / 16);
  let freed = 0;
  // Least recently requested first (eviction is rare: only when a request needs a new block).
  const order = [...pools].sort((a, b) => a[1].used - b[1].used);
  for (const [k, c] of order) {
    if (k === keep) continue;
    const cap = capacityOf(k);
    while (c.count > 0 && freed < target) {
      drop(takeBlock(c)!);
      freed += cap;
    }
    if (freed >= target) break;
  }
  pooledBytes -= freed;
  evictedBytes += freed;
  return true;
}

/** A block leaves the pool: freed now (config.freeDropped and the native addon), or left to the GC. */
function drop(block: ArrayBuffer): void {
  const bytes = block.byteLength;
  if (config.freeDropped && freeNow(block)) freedBytes += bytes;
}

function capacityOf(k: number): number {
  return k > 0 ? 4 * k : -8 * k;
}

export interface MemoryStats {
  /** Bytes in tensor buffers handed out and not yet released or collected. */
  currentBytes: number;
  /** Highest currentBytes since start (or resetPeak()). */
  peakBytes: number;
  /** Bytes kept in the reuse pool. */
  pooledBytes: number;
  /** Capacity of the live buffers (currentBytes plus the size-class rounding). */
  heldBytes: number;
  /** The working set the auto bound derives from: the highest currentBytes since start (or configurePool()). */
  workingSetBytes: number;
  /** Current bound (0: pooling off): on heldBytes + pooledBytes for the auto bound (PoolConfig.bound 'owned'), else on pooledBytes. */
  poolLimitBytes: number;
  /** Requests served from the pool / newly allocated, and bytes dropped to keep the bound. */
  poolHits: number;
  poolMisses: number;
  poolEvictedBytes: number;
  /** Number of size classes with idle blocks. */
  poolClasses: number;
  /** Bytes of dropped blocks freed at once instead of by the GC (see PoolConfig.freeDropped). */
  freedBytes: number;
  /** Bytes of buffers never released (their tensors were simply dropped), reclaimed by the GC. */
  collectedBytes: number;
  /** How many such buffers the GC reclaimed. */
  collectedBuffers: number;
}

/** Buffers handed out and not yet checked into the FinalizationRegistry (tests: the nursery stays bounded). */
export function nurseryLength(): number {
  return nurseryCount;
}

export function memoryStats(): MemoryStats {
  let classes = 0;
  for (const c of pools.values()) if (c.count > 0) classes++;
  return {
    currentBytes, peakBytes, pooledBytes, heldBytes, workingSetBytes,
    poolLimitBytes: config.limitBytes === 0 ? 0 : limitBytes(),
    poolHits: hits, poolMisses: misses, poolEvictedBytes: evictedBytes, poolClasses: classes,
    freedBytes, collectedBytes, collectedBuffers,
  };
}

export function resetPeak(): void {
  peakBytes = currentBytes;
}

/** Drops every pooled buffer (freed at once, see PoolConfig.freeDropped). */
export function clearPool(): void {
  for (const c of pools.values()) for (let b = takeBlock(c); b; b = takeBlock(c)) drop(b);
  pools.clear();
  pooledBytes = 0;
}

/** A fixed bound on the pooled bytes (0 disables pooling), or 'auto' (the default). */
export function setPoolLimit(bytes: number | 'auto'): void {
  configurePool({ limitBytes: bytes });
}

/** Changes the pool's size classes and bound (benchmarks compare them). Clears the pool and restarts the working set from the live bytes. */
export function configurePool(c: Partial<PoolConfig>): void {
  if (c.limitBytes !== undefined && c.limitBytes !== 'auto' && !(c.limitBytes >= 0)) {
    throw new RangeError(`pool limit must be a number of bytes ≥ 0 or 'auto', got ${c.limitBytes}`);
  }
  config = { ...config, ...c };
  clearPool();
  workingSetBytes = currentBytes;
}

export function poolConfig(): Readonly<PoolConfig> {
  return config;
}

/** Tests: fill reused (and fresh) non-zeroed buffers with NaN, so a kernel that leaves any element unwritten shows. */
export function setPoolPoison(on: boolean): void {
  poison = on;
}
