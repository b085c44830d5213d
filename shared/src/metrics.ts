import { createServer, type Server } from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "@prometheus-io/client";

/** Latency buckets in seconds, dense around the funnel's budgets (5-100 ms). */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15,
  0.25, 0.5, 1, 2.5,
];

/** One Prometheus registry per process, with the metrics every service shares. */
export class Metrics {
  readonly registry = new Registry();
  readonly rpcDuration: Histogram<"method" | "code">;
  readonly degradations: Counter<"kind">;
  readonly modelVersion: Gauge<"model" | "version">;
  readonly stageDuration: Histogram<"stage" | "outcome">;
  readonly filtered: Counter<"filter">;
  readonly modelLoads: Counter<"model" | "outcome">;
  readonly onnxInference: Histogram<"model" | "provider">;
  readonly onnxExecutionProvider: Gauge<"model" | "requested" | "provider">;
  readonly admissionLimit: Gauge<"method">;
  readonly admissionRefused: Counter<"method" | "reason">;
  private server?: Server;

  constructor(readonly service: string) {
    this.registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: this.registry });
    this.rpcDuration = new Histogram({
      name: "recsys_grpc_server_handling_seconds",
      help: "gRPC server handling time by method and status code",
      labelNames: ["method", "code"],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.degradations = new Counter({
      name: "recsys_degradations_total",
      help: "Degradations (fallbacks, dropped channels, unknown users) by kind",
      labelNames: ["kind"],
      registers: [this.registry],
    });
    this.modelVersion = new Gauge({
      name: "recsys_model_version_info",
      help: "Loaded model or method version (value 1 for the loaded one)",
      labelNames: ["model", "version"],
      registers: [this.registry],
    });
    this.stageDuration = new Histogram({
      name: "recsys_stage_seconds",
      help: "Time spent in a funnel stage or channel, by outcome",
      labelNames: ["stage", "outcome"],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.modelLoads = new Counter({
      name: "recsys_model_loads_total",
      help: "Model version loads by outcome (loaded, rejected)",
      labelNames: ["model", "outcome"],
      registers: [this.registry],
    });
    this.onnxInference = new Histogram({
      name: "recsys_onnx_inference_seconds",
      help: "ONNX Runtime session.run time inside the worker, by model and execution provider",
      labelNames: ["model", "provider"],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.onnxExecutionProvider = new Gauge({
      name: "recsys_onnx_execution_provider",
      help: "ONNX Runtime execution provider a model runs on (value 1), with the one requested",
      labelNames: ["model", "requested", "provider"],
      registers: [this.registry],
    });
    this.admissionLimit = new Gauge({
      name: "recsys_admission_limit",
      help: "Adaptive concurrency limit of a method (calls beyond it are refused with RESOURCE_EXHAUSTED)",
      labelNames: ["method"],
      registers: [this.registry],
    });
    this.admissionRefused = new Counter({
      name: "recsys_admission_refused_total",
      help: "Calls refused by adaptive admission: reason limit (at the concurrency limit) or deadline (too little time left)",
      labelNames: ["method", "reason"],
      registers: [this.registry],
    });
    this.filtered = new Counter({
      name: "recsys_filtered_candidates_total",
      help: "Candidates removed by each filter",
      labelNames: ["filter"],
      registers: [this.registry],
    });
  }

  /** A gauge read from `read` at each scrape (e.g. the size of an in-memory table). */
  observedGauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  private readonly loadedVersions = new Map<string, string>();

  /** Marks `version` as the loaded version of `model`, clearing the previous one. */
  setModelVersion(model: string, version: string): void {
    const previous = this.loadedVersions.get(model);
    if (previous !== undefined && previous !== version)
      this.modelVersion.remove({ model, version: previous });
    this.loadedVersions.set(model, version);
    this.modelVersion.set({ model, version }, 1);
  }

  private readonly providers = new Map<string, { requested: string; provider: string }>();

  /** Marks the execution provider `model` runs on (and the one asked for), clearing the previous one. */
  setExecutionProvider(model: string, requested: string, provider: string): void {
    const previous = this.providers.get(model);
    if (previous) this.onnxExecutionProvider.remove({ model, ...previous });
    this.providers.set(model, { requested, provider });
    this.onnxExecutionProvider.set({ model, requested, provider }, 1);
  }

  /** Serves /metrics on `port` (0 picks a free one). Resolves with the bound port. */
  async listen(port: number, host = "0.0.0.0"): Promise<number> {
    this.server = createServer((req, res) => {
      if (req.url === "/metrics") {
        this.registry
          .metrics()
          .then((body) => {
            res.writeHead(200, { "content-type": this.registry.contentType });
            res.end(body);
          })
          .catch((err: unknown) => {
            res.writeHead(500);
            res.end(String(err));
          });
        return;
      }
      res.writeHead(404);
      res.end();
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address();
    return typeof address === "object" && address ? address.port : port;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections(); // keep-alive scrapers would otherwise hold close() open
    await closed;
  }
}
