export * from "./box-standin/index.js";
export * from "./conformance/index.js";
export * from "./e2b-standin/index.js";
export * from "./emulators/index.js";
export * from "./fly-standin/index.js";
export * from "./gcs-standin/index.js";
export * from "./https-intercept/index.js";
export * from "./process/run-script.js";
