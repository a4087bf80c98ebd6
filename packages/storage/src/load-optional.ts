import { MissingDependencyError } from "@roder/runner-contract";

const cache = new Map<string, Promise<unknown>>();

/**
 * Loads an optional cloud SDK on first use. The SDKs are optional peer dependencies: a provider package
 * does not pull every cloud's SDK. A missing one fails with an error that names the package to install.
 */
export function loadOptionalModule<T>(
  name: string,
  purpose: string,
  importer: () => Promise<T> = () => import(name) as Promise<T>,
): Promise<T> {
  let p = cache.get(name) as Promise<T> | undefined;
  if (!p) {
    p = importer().catch((error: NodeJS.ErrnoException) => {
      cache.delete(name);
      if (
        error?.code === "ERR_MODULE_NOT_FOUND" ||
        error?.code === "MODULE_NOT_FOUND" ||
        /Cannot find (module|package)/.test(String(error?.message))
      ) {
        throw new MissingDependencyError(
          { dependency: name, purpose, install: `npm install ${name}` },
          { cause: error },
        );
      }
      throw error;
    });
    cache.set(name, p);
  }
  return p;
}

// The loaders below are @internal (stripped from the .d.ts): the optional SDKs' types must not appear in
// the published declarations, which compile without them.
/** @internal */
export const loadS3 = () =>
  loadOptionalModule<typeof import("@aws-sdk/client-s3")>(
    "@aws-sdk/client-s3",
    "S3/R2 artifact export",
    () => import("@aws-sdk/client-s3"),
  );
/** @internal */
export const loadS3Presigner = () =>
  loadOptionalModule<typeof import("@aws-sdk/s3-request-presigner")>(
    "@aws-sdk/s3-request-presigner",
    "S3/R2 signed URLs",
    () => import("@aws-sdk/s3-request-presigner"),
  );
/** @internal */
export const loadAzure = () =>
  loadOptionalModule<typeof import("@azure/storage-blob")>(
    "@azure/storage-blob",
    "Azure Blob artifact export",
    () => import("@azure/storage-blob"),
  );
/** @internal */
export const loadGcs = () =>
  loadOptionalModule<typeof import("@google-cloud/storage")>(
    "@google-cloud/storage",
    "GCS artifact export",
    () => import("@google-cloud/storage"),
  );
