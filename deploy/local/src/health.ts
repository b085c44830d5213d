/** A grpc.health.v1 client: the same check Kubernetes' gRPC probes make. */
import { type Client, credentials, loadPackageDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";

type HealthClient = Client & {
  check(
    req: { service: string },
    opts: { deadline: number },
    cb: (err: Error | null, res?: { status: string }) => void,
  ): void;
};

const definition = loadPackageDefinition(loadSync(protoPath, { enums: String })) as unknown as {
  grpc: {
    health: {
      v1: {
        Health: new (target: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient;
      };
    };
  };
};

/** Resolves with the serving status ("SERVING", "NOT_SERVING", ...) or "UNREACHABLE". */
export function checkHealth(target: string, service = "", timeoutMs = 500): Promise<string> {
  const client = new definition.grpc.health.v1.Health(target, credentials.createInsecure());
  return new Promise((resolve) => {
    client.check({ service }, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      resolve(err ? "UNREACHABLE" : (res?.status ?? "UNKNOWN"));
    });
  });
}
