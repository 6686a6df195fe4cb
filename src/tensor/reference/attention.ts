// Causal grouped-query attention, reference backend: the oracle for native/attention.cc.
// Straightforward loops over (batch, query, head); the scores of one query row (at most Tk values)
// are materialized, all sums run in float64 (JS numbers) whatever the buffer type.
// Contract and layouts: src/tensor/kernels.ts (attentionForward / attentionBackward).
import type { Kernels } from '../kernels.js';

function need(kernel: string, name: string, buf: ArrayLike<number>, n: number, formula: string): void {
  if (buf.length < n) {
    throw new RangeError(`${kernel}: ${name} has ${buf.length} elements, needs at least ${n} (${formula})`);
  }
}

function checkHeads(
  kernel: string, batch: number, Tq: number, Tk: number, H: number, Hkv: number, D: number,
  kvStart: Int32Array | null,
): void {
  const dims = `batch=${batch}, Tq=${Tq}, Tk=${Tk}, H=${H}, Hkv=${Hkv}, D=${D}`;
  for (const x of [batch, Tq, Tk, H, Hkv, D]) {
    if (!Number.isInteger(x)) throw new RangeError(`${kernel}: sizes must be integers (${dims})`);
  }
  if (batch < 0 || Tq < 0 || Tk < 0 || H < 1 || Hkv < 1 || D < 1) {
    throw new RangeError(`${kernel}: invalid sizes (${dims})`);
  }
  if (H % Hkv !== 0) throw new RangeError(`${kernel}: H must be a multiple of Hkv (${dims})`);
  if (Tq > Tk) throw new RangeError(`${kernel}: Tq must not exceed Tk (${dims})`);
  if (kvStart) {
    need(kernel, 'kvStart', kvStart, batch, 'one entry per batch item');
    for (let b = 0; b < batch; b++) {
      if (kvStart[b] < 0) throw new RangeError(`${kernel}: kvStart[${b}] = ${kvStart[b]} is negative`);
    }
  }
}

export const attentionForward: Kernels['attentionForward'] = (
  q, k, v, out, lse, batch, Tq, Tk, H, Hkv, D, scale, kvBatchStride, kvStart,
) => {
  const kernel = 'attentionForward';
  checkHeads(kernel, batch, Tq, Tk, H, Hkv, D, kvStart);
  const kvItem = Tk * Hkv * D;
  if (kvBatchStride < kvItem) {
    throw new RangeError(`${kernel}: kvBatchStride ${kvBatchStride} is below Tk·Hkv·D = ${kvItem}`);
  }
  const qf = `batch·T·H·D = ${batch}·${Tq}·${H}·${D}`;
  const kvNeed = batch === 0 ? 0 : (batch - 1) * kvBatchStride + kvItem;
  const kvf = `(batch−1)·kvBatchStride + Tk·Hkv·D with batch=${batch}, kvBatchStride=${kvBatchStride}, Tk=${Tk}, Hkv=${Hkv}, D=${D}`;
  need(kernel, 'q', q, batch * Tq * H * D, qf);
  need(kernel, 'k', k, kvNeed, kvf);
  need(kernel, 'v', v, kvNeed, kvf);
  need(kernel, 'out', out, batch * Tq * H * D, qf);
  need(kernel, 'lse', lse, batch * H * Tq, 'batch·H·Tq');

  const G = H / Hkv;
  const kStride = Hkv * D; // distance between consecutive keys of one head
  const s = new Float64Array(Tk);
  const acc = new Float64Array(D);
  for (let b = 0; b < batch; b++) {
    const ks = kvStart ? kvStart[b] : 0;
    for (let t = 0; t < Tq; t++) {
      const pos = Tk - Tq + t; // absolute position of query t: sees keys ks..pos
      for (let h = 0; h < H; h++) {
        const qo = ((b * Tq + t) * H + h) * D;
        const kvo = b * kvBatchStride + Math.floor(h / G) * D;
        const lo = (b * H + h) * Tq + t;
        if (ks > pos) {
          out.fill(0, qo, qo + D);
          lse[lo] = -Infinity;
          continue;
        }
        let mx = -Infinity;
        for (let j = ks; j <= pos; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d] * k[kvo + j * kStride + d];
          s[j] = dot * scale;
          if (s[j] > mx) mx = s[j];
        }
        let sum = 0;
        acc.fill(0);
        for (let j = ks; j <= pos; j++) {
          const p = Math.exp(s[j] - mx);
          sum += p;
          for (let d = 0; d < D; d++) acc[d] += p * v[kvo + j * kStride + d];
        }
        for (let d = 0; d < D; d++) out[qo + d] = acc[d] / sum;
        lse[lo] = mx + Math.log(sum);
      }
    }
  }
};

