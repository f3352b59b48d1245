import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { ConfigError } from '../config/resolve-run-config.js';
import { VIEW_ROLES, type ViewRole } from '../view/principal.js';
import { addToken } from '../view/token-file.js';

/**
 * `evosearch token`: a bearer token for the coordinator's live view, for a browser without a client
 * certificate. Adds the token's sha256 (never the token) to the --tokens file the coordinator reads
 * (`--view-tokens`), made readable by its owner only, and prints the token and the page's URL with it
 * once. The name is the principal, as a certificate's CN: a client token for `alice` sees alice's runs.
 */
export function buildTokenCommand(): Command {
  return new Command('token')
    .description("Make a bearer token for the coordinator's live view (a browser without a client certificate): its hash goes into the tokens file, the token is printed once.")
    .requiredOption('--tokens <file>', "the coordinator's --view-tokens file (made if missing, mode 0600)")
    .requiredOption('--name <name>', 'whom the token stands for: the name a client certificate would have (its runs are the ones the token sees)')
    .addOption(new Option('--role <role>', 'client: its own runs; admin: every run').choices([...VIEW_ROLES]).default('client'))
    .option('--replace', 'replace the token of a name that has one (the old one stops working)')
    .option('--url <url>', "the view's address, to print the page's URL with the token (e.g. https://coord-host:7080/)")
    .action(async (options: { tokens: string; name: string; role: ViewRole; replace?: boolean; url?: string }) => {
      let base: URL | undefined;
      if (options.url !== undefined) {
        try {
          base = new URL(options.url);
        } catch {
          throw new ConfigError('--url', `'${options.url}' is not a URL (e.g. https://coord-host:7080/)`, 'command-line flags');
        }
      }
      const file = resolve(options.tokens);
      const token = await addToken(file, options.name, options.role, options.replace === true);
      const page = base === undefined ? `https://<view host:port>/#token=${token}` : `${new URL('/', base).toString()}#token=${token}`;
      process.stdout.write(`token for ${options.role} '${options.name}' added to ${file} (only its sha256 is kept; this is the one time it is shown):\n${token}\nopen the view with it (the part after # never leaves the browser):\n${page}\n`);
    });
}
