/**
 * The old name of runSearchToFolder (run-search-to-folder.ts), kept only because
 * coordinator/service/coordinator-server.ts imports it from here and is not this change's to edit:
 * once it imports runSearchToFolder, this file goes.
 */
export { runSearchToFolder as runEmbedded } from './run-search-to-folder.js';
