// Tensors and the reverse-mode autograd tape.
//
// A Tensor is a contiguous row-major buffer (Float32Array or Float64Array) with a shape. Views
// that need no copy (reshape, leading-dimension slices) share the buffer; anything else copies.
// Each op that involves a tensor requiring grad records a Node: its inputs, the buffers it saved
// for backward, and a backward function. backward(root) runs the nodes in reverse topological
// order, accumulating gradients into leaf tensors' .grad, and releases every saved activation and
// intermediate gradient as soon as the last node needing it has run (see memory.ts).

import { alloc, release, type DType } from './memory.js';
import type { Buf } from './kernels.js';
import { kernels } from './backend.js';

export type { DType };

let gradEnabled = true;

/** Whether ops record the tape (false inside noGrad). */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

// Inside the untaped forward of a checkpointed block (training, but not recording).
let checkpointForward = 0;

/** Whether this is a training forward (taped, or the first run of a checkpointed block): dropout is on. */
export function isTraining(): boolean {
  return gradEnabled || checkpointForward > 0;
}

/**
 * Runs fn without recording the tape (inference mode: no activations are kept for backward).
 * Works with async functions too (the flag stays off until the promise settles).
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    gradEnabled = prev;
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => {
      gradEnabled = prev;
    }) as T;
  }
  gradEnabled = prev;
  return result;
}

/** A recorded operation on the tape. */
export interface Node {
  /** Op name, for error messages and debugging. */
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /**
   * Given the gradient of the loss w.r.t. this node's output, adds the gradients w.r.t. the inputs
   * (those with requiresGrad) via accumulateGrad(input, buf).
   */
  backward(gradOut: Buf): void;
  /** Buffers owned by this node only (scratch saved for backward), released after backward. */
  readonly scratch?: Buf[];
}

let nextId = 1;

// Tensors created inside tidy() scopes (inference only), innermost last.
const scopes: Tensor[][] = [];

/**
 * Runs fn and, when grad is disabled (inference), releases every tensor fn created except the
 * result (and the buffer it views): intermediate activations go back to the pool at once instead
 * of waiting for the garbage collector. With grad enabled the tape owns lifetimes: fn just runs.
 */
export function tidy<R extends Tensor>(fn: () => R): R {
  if (gradEnabled) return fn();
  const scope: Tensor[] = [];
  scopes.push(scope);
  let out: R;
  try {
    out = fn();
  } finally {
    scopes.pop();
  }
  const keep = new Set<Tensor>([out, ...(out.base ? [out.base] : [])]);
  for (const t of scope) if (!keep.has(t) && !t.isView) t.dispose();
  const outer = scopes[scopes.length - 1];
  if (outer) for (const t of keep) outer.push(t);
  return out;
}

export class Tensor {
  readonly id = nextId++;
  data: Buf;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Leaf tensors with requiresGrad get .grad; intermediate ones carry a node. */
  requiresGrad: boolean;
  /** Gradient of a leaf (parameter or input that requires grad), accumulated by backward(). */
  grad: Buf | null = null;
  /** The op that produced this tensor (null for leaves and outside the tape). */
  node: Node | null = null;
  /** Optional name (parameters carry their checkpoint name). */
  name: string | undefined;
  /**
   * Number of tape nodes that saved this tensor's data for their backward; the data is released
   * after the last of them ran, unless the tensor is a leaf or retained.
   */
  savedBy = 0;
  /** Kept alive by the user: the tape never releases its data. */
  retained = false;
  /**
   * A constant built for one forward (`tensor(…, { transient: true })`, e.g. a segment matrix an op
   * saves for its backward): a leaf, but backward releases its data after the last node that saved
   * it, as it does an intermediate's, instead of leaving it to the garbage collector.
   */
  transient = false;
  /** Shares another tensor's buffer (a view): never released by the tape. */
  readonly isView: boolean;
  /** For a view: the tensor that owns the buffer (saved-by counts go to it). */
  readonly base: Tensor | null;

