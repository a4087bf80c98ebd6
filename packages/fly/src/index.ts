// The short path's helper, so a provider package alone is enough to read text files.
export { readText } from "@roder/runner-contract";
export { agentToken } from "./fly-agent.js";
export { FlyAgentSession } from "./fly-agent-session.js";
export type { ExecResult, FlyMachine } from "./fly-api.js";
export {
  type FlyDestinationConfig,
  FlyDestinationConfigSchema,
  flyMode,
  parseFlyConfig,
} from "./fly-config.js";
export { FlyMachineSession, type FlySessionInfo } from "./fly-machine-session.js";
export {
  createFlyProvider,
  type FlyProviderSettings,
  type FlyRunnerProvider,
  flyProvider,
} from "./fly-provider.js";
export { FlySession, type FlySessionTuning } from "./fly-session.js";
export { createFlySweeper } from "./fly-sweeper.js";
export type { FlyVolume } from "./fly-volumes.js";
export { FlyWorkspaceLostError } from "./fly-workspace-lost-error.js";
