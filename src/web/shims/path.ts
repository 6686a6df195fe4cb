// node:path for the browser bundle: the POSIX functions the core uses, over the volume's absolute
// paths (the working directory is '/').
export const sep = '/';
export const delimiter = ':';

export function normalize(path: string): string {
  if (path === '') return '.';
  const abs = path.startsWith('/');
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!abs) out.push('..');
    } else out.push(part);
  }
  const s = (abs ? '/' : '') + out.join('/');
  return s === '' ? '.' : path.endsWith('/') && s !== '/' ? `${s}/` : s;
}

export function join(...parts: string[]): string {
  const s = parts.filter((p) => p !== '').join('/');
  return s === '' ? '.' : normalize(s);
}

export function resolve(...parts: string[]): string {
  let s = '';
  for (let i = parts.length - 1; i >= 0 && !s.startsWith('/'); i--) s = parts[i]! + (s ? `/${s}` : '');
  const n = normalize(s.startsWith('/') ? s : `/${s}`);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

export function isAbsolute(path: string): boolean {
  return path.startsWith('/');
}

export function dirname(path: string): string {
  const p = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  const i = p.lastIndexOf('/');
  if (i < 0) return '.';
  return i === 0 ? '/' : p.slice(0, i);
}

export function basename(path: string, ext?: string): string {
  const p = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  const b = p.slice(p.lastIndexOf('/') + 1);
  return ext && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
}

export function extname(path: string): string {
  const b = basename(path);
  const i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i);
}

export function relative(from: string, to: string): string {
  const a = resolve(from).split('/').filter(Boolean), b = resolve(to).split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => '..'), ...b.slice(i)].join('/');
}

export const posix = { sep, delimiter, normalize, join, resolve, isAbsolute, dirname, basename, extname, relative };
export default posix;
