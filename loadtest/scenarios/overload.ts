/**
 * overload: the full mix offered at four times what the funnel can hold (by
 * default 240 Recommend/s against the 60/s that `stress` has held on the
 * 2-core reference machine; on a slower day pass --rate 4 x what `stress`
 * holds), for a minute, with a 1 s client deadline. Admission
 * control (shared/src/grpc/admission.ts) must keep the answers it admits
 * fast and refuse the rest at once, so the useful work stays near capacity
 * instead of collapsing:
 *   - goodput (OK, checks passed, not degraded) >= 90% of rate / 4;
 *   - admitted Recommends p99 <= 100 ms;
 *   - refusals (RESOURCE_EXHAUSTED) p99 <= 5 ms.
 *
 *   npm run loadtest -- --profile overload [--rate 240] [--duration 60s]
 */

import { trafficMix } from "../src/mix.js";
import { defineProfile } from "../src/scenario.js";

export default defineProfile({
  name: "overload",
  description:
    "full mix at 4x capacity (default 240 Recommend/s), 1 s deadline: goodput, admitted p99, refusal time",
  defaults: { rate: 240, duration: "60s" },
  warmup: "5s",
  options: ({ rate, duration }) => ({
    scenarios: trafficMix({ rate, duration, timeout: "1s" }),
    thresholds: {
      "goodput{method:Recommend}": [`rate>=${(0.9 * rate) / 4}`],
      "grpc_answer_duration{method:Recommend}": ["p(99)<100"],
      "grpc_refusal_duration{method:Recommend}": ["p(99)<5"],
    },
  }),
});
