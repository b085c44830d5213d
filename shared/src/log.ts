import { type Logger, pino } from "pino";
import { activeTraceIds, tracingEnabled } from "./tracing.js";

export type { Logger };

/**
 * Structured JSON logs on stderr; one logger per process, child loggers per
 * request. With tracing on (tracing.ts), every line written while a span is
 * active carries its `traceId` and `spanId`.
 */
export function createLogger(service: string, level = process.env.RECSYS_LOG_LEVEL ?? "info"): Logger {
  return pino(
    {
      name: service,
      level,
      base: { service, pid: process.pid },
      mixin: () => (tracingEnabled() ? (activeTraceIds() ?? {}) : {}),
    },
    pino.destination(2),
  );
}
