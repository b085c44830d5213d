export * from "./content.js";
export * from "./pooling.js";
export * from "./text-encoder.js";