  constructor(data: Buf, shape: readonly number[], opts: { requiresGrad?: boolean; name?: string; base?: Tensor } = {}) {
    const n = numel(shape);
    if (data.length !== n) {
      throw new RangeError(`Tensor: buffer has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`);
    }
    this.data = data;
    this.numel = n;
    this.shape = Object.freeze([...shape]);
    this.dtype = data instanceof Float64Array ? 'float64' : 'float32';
    this.requiresGrad = opts.requiresGrad ?? false;
    this.name = opts.name;
    this.base = opts.base ? (opts.base.base ?? opts.base) : null;
    this.isView = this.base !== null;
    if (scopes.length > 0) scopes[scopes.length - 1]!.push(this);
  }

  /** Number of elements (from the shape: still valid after the tape released the data). */
  get size(): number {
    return this.numel;
  }
  private readonly numel: number;

  get ndim(): number {
    return this.shape.length;
  }

  /** Leaf: created by the user (parameters, inputs), not by an op on the tape. */
  get isLeaf(): boolean {
    return this.node === null;
  }

  /** Marks this tensor as held by the user: backward() will not release its data. */
  retain(): this {
    this.retained = true;
    return this;
  }

  /** Returns the buffer to the pool. The tensor must not be used afterwards. */
  dispose(): void {
    if (!this.isView) release(this.data);
    this.data = EMPTY;
    this.node = null;
  }

  /** Single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new RangeError(`item(): tensor has ${this.size} elements, shape [${this.shape.join(', ')}]`);
    return this.data[0]!;
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  toString(): string {
    return `Tensor(${this.name ? this.name + ', ' : ''}[${this.shape.join(', ')}], ${this.dtype})`;
  }
}

const EMPTY = new Float32Array(0);

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`invalid shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

// ---- construction ----------------------------------------------------------------------------

export function zeros(shape: readonly number[], dtype: DType = 'float32', requiresGrad = false): Tensor {
  return new Tensor(alloc(dtype, numel(shape)), shape, { requiresGrad });
}

/** Uninitialized (possibly pooled) storage: for outputs a kernel overwrites completely. */
export function empty(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return new Tensor(alloc(dtype, numel(shape), false), shape);
}

export function full(shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor {
  const t = empty(shape, dtype);
  t.data.fill(value);
  return t;
}

export function tensor(
  values: ArrayLike<number>,
  shape?: readonly number[],
  opts: { dtype?: DType; requiresGrad?: boolean; name?: string; transient?: boolean } = {},
): Tensor {
  const dtype = opts.dtype ?? (values instanceof Float64Array ? 'float64' : 'float32');
  const data = alloc(dtype, values.length, false);
  data.set(values as ArrayLike<number>);
  const t = new Tensor(data, shape ?? [values.length], { requiresGrad: opts.requiresGrad, name: opts.name });
  if (opts.transient) {
    if (opts.requiresGrad) throw new RangeError('tensor: a transient constant cannot require a gradient');
    t.transient = true;
  }
  return t;
}

/** Wraps an existing buffer without copying (e.g. weights read from a checkpoint). */
export function fromBuffer(data: Buf, shape: readonly number[], opts: { requiresGrad?: boolean; name?: string } = {}): Tensor {
  return new Tensor(data, shape, opts);
}

// ---- the tape --------------------------------------------------------------------------------

/**
 * Records a node for out if grad is enabled and any input requires grad. saved are the input (or
 * output) tensors whose data the backward reads: the tape keeps them until the node ran.
 * Returns out for chaining.
 */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: (gradOut: Buf) => void,
  opts: { saved?: readonly Tensor[]; scratch?: Buf[] } = {},
): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) {
    // Not on the tape: scratch kept for a backward that will never run goes back to the pool.
    if (opts.scratch) for (const b of opts.scratch) release(b);
    return out;
  }
  out.requiresGrad = true;
  // A view's buffer belongs to its base: count (and later release) the owner.
  const saved = (opts.saved ?? []).map((t) => t.base ?? t);
  for (const t of saved) t.savedBy++;
  out.node = {
    op,
    inputs,
    scratch: opts.scratch,
    backward,
    saved,
  } as Node & { saved: readonly Tensor[] };
  return out;
}

