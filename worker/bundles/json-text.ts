/**
 * JSON of a model's files, parsed so that a failure says what is wrong and where, never what the file
 * holds. V8's own messages quote the text they choke on (`Unexpected token 'r', "root:x:0:0:"... is
 * not valid JSON`), and a loader's error reaches whoever named the file: for a worker, a coordinator.
 */

/** A file's text that is not JSON: the message gives a position at most, no content. */
export class JsonTextError extends Error {
  override readonly name = 'JsonTextError';
}

export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new JsonTextError(syntaxProblem((error as Error).message, text));
  }
}

function syntaxProblem(message: string, text: string): string {
  if (text.trim() === '') return 'not valid JSON (empty)';
  if (/Unexpected end of JSON input/.test(message)) return `not valid JSON (it ends before its JSON does, after ${text.length} characters: truncated?)`;
  const position = /at position (\d+)/.exec(message)?.[1];
  if (position === undefined) return 'not valid JSON';
  const before = text.slice(0, Number(position));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `not valid JSON (at line ${line}, column ${column})`;
}
