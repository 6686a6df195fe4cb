// `dpo web`: serves the in-browser page (label, train with DPO, compare, export) on 127.0.0.1.
import type { Command } from 'commander';

export function registerWebCommand(program: Command): void {
  program
    .command('web')
    .description('serve the in-browser page on 127.0.0.1: load a model, label its answers, train with DPO in the tab, compare, export')
    .option('--port <n>', 'port (0 picks a free one)', '8090')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .action(async (o: { port: string; host: string }) => {
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: expected 0-65535, got ${o.port}`);
      const { startWebServer } = await import('../web/server.js');
      const srv = await startWebServer({ port, host: o.host });
      process.stdout.write(`dpo web: open ${srv.url} (Ctrl-C stops; static files only, nothing leaves this machine)\n`);
      await new Promise<void>((ok) => process.once('SIGINT', () => void srv.close().then(ok)));
    });
}
