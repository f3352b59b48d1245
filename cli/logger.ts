import { pino, type Level, type Logger } from 'pino';

export interface RunLoggerOptions {
  /** run.log in the run folder. */
  readonly file: string;
  readonly fileLevel: Level | 'silent';
  /** The terminal (stderr); kept to warnings while a progress bar owns the line. */
  readonly terminalLevel: Level | 'silent';
}

/** pino to the run folder and to stderr, each at its own level. */
export function createRunLogger(options: RunLoggerOptions): Logger {
  const value = (level: Level | 'silent') => (level === 'silent' ? Infinity : pino.levels.values[level]!);
  const streams = [
    ...(options.fileLevel === 'silent' ? [] : [{ level: options.fileLevel, stream: pino.destination({ dest: options.file, sync: true }) }]),
    ...(options.terminalLevel === 'silent' ? [] : [{ level: options.terminalLevel, stream: pino.destination({ dest: 2, sync: true }) }]),
  ];
  const lowest = [options.fileLevel, options.terminalLevel].reduce((a, b) => (value(a) <= value(b) ? a : b));
  return pino({ level: lowest, base: { pid: process.pid } }, pino.multistream(streams));
}
