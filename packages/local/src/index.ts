// The short path's helper, so a provider package alone is enough to read text files.
export { readText } from "@roder/runner-contract";
export { exportLocalArtifact } from "./local-artifacts.js";
export {
  type LocalDestinationConfig,
  LocalDestinationConfigSchema,
  parseLocalConfig,
} from "./local-config.js";
export { mountBucket } from "./local-mounts.js";
export { type LocalCommandHandle, spawnCommand } from "./local-process.js";
export {
  createLocalProvider,
  type LocalProviderSettings,
  type LocalRunnerProvider,
  localProvider,
} from "./local-provider.js";
export { LOCAL_PROVIDER_ID, LocalSession } from "./local-session.js";
export { createLocalSweeper, type LocalSweeperSettings } from "./local-sweeper.js";
