/**
 * Hot model swaps: watches `<store>/<model>/CURRENT`, loads a new version in
 * the background, validates it (checksums, then the caller's `load`, which
 * checks the tensor signature and runs a probe batch), and swaps it in with
 * one reference assignment. A version that fails validation is rejected and
 * the old one keeps serving; it is not retried until CURRENT changes again.
 */
import { join } from "node:path";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import { currentVersion, type ModelManifest, readVerifiedManifest, versionDir } from "./modelstore.js";

export interface LoadedModel<T> {
  readonly model: string;
  readonly version: string;
  readonly dir: string;
  readonly manifest: ModelManifest;
  readonly value: T;
}

export interface ModelWatcherOptions<T> {
  readonly store: string;
  readonly model: string;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** How often CURRENT is checked, ms. */
  readonly pollMs?: number;
  /** Loads and validates a version; throw to reject it. */
  load(dir: string, manifest: ModelManifest): Promise<T>;
  /** Frees a replaced version, after in-flight requests had time to finish. */
  dispose?(value: T): void | Promise<void>;
  /** Delay before disposing a replaced version, ms. */
  readonly disposeDelayMs?: number;
}

export class ModelWatcher<T> {
  private loaded: LoadedModel<T> | undefined;
  private rejected: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private readonly listeners: Array<(m: LoadedModel<T>) => void> = [];

  constructor(private readonly options: ModelWatcherOptions<T>) {}

  /** The serving version, or undefined before any version loaded. */
  current(): LoadedModel<T> | undefined {
    return this.loaded;
  }

  onSwap(listener: (m: LoadedModel<T>) => void): void {
    this.listeners.push(listener);
  }

  /** Loads the current version (if any) and starts polling. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.options.pollMs ?? 2_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Checks CURRENT once; resolves when any resulting load finished. */
  check(): Promise<void> {
    this.checking ??= this.checkOnce().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    const { store, model, logger, metrics } = this.options;
    const version = currentVersion(store, model);
    if (!version || version === this.loaded?.version || version === this.rejected) return;
    const dir = versionDir(store, model, version);
    const started = performance.now();
    try {
      const manifest = readVerifiedManifest(store, model, version);
      const value = await this.options.load(dir, manifest);
      const previous = this.loaded;
      this.loaded = { model, version, dir, manifest, value };
      this.rejected = undefined;
      metrics?.setModelVersion(model, version);
      metrics?.modelLoads.inc({ model, outcome: "loaded" });
      logger.info(
        { model, version, ms: Math.round(performance.now() - started), previous: previous?.version },
        "model version loaded",
      );
      for (const l of this.listeners) l(this.loaded);
      if (previous && this.options.dispose) {
        const dispose = this.options.dispose;
        setTimeout(() => void dispose(previous.value), this.options.disposeDelayMs ?? 5_000).unref();
      }
    } catch (err) {
      this.rejected = version;
      metrics?.modelLoads.inc({ model, outcome: "rejected" });
      logger.error(
        {
          model,
          version,
          err: err instanceof Error ? err.message : String(err),
          serving: this.loaded?.version ?? null,
        },
        "model version rejected; keeping the serving version",
      );
    }
  }
}

export function artifactPath(loaded: { dir: string }, file: string): string {
  return join(loaded.dir, file);
}
