import { InvalidMountUriError, parseMountUri, type RunnerMount } from "@roder/runner-contract";
import type { BucketCredentials } from "./credentials.js";

/**
 * How to mount a bucket with rclone + FUSE, as data: each provider runs it its own way (the local runner on
 * the host, remote providers inside their sandbox). Credentials are only in `env` (of the mount process);
 * `args` never carry a secret, and no config file is written.
 */
export interface RcloneMountPlan {
  kind: "s3" | "r2" | "gcs" | "azure_blob" | "box_storage";
  program: "rclone";
  args: string[];
  /** Environment of the mount process only. `RCLONE_CONFIG_RODER_*` configures the remote. */
  env: Record<string, string>;
  /** Names of `env` entries that hold secrets (for redaction and for checks that they stay out of argv). */
  secretEnv: string[];
  /** Variables to remove from an inherited environment (rclone 1.60's S3 backend fails with AWS_CA_BUNDLE). */
  unsetEnv: string[];
  mountPath: string;
  readOnly: boolean;
  /** rclone's remote-control endpoint on loopback, polled until uploads drain before unmounting. */
  rcAddr: string | null;
  /** Ready when `mountPath` is a FUSE mount point. */
  readiness: { type: "fuse-mountpoint"; path: string; timeoutMs: number };
  unmount: Array<{ program: string; args: string[] }>;
  /** True: the credential is inside the sandbox (in the mount process's environment). */
  credentialsInSandbox: true;
  requires: string[];
}

export interface PlanOptions {
  mount: RunnerMount;
  credentials: BucketCredentials;
  /** Where the bucket appears (absolute path where the mount process runs). */
  mountPath: string;
  /** Loopback port for rclone's rc (read-write mounts); default 0 = none. */
  rcPort?: number;
  /**
   * Password of rclone's rc (user `roder`), given to rclone through its environment only: every rc call then
   * needs it. Host mounts set a random one, so that no other process (a sandboxed command among them) can drive
   * rclone or read its configuration. Without it the rc still refuses every call that needs authorisation
   * (`--rc-no-auth` is never set); `vfs/stats` stays open.
   */
  rcPassword?: string;
  /** Test and private-cloud overrides: an S3/GCS endpoint, GCS anonymous access. */
  endpoint?: string;
  anonymous?: boolean;
}

const REMOTE = "RODER";
const k = (opt: string) => `RCLONE_CONFIG_${REMOTE}_${opt.toUpperCase()}`;

function azureFromConnectionString(cs: string): { account?: string; key?: string; endpoint?: string } {
  const parts = Object.fromEntries(
    cs
      .split(";")
      .filter(Boolean)
      .map((p) => {
        const i = p.indexOf("=");
        return [p.slice(0, i), p.slice(i + 1)];
      }),
  );
  return { account: parts.AccountName, key: parts.AccountKey, endpoint: parts.BlobEndpoint };
}

