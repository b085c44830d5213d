import { type Logger, pino } from "pino";

export type { Logger };

/** Structured JSON logs on stderr; one logger per process, child loggers per request. */
export function createLogger(service: string, level = process.env.RECSYS_LOG_LEVEL ?? "info"): Logger {
  return pino({ name: service, level, base: { service, pid: process.pid } }, pino.destination(2));
}
