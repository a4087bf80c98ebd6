export { AZURITE_ACCOUNT, AZURITE_KEY, type AzuriteEmulator, startAzurite } from "./azurite.js";
export { type S3Emulator, startS3Emulator } from "./s3-emulator.js";
export { spawnEmulator } from "./spawn-emulator.js";