export function planRcloneMount(opts: PlanOptions): RcloneMountPlan {
  const { mount, credentials: c } = opts;
  const kind = mount.intent.kind;
  if (kind === "provider_native" || kind !== c.kind)
    throw new InvalidMountUriError({
      uri: mount.intent.uri,
      kind,
      reason: "no rclone plan for this kind / credential pair",
    });
  const target = parseMountUri(mount.intent.uri, kind);
  const env: Record<string, string> = { RCLONE_CONFIG: "/dev/null" };
  const secret: string[] = [];
  const set = (opt: string, value: string | undefined, isSecret = false) => {
    if (value === undefined || value === "") return;
    env[k(opt)] = value;
    if (isSecret) secret.push(k(opt));
  };
  let source: string;
  switch (c.kind) {
    case "s3": {
      const t = target as { bucket: string; prefix: string };
      const endpoint = opts.endpoint ?? c.value.endpoint;
      set("type", "s3");
      set("provider", endpoint ? "Other" : "AWS");
      set("access_key_id", c.value.access_key_id, true);
      set("secret_access_key", c.value.secret_access_key, true);
      set("session_token", c.value.session_token, true);
      set("region", c.value.region ?? "us-east-1");
      set("endpoint", endpoint);
      if (endpoint) set("force_path_style", "true");
      set("no_check_bucket", "true");
      source = `${REMOTE}:${t.bucket}/${t.prefix}`;
      break;
    }
    case "r2": {
      const t = target as { bucket: string; prefix: string };
      set("type", "s3");
      set("provider", "Cloudflare");
      set("access_key_id", c.value.access_key_id, true);
      set("secret_access_key", c.value.secret_access_key, true);
      set(
        "endpoint",
        opts.endpoint ?? c.value.endpoint ?? `https://${c.value.account_id}.r2.cloudflarestorage.com`,
      );
      set("region", "auto");
      set("no_check_bucket", "true");
      source = `${REMOTE}:${t.bucket}/${t.prefix}`;
      break;
    }
    case "gcs": {
      const t = target as { bucket: string; prefix: string };
      if (!c.value.service_account_json && !opts.anonymous)
        throw new InvalidMountUriError({
          uri: mount.intent.uri,
          kind,
          reason:
            "GCS mounts need a service-account JSON (rclone 1.60 cannot mount GCS with HMAC keys, rclone issue 6670)",
        });
      set("type", "google cloud storage");
      set("service_account_credentials", c.value.service_account_json, true);
      set("no_check_bucket", "true");
      set("bucket_policy_only", "true");
      set("endpoint", opts.endpoint ?? c.value.endpoint);
      if (opts.anonymous) set("anonymous", "true");
      source = `${REMOTE}:${t.bucket}/${t.prefix}`;
      break;
    }
    case "azure_blob": {
      const t = target as { account: string; container: string; prefix: string; endpoint?: string };
      const fromCs = c.value.connection_string ? azureFromConnectionString(c.value.connection_string) : {};
      set("type", "azureblob");
      set("account", c.value.account ?? fromCs.account ?? t.account);
      set("key", c.value.key ?? fromCs.key, true);
      if (c.value.sas_token)
        set(
          "sas_url",
          `${t.endpoint ?? `https://${t.account}.blob.core.windows.net`}/${t.container}?${c.value.sas_token.replace(/^\?/, "")}`,
          true,
        );
      const endpoint = opts.endpoint ?? fromCs.endpoint;
      if (endpoint) {
        set("endpoint", endpoint);
        if (/devstoreaccount1/.test(endpoint)) set("use_emulator", "true");
      }
      source = `${REMOTE}:${t.container}/${t.prefix}`;
      break;
    }
    case "box_storage": {
      const t = target as { folderId: string };
      set("type", "box");
      set("token", c.value.token_json, true);
      set("access_token", c.value.access_token, true);
      set("root_folder_id", c.value.root_folder_id ?? t.folderId);
      set("token_url", c.value.token_url);
      // Box's API hosts are fixed in rclone: a proxy and extra CAs go through rclone's environment.
      if (c.value.https_proxy) {
        env.HTTPS_PROXY = c.value.https_proxy;
        secret.push("HTTPS_PROXY");
      }
      if (c.value.ca_cert_file) env.RCLONE_CA_CERT = c.value.ca_cert_file;
      source = `${REMOTE}:`;
      break;
    }
  }
  const rcAddr = !mount.read_only && opts.rcPort ? `127.0.0.1:${opts.rcPort}` : null;
  const args = [
    "mount",
    source.replace(/\/$/, ""),
    opts.mountPath,
    "--dir-cache-time",
    "1s",
    "--poll-interval",
    "0",
    ...(mount.read_only ? ["--read-only"] : ["--vfs-cache-mode", "writes", "--vfs-write-back", "0s"]),
    ...(rcAddr ? ["--rc", "--rc-addr", rcAddr] : []),
  ];
  if (rcAddr && opts.rcPassword) {
    env.RCLONE_RC_USER = "roder";
    env.RCLONE_RC_PASS = opts.rcPassword;
    secret.push("RCLONE_RC_PASS");
  }
  return {
    kind: c.kind,
    program: "rclone",
    args,
    env,
    secretEnv: secret,
    unsetEnv: ["AWS_CA_BUNDLE"],
    mountPath: opts.mountPath,
    readOnly: mount.read_only,
    rcAddr,
    readiness: { type: "fuse-mountpoint", path: opts.mountPath, timeoutMs: 30_000 },
    unmount: [
      { program: "fusermount3", args: ["-u", opts.mountPath] },
      { program: "fusermount3", args: ["-uz", opts.mountPath] },
    ],
    credentialsInSandbox: true,
    requires: ["rclone", "fusermount3", "/dev/fuse"],
  };
}
