#!/usr/bin/env node
// Entry point of the `evosearch` command: the compiled CLI lives in dist/ (built by `npm ci` through
// the `prepare` script, or by `npm run build`).
import { main } from '../dist/cli/main.js';

main(process.argv).catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