// Gradients of non-leaf tensors during one backward pass.
let pendingGrads: Map<Tensor, Buf> | null = null;

// The gradient buffer handed to the running node's backward, and whether accumulateGrad took it
// over (a node may pass its incoming gradient straight to an input as its last use of it).
let gradOut: Buf | null = null;
let gradOutTaken = false;

/**
 * Adds g into the gradient of t (called by ops' backward functions). g may be taken over (not
 * copied) when t has no gradient yet: callers pass freshly allocated buffers they do not reuse,
 * or the node's own incoming gradient as the last thing they do with it.
 */
export function accumulateGrad(t: Tensor, g: Buf): void {
  if (g === gradOut) gradOutTaken = true;
  if (!t.requiresGrad) {
    release(g);
    return;
  }
  if (g.length !== t.size) {
    throw new RangeError(`gradient for ${t} has ${g.length} elements, expected ${t.size}`);
  }
  if (t.isLeaf) {
    if (t.grad === null) {
      t.grad = g;
    } else {
      addInto(t.grad, g);
      release(g);
    }
    return;
  }
  if (!pendingGrads) throw new Error('accumulateGrad called outside backward()');
  const prev = pendingGrads.get(t);
  if (prev === undefined) pendingGrads.set(t, g);
  else {
    addInto(prev, g);
    release(g);
  }
}

/**
 * Adds a contribution into t's gradient in place: add(dst) gets t's gradient buffer (a zeroed one
 * when t has none yet) and adds into it. Ops whose gradient touches only part of an input (narrow,
 * embedding rows) use it instead of a full-size zeroed temporary plus accumulateGrad.
 */
export function accumulateGradInPlace(t: Tensor, add: (dst: Buf) => void): void {
  if (!t.requiresGrad) return;
  if (t.isLeaf) {
    if (t.grad === null) t.grad = alloc(t.dtype, t.size);
    add(t.grad);
    return;
  }
  if (!pendingGrads) throw new Error('accumulateGradInPlace called outside backward()');
  let dst = pendingGrads.get(t);
  if (dst === undefined) {
    dst = alloc(t.dtype, t.size);
    pendingGrads.set(t, dst);
  }
  add(dst);
}

function addInto(dst: Buf, src: Buf): void {
  // Large float32 gradients (shared weights, residual streams) go through the native add.
  if (dst instanceof Float32Array && src instanceof Float32Array && dst.length >= 4096) {
    kernels().add(dst, src, dst, dst.length);
    return;
  }
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}

/** Allocates a zeroed gradient buffer shaped like t. */
export function gradBuffer(t: Tensor): Buf {
  return alloc(t.dtype, t.size);
}

export interface BackwardOptions {
  /**
   * Also release the root's buffer (its base's, for a view) once the tape is consumed, and empty
   * the root: for a caller that has read what it needs from it (a training step), so that one
   * buffer per step is not left to the garbage collector. A leaf or retained root is never released.
   */
  releaseRoot?: boolean;
}

/**
 * Back-propagates from root. gradRoot defaults to ones (root is usually a scalar loss).
 * Leaf gradients accumulate into .grad (call zeroGrad between steps). The tape is consumed:
 * saved activations and intermediate gradients are released as soon as possible; the root (and
 * its base) stays the caller's, unless opts.releaseRoot.
 */
