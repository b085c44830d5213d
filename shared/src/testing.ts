/**
 * Test helper: one service as a real process (services/<name>/dist/main.js),
 * for specs that test a service's RPC contract without the whole funnel
 * (LocalStack, deploy/local, starts all of it). The process writes its log
 * to a file of its own and exits with the test process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ServiceProcess {
  readonly child: ChildProcess;
  /** A fresh directory for the process's state (bus, spill); its log file is in it. */
  readonly stateDir: string;
  readonly logFile: string;
  log(): string;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

export interface ServiceProcessOptions {
  readonly rootDir: string;
  readonly service: string;
  /** Environment on top of this process's; RECSYS_BUS_DIR defaults to <stateDir>/bus, Kafka off. */
  readonly env: Record<string, string>;
  /** Resolves true once the service serves (e.g. its grpc.health.v1 check says SERVING). */
  ready(): Promise<boolean>;
  readonly timeoutMs?: number;
}

export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  const stateDir = mkdtempSync(join(tmpdir(), `recsys-${options.service}-`));
  const logFile = join(stateDir, `${options.service}.log`);
  const fd = openSync(logFile, "a");
  const child = spawn(
    process.execPath,
    [join(options.rootDir, "services", options.service, "dist", "main.js")],
    {
      env: {
        ...process.env,
        RECSYS_BUS_DIR: join(stateDir, "bus"),
        RECSYS_KAFKA_BROKERS: "",
        RECSYS_EXIT_WITH_PARENT: "1",
        ...options.env,
      },
      stdio: ["ignore", fd, fd],
    },
  );
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const log = () => readFileSync(logFile, "utf8");
  const handle: ServiceProcess = {
    child,
    stateDir,
    logFile,
    log,
    async stop() {
      if (exitCode !== undefined) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    if (exitCode !== undefined) throw new Error(`${options.service} exited with ${exitCode}:\n${log()}`);
    if (await options.ready()) return handle;
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${options.service} not ready in time:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
