export * from "./content.js";
export * from "./content-table.js";
export * from "./pooling.js";
export * from "./text-encoder.js";
