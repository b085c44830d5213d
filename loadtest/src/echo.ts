/**
 * A bare grpc-js unary echo server: the reference for what one gRPC hop
 * costs on this machine with nothing else in it (no protobuf, no
 * interceptors, no handler work). Run in its own process by the bench
 * (`node echo.js [port]` prints `ECHO_PORT=<port>`), so the client and the
 * server do not share an event loop, as in the funnel.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { ECHO_PATH } from "./workload.js";

const identity = (b: Buffer) => b;

export async function startEchoServer(
  address = "127.0.0.1:0",
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new Server();
  server.addService(
    {
      echo: {
        path: ECHO_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    { echo: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => cb(null, call.request) },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** Starts the echo server as a child process; resolves once it listens. */
export async function spawnEchoServer(): Promise<{
  target: string;
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("echo server did not start within 10 s")), 10_000);
    child.once("exit", (code) => reject(new Error(`echo server exited with ${code}`)));
    child.stdout?.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      const m = /ECHO_PORT=(\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return {
    target: `127.0.0.1:${port}`,
    pid: child.pid!,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { port, close } = await startEchoServer(`127.0.0.1:${process.argv[2] ?? "0"}`);
  process.stdout.write(`ECHO_PORT=${port}\n`);
  process.once("SIGTERM", () => void close().then(() => process.exit(0)));
  process.once("SIGINT", () => void close().then(() => process.exit(0)));
}
