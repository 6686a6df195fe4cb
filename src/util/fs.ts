// Atomic file writes, the one home for "write beside, then rename into place": a reader never sees
// a half-written file, and a failure leaves no partial file behind. Every layer may use it.
import { closeSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';

/** Largest single write (Node's writeSync takes at most 2 GiB per call). */
const IO_CHUNK = 1 << 30;

/** Writes all of buf at the current file position. */
export function writeExactly(fd: number, buf: Uint8Array, what: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = writeSync(fd, buf, done, Math.min(IO_CHUNK, buf.length - done));
    if (n <= 0) throw new Error(`${what}: write failed after ${done} of ${buf.length} bytes`);
    done += n;
  }
}

/**
 * Writes a file through `body(write)` into a temporary file beside it, then renames it into place.
 * `what` names the file in errors.
 */
export function writeFileAtomically(path: string, what: string, body: (write: (bytes: Uint8Array) => void) => void): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w');
  try {
    body((bytes) => writeExactly(fd, bytes, what));
    closeSync(fd);
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* nothing to remove */ }
    throw e;
  }
  renameSync(tmp, path);
}

/** Writes text (UTF-8) or bytes to path atomically. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  writeFileAtomically(path, path, (write) => write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}
