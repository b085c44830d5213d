/**
 * The online trainer service: follows the samples and feedback topics and,
 * every RECSYS_ONLINE_EVERY_SAMPLES samples or RECSYS_ONLINE_EVERY_MS, writes
 * a shard with each sample's history and runs the Python trainer's online
 * update, which publishes a new model version only when it does not regress
 * on a holdout (the serving services hot-swap it through their ModelWatcher).
 * gRPC: health (SERVING once the consumers run) and reflection only.
 */
import { existsSync } from "node:fs";
import { createRuntime } from "@recsys/shared";
import { onlineTrainerConfigSpec, pythonCommand } from "./config.js";
import { startOnlineService } from "./service.js";

const rt = createRuntime("online-trainer", onlineTrainerConfigSpec);
const cfg = rt.config;
await rt.start(cfg.RECSYS_ONLINE_TRAINER_ADDR);

const { python, pythonPath } = pythonCommand(cfg);
if (!existsSync(python))
  rt.logger.warn(
    { python },
    "the trainer's Python interpreter is missing (run scripts/setup-python.sh or set RECSYS_ONLINE_PYTHON): updates will fail until it exists",
  );
if (!existsSync(pythonPath)) rt.logger.warn({ pythonPath }, "RECSYS_ONLINE_PYTHONPATH does not exist");

let service: Awaited<ReturnType<typeof startOnlineService>>;
try {
  service = await startOnlineService({ cfg, logger: rt.logger, metrics: rt.metrics });
} catch (err) {
  rt.logger.error({ err }, "online trainer failed to start");
  process.exit(1);
}
rt.onShutdown(() => service.stop());
rt.logger.info(service.describe, "online trainer running");
rt.ready();
