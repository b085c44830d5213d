export * from "./config.js";
export * from "./metrics.js";
export * from "./processor.js";
export * from "./samples.js";
export * from "./seed.js";
export * from "./trending.js";
