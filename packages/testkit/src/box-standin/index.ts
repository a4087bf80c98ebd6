export {
  type BoxRateLimit,
  type BoxRequestRecord,
  type BoxStandIn,
  type BoxStandInOptions,
  boxDigest,
  startBoxStandIn,
} from "./box-standin.js";
export { BoxApiError, type BoxFile, type BoxFolder, type BoxItem, BoxStore } from "./box-store.js";