export function backward(root: Tensor, gradRoot?: Buf, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error(`backward(): ${root} does not require grad (was it computed under noGrad?)`);
  if (gradRoot && gradRoot.length !== root.size) {
    throw new RangeError(`backward(): gradient has ${gradRoot.length} elements, root ${root} has ${root.size}`);
  }
  // Decided before the tape is consumed (afterwards every node is a leaf).
  const owner = root.base ?? root;
  const releaseOwner = opts.releaseRoot === true && owner.node !== null && !owner.retained && !root.retained;
  // Topological order by iterative DFS (deep transformer graphs would overflow recursion).
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node ? t.node.inputs : [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i]!;
      if (child.node && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      if (t.node) order.push(t);
    }
  }

  const outer = pendingGrads;
  pendingGrads = new Map();
  try {
    let g0: Buf;
    if (gradRoot) {
      g0 = alloc(root.dtype, root.size, false);
      g0.set(gradRoot);
    } else {
      g0 = alloc(root.dtype, root.size, false);
      g0.fill(1);
    }
    pendingGrads.set(root, g0);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const node = t.node as Node & { saved: readonly Tensor[] };
      const g = pendingGrads.get(t);
      pendingGrads.delete(t);
      if (g !== undefined) {
        gradOut = g;
        gradOutTaken = false;
        node.backward(g);
        // accumulateGrad either kept g or already released it after adding it elsewhere.
        if (!gradOutTaken) release(g);
        gradOut = null;
      }
      // The node is consumed: free its scratch and any saved activation no other node needs.
      if (node.scratch) for (const b of node.scratch) release(b);
      for (const s of node.saved) {
        s.savedBy--;
        if (s.savedBy === 0 && (!s.isLeaf || s.transient) && !s.retained && s !== root && s !== root.base) {
          release(s.data);
          s.data = EMPTY;
        }
      }
      t.node = null;
      // Every consumer of t ran before its producer: its value is no longer needed by the tape.
      if (t !== root && !t.retained && !t.isView && t !== root.base) {
        release(t.data);
        t.data = EMPTY;
      }
    }
  } finally {
    gradOut = null;
    for (const g of pendingGrads.values()) release(g);
    pendingGrads = outer;
  }
  if (releaseOwner) disposeWithBase(root);
}

/**
 * Gradient checkpointing (activation recomputation): y = fn(x) computed without keeping fn's
 * intermediate activations; only x is saved. backward recomputes fn on x's saved value with the
 * tape on and back-propagates g through that, so the gradients of x and of the parameters fn reads
 * (leaves, listed in params so the node is recorded even when x needs no gradient) are those of an
 * ordinary forward, as long as fn computes the same values both times (the caller restores any
 * random state, see runDecoder). `recompute` wraps the second run (to restore context).
 */
export function checkpoint(
  x: Tensor, params: readonly Tensor[], fn: (x: Tensor) => Tensor, recompute: (run: () => void) => void = (run) => run(),
): Tensor {
  if (!gradEnabled || !(x.requiresGrad || params.some((p) => p.requiresGrad))) return fn(x);
  checkpointForward++;
  let out: Tensor;
  try {
    out = noGrad(() => tidy(() => fn(x)));
  } finally {
    checkpointForward--;
  }
  return record(out, 'checkpoint', [x, ...params], (g) => {
    const xd = new Tensor(x.data, x.shape, { requiresGrad: x.requiresGrad });
    const savedGradOut = gradOut, savedTaken = gradOutTaken, savedEnabled = gradEnabled;
    gradEnabled = true;
    try {
      recompute(() => {
        const y = fn(xd);
        if (y.requiresGrad) backward(y, g);
        if (!y.isView && !y.retained) release(y.data);
        y.data = EMPTY;
      });
    } finally {
      gradEnabled = savedEnabled;
      gradOut = savedGradOut;
      gradOutTaken = savedTaken;
    }
    if (xd.grad) accumulateGrad(x, xd.grad);
  }, { saved: [x] });
}

/**
 * Returns a result the caller is done with to the pool: its buffer, or for a view (a reshape, a
 * selection) its base's, which holds the buffer (dispose() of a view releases nothing). The
 * tensor and its base must not be used afterwards.
 */
export function disposeWithBase(t: Tensor): void {
  if (t.base) {
    t.base.dispose();
    t.data = EMPTY;
    t.node = null;
  } else t.dispose();
}

/** Sets every tensor's .grad to null (releasing the buffers). */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    if (p.grad) release(p.grad);
    p.grad = null;
  }
}
