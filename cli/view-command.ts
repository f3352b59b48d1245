import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FolderRunSource } from '../coordinator/run/folder-view-source.js';
import { newToken } from '../view/token-file.js';
import { ViewServer } from '../view/view-server.js';
import { findRunFolder } from './resume-command.js';

/**
 * `evosearch view <run folder | run id>`: the live view of one run folder, served by this process on
 * loopback (plaintext HTTP, a fresh random token): a finished run, or one another `evosearch run` is
 * writing, followed round by round as its folder grows (coordinator/run/folder-view-source.ts). Prints
 * {"event":"listening","address":...,"url":...} on stdout, the URL (with the token in its fragment,
 * which the browser keeps to itself) on stderr too, and serves until SIGINT or SIGTERM.
 */
export function buildViewCommand(): Command {
  return new Command('view')
    .description("Serve the live view of one run folder on this machine (a finished run, or one another process is running): prints a URL with a one-time token to open in a browser; Ctrl-C stops.")
    .argument('<run>', 'the run folder, or a run id (looked up under --runs-dir)')
    .option('--runs-dir <dir>', 'where to look a run id up', 'runs')
    .option('--listen <host:port>', 'loopback address to serve on (port 0: any free port)', '127.0.0.1:0')
    .action(async (run: string, options: { runsDir: string; listen: string }) => {
      const named = join(resolve(options.runsDir), run);
      const folder = existsSync(run) ? resolve(run) : /^[A-Za-z0-9._-]+$/.test(run) && existsSync(named) ? named : findRunFolder(run, options.runsDir);
      const source = await FolderRunSource.open(folder);
      const token = newToken();
      const server = await ViewServer.start({ listen: options.listen, source, tls: null, credentials: { localToken: token } });
      const url = `${server.url}#token=${token}`;
      process.stdout.write(`${JSON.stringify({ event: 'listening', address: server.address, url })}\n`);
      process.stderr.write(`evosearch view: run ${source.runId} (${folder})\n  open ${url}\n  (the token after # stays in the browser; Ctrl-C stops)\n`);
      await new Promise<void>((done) => {
        const stop = () => {
          source.close();
          void server.close().then(done);
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
