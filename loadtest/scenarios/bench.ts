/**
 * bench (`npm run bench`): Recommend only (10% with a query) at a fixed rate
 * for 30 s against a LocalStack the runner starts, plus a low-load phase for
 * the overhead ratio and a bare grpc-js echo server as the transport
 * reference. See docs/benchmarks.md.
 *
 *   npm run bench [-- --rate 50 --duration 30s]
 */

import { trafficMix } from "../src/mix.js";
import { defineProfile } from "../src/scenario.js";

export default defineProfile({
  name: "bench",
  description: "Recommend at a fixed rate; per-stage and per-service costs; overhead ratio; echo reference",
  defaults: { rate: 50, duration: "30s" },
  warmup: "5s",
  options: ({ rate, duration }) => ({
    scenarios: trafficMix({ rate, duration, feedbackPerRecommend: 0, catalogRate: 0 }),
    thresholds: {
      "grpc_req_duration{method:Recommend}": ["p(99)<100"],
      grpc_req_failed: ["rate<0.001"],
      checks: ["rate>0.999"],
      dropped_iterations: ["count==0"],
    },
  }),
  bench: { lowLoadRate: 5, lowLoadDuration: "20s", echoDuration: "15s" },
});
