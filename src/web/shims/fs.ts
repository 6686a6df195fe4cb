// node:fs for the browser bundle: the file functions the core uses, served from the in-memory
// volume (../volume.ts). Synchronous like the originals (the volume holds bytes, not handles).
// Writes go to a descriptor's own buffer and reach the volume on close, so a reader never sees a
// half-written file, and renameSync after it is the same atomic replace as on disk.
import { Buffer } from 'buffer';
import { fsError, volume } from '../volume.js';
import { MemoryStream } from './misc.js';

/** The node:fs functions this shim serves: the core's whole file interface in the browser. */
export const FILE_FUNCTIONS = [
  'existsSync', 'statSync', 'fstatSync', 'readFileSync', 'readdirSync', 'openSync', 'readSync', 'writeSync',
  'closeSync', 'writeFileSync', 'appendFileSync', 'mkdirSync', 'renameSync', 'rmSync', 'unlinkSync',
  'copyFileSync', 'realpathSync', 'chmodSync',
] as const;

type Data = string | Uint8Array;

interface Descriptor {
  path: string;
  /** Bytes read from (read mode). */
  data: Uint8Array | null;
  /** Chunks written (write/append mode), committed on close. */
  chunks: Uint8Array[] | null;
  position: number;
}

const descriptors = new Map<number, Descriptor>();
let nextFd = 3;

function bytesOf(data: Data | ArrayBufferView, encoding?: string): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, (encoding ?? 'utf8') as BufferEncoding);
  if (data instanceof Uint8Array) return data;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function encodingOf(opts: unknown): string | undefined {
  if (typeof opts === 'string') return opts;
  if (opts && typeof opts === 'object' && typeof (opts as { encoding?: unknown }).encoding === 'string') return (opts as { encoding: string }).encoding;
  return undefined;
}

function descriptor(fd: number, syscall: string): Descriptor {
  const d = descriptors.get(fd);
  if (!d) throw fsError('EBADF', 'bad file descriptor', syscall, String(fd));
  return d;
}

class Stats {
  constructor(readonly dir: boolean, readonly size: number) {}
  readonly mtimeMs = 0;
  readonly mtime = new Date(0);
  readonly mode = 0o644;
  isDirectory(): boolean {
    return this.dir;
  }
  isFile(): boolean {
    return !this.dir;
  }
  isSymbolicLink(): boolean {
    return false;
  }
}

export function existsSync(path: string): boolean {
  return typeof path === 'string' && volume.exists(path);
}

export function statSync(path: string, opts?: { throwIfNoEntry?: boolean }): Stats | undefined {
  if (volume.isDirectory(path)) return new Stats(true, 0);
  if (volume.isFile(path)) return new Stats(false, volume.readFile(path).byteLength);
  if (opts?.throwIfNoEntry === false) return undefined;
  throw fsError('ENOENT', 'no such file or directory', 'stat', volume.resolve(path));
}
export const lstatSync = statSync;

export function fstatSync(fd: number): Stats {
  const d = descriptor(fd, 'fstat');
  return new Stats(false, d.data ? d.data.byteLength : d.chunks!.reduce((s, c) => s + c.byteLength, 0));
}

export function readFileSync(path: string | number, opts?: unknown): string | Buffer {
  const bytes = typeof path === 'number' ? descriptor(path, 'read').data ?? new Uint8Array(0) : volume.readFile(path);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const enc = encodingOf(opts);
  return enc ? b.toString(enc as BufferEncoding) : b;
}

export function readdirSync(path: string, opts?: { withFileTypes?: boolean }): (string | { name: string; isDirectory(): boolean; isFile(): boolean })[] {
  const names = volume.list(path);
  if (!opts?.withFileTypes) return names;
  const base = volume.resolve(path);
  return names.map((name) => {
    const dir = volume.isDirectory(`${base}/${name}`);
    return { name, isDirectory: () => dir, isFile: () => !dir };
  });
}

export function openSync(path: string, flags: string | number = 'r'): number {
  const f = String(flags);
  const p = volume.resolve(path);
  let d: Descriptor;
  if (f.startsWith('r')) d = { path: p, data: volume.readFile(p), chunks: null, position: 0 };
  else {
    if (f.includes('x') && volume.exists(p)) throw fsError('EEXIST', 'file already exists', 'open', p);
    if (!volume.isDirectory(p.slice(0, p.lastIndexOf('/')) || '/')) throw fsError('ENOENT', 'no such file or directory', 'open', p);
    const prior = f.startsWith('a') && volume.isFile(p) ? [volume.readFile(p)] : [];
    d = { path: p, data: null, chunks: prior, position: 0 };
    volume.writeFile(p, new Uint8Array(0));
  }
  const fd = nextFd++;
  descriptors.set(fd, d);
  return fd;
}

