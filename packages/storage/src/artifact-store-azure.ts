import { UnsupportedCapabilityError } from "@roder/runner-contract";
import {
  type ExportArgs,
  ensureHashes,
  PART_URL_SECONDS,
  type Plan,
  partCountOf,
  type StoreResult,
  sendParts,
  verifyOrDelete,
} from "./artifact-export-common.js";
import { beginAzureBlocks } from "./artifact-multipart-azure.js";
import type { PreparedArtifact } from "./artifact-source.js";
import { resolveBucketCredentials } from "./credentials.js";
import { loadAzure } from "./load-optional.js";

/** Azure Blob Storage: SAS URLs signed with the account key; blocks for large files. */
export async function exportAzure(
  a: ExportArgs & {
    container: string;
    account: string;
    endpoint?: string | undefined;
    key: string;
    prepared: PreparedArtifact;
    plan: Plan;
  },
): Promise<StoreResult> {
  const az = await loadAzure();
  const cred = resolveBucketCredentials("azure_blob", a.target.credentials, a.env).value as {
    account?: string;
    key?: string;
    connection_string?: string;
  };
  let account = cred.account ?? a.account;
  let key = cred.key;
  let endpoint = a.target.endpoint ?? a.endpoint ?? `https://${account}.blob.core.windows.net`;
  if (cred.connection_string) {
    const parts = Object.fromEntries(
      cred.connection_string
        .split(";")
        .filter(Boolean)
        .map((s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)]),
    );
    account = parts.AccountName ?? account;
    key = parts.AccountKey ?? key;
    endpoint = a.target.endpoint ?? parts.BlobEndpoint ?? endpoint;
  }
  if (!key)
    throw new UnsupportedCapabilityError({
      providerId: a.providerId,
      capability: "artifact_export.azure_blob",
      message:
        "Azure artifact export needs an account key (to sign SAS URLs): set the secret's key or connection_string",
    });
  const shared = new az.StorageSharedKeyCredential(account, key);
  const service = new az.BlobServiceClient(endpoint, shared);
  const blob = service.getContainerClient(a.container).getBlockBlobClient(a.key);
  const sas = (permissions: string, seconds: number) =>
    az
      .generateBlobSASQueryParameters(
        {
          containerName: a.container,
          blobName: a.key,
          permissions: az.BlobSASPermissions.parse(permissions),
          expiresOn: new Date(Date.now() + seconds * 1000),
        },
        shared,
      )
      .toString();
  const p = a.prepared;
  if (a.plan.multipart) {
    const upload = beginAzureBlocks({
      blob,
      sasQuery: sas("cw", PART_URL_SECONDS),
      contentType: p.contentType,
      size: p.size,
      partCount: partCountOf(p, a.plan),
    });
    await sendParts(a, upload, p, a.plan);
  } else {
    await ensureHashes(p);
    await a.source.uploadDirect!(p.file, {
      url: `${blob.url}?${sas("cw", 900)}`,
      headers: {
        "x-ms-blob-type": "BlockBlob",
        "Content-MD5": p.md5Base64,
        "x-ms-blob-content-type": p.contentType,
        "x-ms-meta-sha256": p.sha256,
      },
    });
  }
  const props = await blob.getProperties();
  await verifyOrDelete(
    { size: props.contentLength, digest: "sha256", expected: p.sha256, got: props.metadata?.sha256 },
    p.size,
    () => blob.deleteIfExists(),
  );
  return {
    uri: `azure://${account}/${a.container}/${a.key}`,
    url: `${blob.url}?${sas("r", a.target.url_ttl_seconds)}`,
    bucket: a.container,
    key: a.key,
  };
}
