export * from "./features.js";
export * from "./model.js";
export * from "./scorer.js";
