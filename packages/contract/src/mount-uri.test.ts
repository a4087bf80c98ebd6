import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidMountUriError } from "./errors/invalid-mount-uri-error.js";
import { parseMountUri } from "./mount-uri.js";

describe("parseMountUri", () => {
  it("parses every kind", () => {
    expect(parseMountUri("s3://my-bucket/data/2024/", "s3")).toEqual({
      kind: "s3",
      bucket: "my-bucket",
      prefix: "data/2024/",
    });
    expect(parseMountUri("r2://bucket/prefix")).toEqual({ kind: "r2", bucket: "bucket", prefix: "prefix" });
    expect(parseMountUri("gs://my_bucket.example", "gcs")).toEqual({
      kind: "gcs",
      bucket: "my_bucket.example",
      prefix: "",
    });
    expect(parseMountUri("azure://acct1/container-a/x/y", "azure_blob")).toEqual({
      kind: "azure_blob",
      account: "acct1",
      container: "container-a",
      prefix: "x/y",
    });
    expect(parseMountUri("https://acct1.blob.core.windows.net/c01/p", "azure_blob")).toMatchObject({
      account: "acct1",
      container: "c01",
      prefix: "p",
      endpoint: "https://acct1.blob.core.windows.net",
    });
    expect(parseMountUri("box://0", "box_storage")).toEqual({ kind: "box_storage", folderId: "0" });
    expect(parseMountUri("cache-volume", "provider_native")).toEqual({
      kind: "provider_native",
      name: "cache-volume",
    });
  });

  it("refuses malformed URIs and kind mismatches with clear messages", () => {
    const cases: Array<[string, Parameters<typeof parseMountUri>[1], RegExp]> = [
      ["s3://Bad_Bucket/x", "s3", /bucket name/],
      ["gs://bucket/x", "s3", /s3 mount needs a s3:\/\//],
      ["s3://ab", "s3", /bucket name/],
      ["s3://bucket/../x", "s3", /'\.\.'/],
      ["s3://key:secret@bucket/x", "s3", /secret ref/],
      ["s3://bucket/x?token=1", "s3", /query/],
      ["ftp://x/y", undefined, /unknown scheme/],
      ["box://abc", "box_storage", /numeric/],
      ["azure://A/c", "azure_blob", /storage account/],
      ["https://example.com/c/p", "azure_blob", /blob.core.windows.net/],
      ["", "s3", /empty/],
      ["bucket/only", "s3", /expected/],
      ["r2://dotted.bucket/x", "r2", /bucket name/],
    ];
    for (const [uri, kind, re] of cases) {
      let err: unknown;
      try {
        parseMountUri(uri, kind);
      } catch (e) {
        err = e;
      }
      expect(InvalidMountUriError.isInstance(err), uri).toBe(true);
      expect((err as Error).message, uri).toMatch(re);
    }
  });

  it("either parses or throws a typed error, for any string (property)", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc
            .constantFrom("s3://", "gs://", "r2://", "azure://", "box://")
            .chain((s) => fc.string().map((t) => s + t)),
        ),
        (uri) => {
          try {
            const parsed = parseMountUri(uri);
            expect(["s3", "r2", "gcs", "azure_blob", "box_storage"]).toContain(parsed.kind);
          } catch (e) {
            expect(InvalidMountUriError.isInstance(e)).toBe(true);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
