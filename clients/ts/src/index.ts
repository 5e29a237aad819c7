/** The Reel Content TypeScript client: see README.md beside this folder. */

export * from "./client.js";
export * from "./errors.js";
export * from "./generations.js";
export * from "./idempotency.js";
export * from "./result.js";
export * from "./retry.js";
export type { components, operations, paths } from "./schema.js";
