/**
 * ONNX execution providers against the hardware and the image: a service
 * that reads RECSYS_<SERVICE>_EXECUTION_PROVIDER (rank) runs cuda exactly
 * when its pod holds a GPU, and then from the image built with ONNX
 * Runtime's CUDA provider (recsys/<service>-gpu, deploy/docker/<service>-gpu.Dockerfile).
 * Any mismatch still serves, silently on CPU, or leaves a GPU idle.
 */
import { parseImage } from "../images.js";
import { parseQuantity } from "../resources.js";
import { envName } from "../service-config.js";
import { effectiveEnv, serviceContainers } from "./funnel-config.js";
import { findings, type Rule } from "./types.js";

const GPU = "nvidia.com/gpu";

export const executionProviderRule: Rule = {
  id: "execution-provider",
  description:
    "A service's ONNX execution provider is cuda exactly when its container is given an nvidia.com/gpu, and cuda runs from the <service>-gpu image (the one with ONNX Runtime's CUDA provider)",
  check(ctx) {
    const f = findings(this.id);
    for (const { t, c, service } of serviceContainers(ctx)) {
      const key = `RECSYS_${envName(service.name)}_EXECUTION_PROVIDER`;
      const schema = service.spec[key];
      if (!schema) continue;
      const raw = effectiveEnv(ctx, t, c).get(key)?.value;
      const parsed = schema.safeParse(raw === undefined || raw === "" ? undefined : raw);
      if (!parsed.success) continue; // config-keys reports the value
      const provider = String(parsed.data);
      const gpus = parseQuantity(c.resources?.limits?.[GPU] ?? c.resources?.requests?.[GPU]) ?? 0;
      const where = `container "${c.name}"`;
      if (provider === "cuda" && gpus <= 0)
        f.error(t.id, `${where}: ${key}=cuda but no ${GPU} is requested: every inference falls back to cpu`);
      if (provider !== "cuda" && gpus > 0)
        f.error(t.id, `${where}: holds ${gpus} ${GPU} but ${key}=${provider}: the GPU sits idle`);
      const image = parseImage(c.image ?? "").name;
      if (provider === "cuda" && !image.endsWith(`${service.name}-gpu`)) {
        f.error(
          t.id,
          `${where}: ${key}=cuda but image ${image} lacks ONNX Runtime's CUDA provider (use ${service.name}-gpu)`,
        );
      }
    }
    return f.list;
  },
};