export function readSync(fd: number, buffer: ArrayBufferView, offsetOrOpts?: number | { offset?: number; length?: number; position?: number | null }, length?: number, position?: number | null): number {
  const d = descriptor(fd, 'read');
  if (!d.data) throw fsError('EBADF', 'bad file descriptor', 'read', d.path);
  let offset = 0;
  if (typeof offsetOrOpts === 'object' && offsetOrOpts !== null) ({ offset = 0, length, position } = offsetOrOpts);
  else if (typeof offsetOrOpts === 'number') offset = offsetOrOpts;
  const target = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const len = length ?? target.byteLength - offset;
  const pos = position === null || position === undefined ? d.position : position;
  const n = Math.max(0, Math.min(len, d.data.byteLength - pos));
  target.set(d.data.subarray(pos, pos + n), offset);
  if (position === null || position === undefined) d.position += n;
  return n;
}

export function writeSync(fd: number, data: Data | ArrayBufferView, offset?: number, length?: number): number {
  const d = descriptor(fd, 'write');
  if (!d.chunks) throw fsError('EBADF', 'bad file descriptor', 'write', d.path);
  let bytes = bytesOf(data, typeof offset === 'string' ? offset : undefined);
  if (typeof data !== 'string' && typeof offset === 'number') bytes = bytes.subarray(offset, length === undefined ? undefined : offset + length);
  d.chunks.push(bytes.slice());
  return bytes.byteLength;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

export function closeSync(fd: number): void {
  const d = descriptor(fd, 'close');
  descriptors.delete(fd);
  if (d.chunks) volume.writeFile(d.path, concat(d.chunks));
}

export function fsyncSync(fd: number): void {
  descriptor(fd, 'fsync');
}

export function writeFileSync(path: string | number, data: Data | ArrayBufferView, opts?: unknown): void {
  if (typeof path === 'number') {
    writeSync(path, data);
    return;
  }
  const p = volume.resolve(path);
  if (!volume.isDirectory(p.slice(0, p.lastIndexOf('/')) || '/')) throw fsError('ENOENT', 'no such file or directory', 'open', p);
  volume.writeFile(p, bytesOf(data, encodingOf(opts)).slice());
}

export function appendFileSync(path: string, data: Data, opts?: unknown): void {
  const prior = volume.isFile(path) ? volume.readFile(path) : new Uint8Array(0);
  writeFileSync(path, concat([prior, bytesOf(data, encodingOf(opts))]));
}

export function mkdirSync(path: string, opts?: { recursive?: boolean }): string | undefined {
  const p = volume.resolve(path);
  if (volume.isDirectory(p)) {
    if (opts?.recursive) return undefined;
    throw fsError('EEXIST', 'file already exists', 'mkdir', p);
  }
  if (!opts?.recursive && !volume.isDirectory(p.slice(0, p.lastIndexOf('/')) || '/')) throw fsError('ENOENT', 'no such file or directory', 'mkdir', p);
  volume.mkdirp(p);
  return p;
}

export function renameSync(from: string, to: string): void {
  volume.rename(from, to);
}

export function rmSync(path: string, opts?: { recursive?: boolean; force?: boolean }): void {
  if (!volume.exists(path) && opts?.force) return;
  volume.remove(path, opts?.recursive ?? false);
}

export function unlinkSync(path: string): void {
  if (volume.isDirectory(path)) throw fsError('EISDIR', 'illegal operation on a directory', 'unlink', volume.resolve(path));
  volume.remove(path);
}

export function copyFileSync(from: string, to: string): void {
  writeFileSync(to, volume.readFile(from).slice());
}

export function realpathSync(path: string): string {
  if (!volume.exists(path)) throw fsError('ENOENT', 'no such file or directory', 'realpath', volume.resolve(path));
  return volume.resolve(path);
}

export function chmodSync(): void {}

/** A file's bytes as the stream the core's line reader consumes (see MemoryStream in misc.ts). */
export function createReadStream(path: string): MemoryStream {
  return new MemoryStream(volume.readFile(path));
}

export const constants = { O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2, F_OK: 0, R_OK: 4, W_OK: 2 };

/** node:fs/promises over the same volume. */
export const promises = {
  readFile: async (path: string, opts?: unknown) => readFileSync(path, opts),
  writeFile: async (path: string, data: Data, opts?: unknown) => writeFileSync(path, data, opts),
  mkdir: async (path: string, opts?: { recursive?: boolean }) => mkdirSync(path, opts),
  rm: async (path: string, opts?: { recursive?: boolean; force?: boolean }) => rmSync(path, opts),
  stat: async (path: string) => statSync(path),
  readdir: async (path: string) => readdirSync(path),
  rename: async (a: string, b: string) => renameSync(a, b),
  open: async (path: string, flags: string = 'r') => {
    const fd = openSync(path, flags);
    return {
      fd,
      stat: async () => fstatSync(fd),
      read: async (buffer: Uint8Array, offset: number, length: number, position: number | null) => ({ bytesRead: readSync(fd, buffer, offset, length, position), buffer }),
      write: async (data: Uint8Array) => ({ bytesWritten: writeSync(fd, data), buffer: data }),
      close: async () => closeSync(fd),
    };
  },
};

export default {
  existsSync, statSync, lstatSync, fstatSync, readFileSync, readdirSync, openSync, readSync, writeSync, closeSync, fsyncSync,
  writeFileSync, appendFileSync, mkdirSync, renameSync, rmSync, unlinkSync, copyFileSync, realpathSync, chmodSync,
  createReadStream, constants, promises,
};
