import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { env } from "@recsys/shared";
import { busConfigSpec } from "@recsys/shared/bus";

/** Repository root, from this file's place (services/online-trainer/dist/config.js). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** Environment variables read by the online trainer (besides the common ones and the bus's). */
export const onlineTrainerConfigSpec = {
  ...busConfigSpec,
  /** gRPC address: health (SERVING once the consumers run) and reflection only. */
  RECSYS_ONLINE_TRAINER_ADDR: env.str("127.0.0.1:50058"),
  /** Shards, the state file (positions already trained on) and nothing else. */
  RECSYS_ONLINE_DIR: env.str("var/online"),
  /** Comma-separated models the online update fine-tunes, in this order, on the same shard. */
  RECSYS_ONLINE_MODELS: env.str("em3,prerank,kuaiformer"),
  /** An update is due once this many new samples arrived since the last attempt... */
  RECSYS_ONLINE_EVERY_SAMPLES: env.int(500, 1, 10_000_000),
  /** ...or this long after the last attempt (process start counts as one)... */
  RECSYS_ONLINE_EVERY_MS: env.int(600_000, 1_000),
  /** ...and never with fewer samples buffered than this. */
  RECSYS_ONLINE_MIN_SAMPLES: env.int(50, 1, 10_000_000),
  /** Allowed holdout AUC drop (passed to the trainer as --tolerance). */
  RECSYS_ONLINE_TOLERANCE: env.num(0.01, 0, 1),
  /** Python interpreter. Empty: <repo>/.venv/bin/python. */
  RECSYS_ONLINE_PYTHON: env.str(""),
  /** PYTHONPATH of the trainer (the directory holding recsys_trainer). Empty: <repo>/services/trainer. */
  RECSYS_ONLINE_PYTHONPATH: env.str(""),
  /** An update (one model) running longer is killed and counted as failed (decision "timeout"). */
  RECSYS_ONLINE_TIMEOUT_MS: env.int(30 * 60_000, 1_000),
  /** Samples kept waiting at most (besides an update's in progress); beyond, the oldest are dropped (and counted). */
  RECSYS_ONLINE_MAX_BUFFER: env.int(20_000, 1, 10_000_000),
  /** Shard files of this many most recent updates are kept. */
  RECSYS_ONLINE_KEEP_SHARDS: env.int(5, 1, 10_000),
  /** History events per sample at most (the newest). */
  RECSYS_ONLINE_HISTORY_LENGTH: env.int(100, 1, 10_000),
  /** Embedded bus: how often the gateway's samples and feedback logs are checked for new records. */
  RECSYS_ONLINE_POLL_MS: env.int(1_000, 10, 60_000),
};

/** "em3, prerank" -> ["em3", "prerank"]; throws on an empty list or a name that is not one. */
export function parseModels(list: string): string[] {
  const models = list
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
  if (models.length === 0 || !models.every((m) => /^[A-Za-z0-9_-]+$/.test(m)))
    throw new Error(`RECSYS_ONLINE_MODELS: expected a comma-separated list of model names, got "${list}"`);
  return models;
}

export interface PythonCommand {
  readonly python: string;
  readonly pythonPath: string;
}

export function pythonCommand(cfg: { RECSYS_ONLINE_PYTHON: string; RECSYS_ONLINE_PYTHONPATH: string }) {
  return {
    python: cfg.RECSYS_ONLINE_PYTHON || join(REPO_ROOT, ".venv", "bin", "python"),
    pythonPath: cfg.RECSYS_ONLINE_PYTHONPATH || join(REPO_ROOT, "services", "trainer"),
  } satisfies PythonCommand;
}
