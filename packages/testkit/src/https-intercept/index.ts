export {
  type HttpsInterceptOptions,
  type HttpsInterceptProxy,
  type InterceptedConnect,
  startHttpsInterceptProxy,
} from "./intercept-proxy.js";
export { createTestCa, type IssuedCertificate, type TestCa } from "./test-ca.js";
