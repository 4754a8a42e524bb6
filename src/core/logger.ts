// Structured logs (pino) at LOG_LEVEL, to stdout; every part logs through a child with its name.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'yggdrasil'): Logger {
  return pino({ level, name, base: { pid: process.pid } });
}
