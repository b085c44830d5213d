/**
 * smoke: ~20 s of the full traffic mix at a modest rate. Runs inside `npm test`
 * (loadtest/src/smoke.spec.ts) against a LocalStack of its own: the funnel
 * answers correctly and in budget under steady concurrent traffic.
 *
 *   npm run loadtest -- --profile smoke
 */
import { parseDuration } from "../src/duration.js";
import { trafficMix } from "../src/mix.js";
import { defineProfile } from "../src/scenario.js";

export default defineProfile({
  name: "smoke",
  description: "20 s of the full mix at a modest rate (default 10 Recommend/s); checks and latency must hold",
  defaults: { rate: 10, duration: "20s" },
  options: ({ rate, duration }) => ({
    scenarios: trafficMix({ rate, duration }),
    thresholds: {
      "grpc_req_duration{method:Recommend}": ["p(95)<100", "p(99)<150"],
      "grpc_req_duration{method:Report}": ["p(99)<100"],
      "grpc_reqs{method:Recommend}": [`count>=${Math.floor((rate * parseDuration(duration)) / 1000) - 1}`],
      grpc_req_failed: ["rate<0.001"],
      checks: ["rate>0.999"],
      dropped_iterations: ["count==0"],
    },
  }),
});
