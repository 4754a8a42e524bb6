// Logs (pino) at LOG_LEVEL, to stdout; every part logs through a child with its name. LOG_FORMAT picks
// one JSON object a line (for machines: docker logs, Loki) or readable lines (pino-pretty) for a person
// at a terminal; `auto` is readable on a terminal and JSON otherwise.
import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export type LogFormat = 'auto' | 'pretty' | 'json';

/** Whether `format` comes out readable here (auto: when stdout is a terminal). */
export function isPretty(format: LogFormat, isTTY = process.stdout.isTTY === true): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY);
}

export function createLogger(level: string, name = 'yggdrasil', format: LogFormat = 'json'): Logger {
  const opts = { level, name, base: { pid: process.pid } };
  if (!isPretty(format)) return pino(opts);
  return pino(
    opts,
    pretty({
      sync: true,
      colorize: process.stdout.isTTY === true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,part',
      singleLine: true,
      messageFormat: '{if part}[{part}] {end}{msg}',
    }),
  );
}
