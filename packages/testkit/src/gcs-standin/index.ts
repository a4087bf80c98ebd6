export { crc32c, crc32cBase64 } from "./crc32c.js";
export { type GcsStandIn, startGcsStandIn } from "./gcs-standin.js";
