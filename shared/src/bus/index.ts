export * from "./config.js";
export * from "./embedded.js";
export * from "./kafka.js";
export * from "./log.js";
export * from "./metrics.js";
export * from "./port.js";
export * from "./spill.js";
export * from "./topics.js";
