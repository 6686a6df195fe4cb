// `dpo web`'s server: the built page (dist/web, from `npm run build:web`) as static files on
// 127.0.0.1, with the COOP/COEP headers that make the page cross-origin isolated (threads in the
// worker need SharedArrayBuffer). Nothing is uploaded: the server only reads its own directory.
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.map': 'application/json', '.wasm': 'application/wasm', '.bin': 'application/octet-stream',
  '.md': 'text/plain; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png',
};

/** Headers of every response: cross-origin isolation, no sniffing, only our own scripts. */
export const WEB_HEADERS: Record<string, string> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'Cache-Control': 'no-store',
};

/** The built page: dist/web next to this module's dist/src (or DPO_WEB_DIR). */
export function webRoot(): string {
  if (process.env.DPO_WEB_DIR) return resolve(process.env.DPO_WEB_DIR);
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, d = dirname(d)) {
    for (const c of [join(d, 'web'), join(d, 'dist', 'web')]) if (existsSync(join(c, 'index.html')) && existsSync(join(c, 'page.js'))) return c;
  }
  throw new Error('dpo web: the page is not built (no dist/web/index.html); run `npm run build:web` in the dpo-ts directory');
}

export interface WebServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startWebServer(opts: { port?: number; host?: string; root?: string } = {}): Promise<WebServer> {
  const root = realpathSync(opts.root ?? webRoot());
  const host = opts.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    const send = (status: number, body: string | Buffer, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { ...WEB_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET and HEAD\n');
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return send(400, 'bad path\n');
    }
    if (path.endsWith('/')) path += 'index.html';
    const file = resolve(root, `.${path}`);
    if (!file.startsWith(root + sep) || path.includes('\0')) return send(404, 'not found\n');
    let real: string;
    try {
      real = realpathSync(file);
      if (!real.startsWith(root + sep) || !statSync(real).isFile()) return send(404, 'not found\n');
    } catch {
      return send(404, 'not found\n');
    }
    send(200, readFileSync(real), TYPES[extname(real).toLowerCase()] ?? 'application/octet-stream');
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 8090, host, () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port ?? 8090;
  return {
    url: `http://${host}:${port}/`,
    server,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}
