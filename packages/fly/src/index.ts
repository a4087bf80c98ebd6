export type { ExecResult, FlyMachine } from "./fly-api.js";
export { type FlyDestinationConfig, FlyDestinationConfigSchema, parseFlyConfig } from "./fly-config.js";
export { createFlyProvider, type FlyProviderSettings, flyProvider } from "./fly-provider.js";
export { FlySession } from "./fly-session.js";
export { createFlySweeper } from "./fly-sweeper.js";