export const attentionBackward: Kernels['attentionBackward'] = (
  dout, q, k, v, out, lse, dq, dk, dv, batch, T, H, Hkv, D, scale, kvStart,
) => {
  const kernel = 'attentionBackward';
  checkHeads(kernel, batch, T, T, H, Hkv, D, kvStart);
  const qf = `batch·T·H·D = ${batch}·${T}·${H}·${D}`;
  const kvf = `batch·T·Hkv·D = ${batch}·${T}·${Hkv}·${D}`;
  const qn = batch * T * H * D, kvn = batch * T * Hkv * D;
  need(kernel, 'dout', dout, qn, qf);
  need(kernel, 'q', q, qn, qf);
  need(kernel, 'k', k, kvn, kvf);
  need(kernel, 'v', v, kvn, kvf);
  need(kernel, 'out', out, qn, qf);
  need(kernel, 'lse', lse, batch * H * T, 'batch·H·T');
  need(kernel, 'dq', dq, qn, qf);
  need(kernel, 'dk', dk, kvn, kvf);
  need(kernel, 'dv', dv, kvn, kvf);

  const G = H / Hkv;
  const kStride = Hkv * D;
  const item = T * kStride;
  const p = new Float64Array(T);
  const dS = new Float64Array(T);
  const dqRow = new Float64Array(D);
  // dk, dv of one batch item summed in float64, then stored (GQA: a KV head sums its query heads).
  const dkAcc = new Float64Array(item);
  const dvAcc = new Float64Array(item);
  for (let b = 0; b < batch; b++) {
    const ks = kvStart ? kvStart[b] : 0;
    dkAcc.fill(0);
    dvAcc.fill(0);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const qo = ((b * T + t) * H + h) * D;
        const kvo = b * item + Math.floor(h / G) * D;
        const L = lse[(b * H + h) * T + t];
        if (ks > t || L === -Infinity) {
          dq.fill(0, qo, qo + D); // no visible key: out was 0, nothing flows back
          continue;
        }
        // Di = rowsum(dO ∘ O)
        let Di = 0;
        for (let d = 0; d < D; d++) Di += dout[qo + d] * out[qo + d];
        // P = exp(scale·q·k − lse); dP = dO·v; dS = P ∘ (dP − Di)
        for (let j = ks; j <= t; j++) {
          let dot = 0, dp = 0;
          for (let d = 0; d < D; d++) {
            dot += q[qo + d] * k[kvo + j * kStride + d];
            dp += dout[qo + d] * v[kvo + j * kStride + d];
          }
          p[j] = Math.exp(dot * scale - L);
          dS[j] = p[j] * (dp - Di);
        }
        // dQ = scale·dS·K;  dK += scale·dSᵀ·Q;  dV += Pᵀ·dO
        dqRow.fill(0);
        for (let j = ks; j <= t; j++) {
          const ko = j * kStride + Math.floor(h / G) * D;
          for (let d = 0; d < D; d++) {
            dqRow[d] += scale * dS[j] * k[kvo + j * kStride + d];
            dkAcc[ko + d] += scale * dS[j] * q[qo + d];
            dvAcc[ko + d] += p[j] * dout[qo + d];
          }
        }
        for (let d = 0; d < D; d++) dq[qo + d] = dqRow[d];
      }
    }
    for (let i = 0; i < item; i++) {
      dk[b * item + i] = dkAcc[i];
      dv[b * item + i] = dvAcc[i];
    }
  }
};
