// The browser's file access: an in-memory volume of files (bytes by absolute POSIX path). The page
// fills it from what the person picks or drops (File) and from the bundled model (fetch), and reads
// exported files back out of it. In the browser bundle the core's file access — the subset of
// node:fs it uses, listed by FILE_FUNCTIONS in shims/fs.ts — is served from this volume, so the
// loaders and writers (safetensors, GGUF, llama2.c, tokenizers, Hugging Face directories) are the
// library's own, unchanged. In Node the same functions are node:fs.
import { dirname, normalize } from './shims/path.js';

export class Volume {
  private readonly files = new Map<string, Uint8Array>();
  private readonly dirs = new Set<string>(['/']);

  /** Absolute, normalized form of a path (relative paths are taken from '/'). */
  resolve(path: string): string {
    const p = normalize(path.startsWith('/') ? path : `/${path}`);
    return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
  }

  mkdirp(path: string): void {
    let p = this.resolve(path);
    const made: string[] = [];
    while (!this.dirs.has(p)) {
      if (this.files.has(p)) throw fsError('ENOTDIR', 'not a directory', 'mkdir', p);
      made.push(p);
      p = dirname(p);
    }
    for (const d of made) this.dirs.add(d);
  }

  /** Writes a file, creating its parent directories. */
  writeFile(path: string, bytes: Uint8Array): void {
    const p = this.resolve(path);
    if (this.dirs.has(p)) throw fsError('EISDIR', 'illegal operation on a directory', 'open', p);
    this.mkdirp(dirname(p));
    this.files.set(p, bytes);
  }

  readFile(path: string): Uint8Array {
    const p = this.resolve(path);
    const f = this.files.get(p);
    if (f) return f;
    if (this.dirs.has(p)) throw fsError('EISDIR', 'illegal operation on a directory', 'read', p);
    throw fsError('ENOENT', 'no such file or directory', 'open', p);
  }

  isFile(path: string): boolean {
    return this.files.has(this.resolve(path));
  }

  isDirectory(path: string): boolean {
    return this.dirs.has(this.resolve(path));
  }

  exists(path: string): boolean {
    return this.isFile(path) || this.isDirectory(path);
  }

  /** Names (not paths) of a directory's entries, sorted. */
  list(path: string): string[] {
    const p = this.resolve(path);
    if (!this.dirs.has(p)) throw fsError(this.files.has(p) ? 'ENOTDIR' : 'ENOENT', this.files.has(p) ? 'not a directory' : 'no such file or directory', 'scandir', p);
    const prefix = p === '/' ? '/' : `${p}/`;
    const out = new Set<string>();
    for (const k of [...this.files.keys(), ...this.dirs]) {
      if (k !== p && k.startsWith(prefix) && !k.slice(prefix.length).includes('/')) out.add(k.slice(prefix.length));
    }
    return [...out].sort();
  }

  /** Removes a file, or a directory (recursive: with everything under it). */
  remove(path: string, recursive = false): void {
    const p = this.resolve(path);
    if (this.files.delete(p)) return;
    if (!this.dirs.has(p)) throw fsError('ENOENT', 'no such file or directory', 'rm', p);
    if (p === '/') throw fsError('EPERM', 'operation not permitted', 'rm', p);
    const prefix = `${p}/`;
    const inside = [...this.files.keys(), ...this.dirs].filter((k) => k.startsWith(prefix));
    if (inside.length && !recursive) throw fsError('ENOTEMPTY', 'directory not empty', 'rmdir', p);
    for (const k of inside) {
      this.files.delete(k);
      this.dirs.delete(k);
    }
    this.dirs.delete(p);
  }

  rename(from: string, to: string): void {
    const a = this.resolve(from), b = this.resolve(to);
    const f = this.files.get(a);
    if (f) {
      this.writeFile(b, f);
      if (a !== b) this.files.delete(a);
      return;
    }
    if (!this.dirs.has(a)) throw fsError('ENOENT', 'no such file or directory', 'rename', a);
    if (this.exists(b)) this.remove(b, true);
    const prefix = `${a}/`;
    for (const [k, v] of [...this.files]) if (k.startsWith(prefix)) {
      this.files.delete(k);
      this.writeFile(b + k.slice(a.length), v);
    }
    for (const d of [...this.dirs]) if (d === a || d.startsWith(prefix)) {
      this.dirs.delete(d);
      this.mkdirp(b + d.slice(a.length));
    }
  }

  /** Every file under a directory, as [path relative to it, bytes], sorted by path. */
  walk(path: string): [string, Uint8Array][] {
    const p = this.resolve(path);
    const prefix = p === '/' ? '/' : `${p}/`;
    return [...this.files].filter(([k]) => k.startsWith(prefix)).map(([k, v]): [string, Uint8Array] => [k.slice(prefix.length), v]).sort((x, y) => (x[0] < y[0] ? -1 : 1));
  }
}

/** An error shaped like Node's fs errors (code, syscall, path), so the core's messages read the same. */
export function fsError(code: string, what: string, syscall: string, path: string): Error & { code: string; syscall: string; path: string } {
  return Object.assign(new Error(`${code}: ${what}, ${syscall} '${path}'`), { code, syscall, path });
}

/** The volume the browser bundle's file access uses. */
export const volume = new Volume();
