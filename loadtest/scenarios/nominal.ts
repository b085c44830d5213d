/**
 * nominal: the expected production load on one machine: the full mix at
 * 50 Recommend/s for a minute after a 10 s ramp, held to the SLO of DESIGN.md
 * (Recommend p99 < 100 ms, < 0.1% errors, checks > 99.9%).
 *
 *   npm run loadtest -- --profile nominal [--rate 50] [--duration 60s]
 */

import { sloThresholds, trafficMix } from "../src/mix.js";
import { defineProfile } from "../src/scenario.js";

export default defineProfile({
  name: "nominal",
  description: "full mix (default 50 Recommend/s), 10 s ramp then a 60 s plateau, SLO thresholds",
  defaults: { rate: 50, duration: "60s" },
  warmup: "5s",
  options: ({ rate, duration }) => ({
    scenarios: trafficMix({ rate, duration, rampUp: "10s" }),
    thresholds: {
      ...sloThresholds(100),
      "grpc_req_duration{scenario:recommend_query}": ["p(99)<100"],
      fallbacks: ["rate<0.01"],
    },
  }),
});
