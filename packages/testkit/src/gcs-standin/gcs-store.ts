import { createHash } from "node:crypto";
import { crc32cBase64 } from "./crc32c.js";

export interface GcsObject {
  bucket: string;
  name: string;
  data: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  generation: string;
  updated: string;
  /** Assembled by an XML multipart upload: a CRC32C but no MD5, and an ETag not based on one. */
  composite?: boolean;
}

/** An XML API multipart upload in progress (docs: cloud.google.com/storage/docs/multipart-uploads). */
export interface XmlMultipartUpload {
  bucket: string;
  name: string;
  contentType: string;
  metadata: Record<string, string>;
  parts: Map<number, { data: Buffer; etag: string }>;
}

/** A JSON API resumable upload in progress. */
export interface ResumableUpload {
  bucket: string;
  name: string;
  contentType: string;
  metadata: Record<string, string>;
  chunks: Buffer[];
  size: number;
}

/** An error the stand-in answers with its status, in GCS's JSON error shape. */
export class GcsError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The stand-in's buckets, objects and unfinished uploads. */
export interface GcsStore {
  /** The stand-in's base URL, once it listens (object links and upload locations name it). */
  endpoint: string;
  readonly buckets: Map<string, Map<string, GcsObject>>;
  readonly uploads: Map<string, ResumableUpload>;
  readonly multipart: Map<string, XmlMultipartUpload>;
  /** The bucket, or a 404. */
  bucketOf(name: string): Map<string, GcsObject>;
  /** The object, or a 404. */
  objectOf(bucket: string, name: string): GcsObject;
  /** Stores a new generation of an object. */
  store(
    bucket: string,
    name: string,
    data: Buffer,
    contentType: string,
    metadata: Record<string, string>,
  ): GcsObject;
  /** An object's JSON API resource. */
  objectView(o: GcsObject): Record<string, unknown>;
}

export function createGcsStore(): GcsStore {
  const buckets = new Map<string, Map<string, GcsObject>>();
  const uploads = new Map<string, ResumableUpload>();
  const multipart = new Map<string, XmlMultipartUpload>();
  let generation = Date.now() * 1000;
  const self: GcsStore = { endpoint: "", buckets, uploads, multipart, bucketOf, objectOf, store, objectView };
  return self;

  function objectView(o: GcsObject) {
    const md5 = createHash("md5").update(o.data).digest("base64");
    const enc = encodeURIComponent(o.name);
    return {
      kind: "storage#object",
      id: `${o.bucket}/${o.name}/${o.generation}`,
      selfLink: `${self.endpoint}/storage/v1/b/${o.bucket}/o/${enc}`,
      mediaLink: `${self.endpoint}/download/storage/v1/b/${o.bucket}/o/${enc}?generation=${o.generation}&alt=media`,
      name: o.name,
      bucket: o.bucket,
      generation: o.generation,
      metageneration: "1",
      contentType: o.contentType,
      storageClass: "STANDARD",
      size: String(o.data.length),
      ...(o.composite ? {} : { md5Hash: md5 }),
      crc32c: crc32cBase64(o.data),
      etag: o.composite ? `C${o.generation}` : md5,
      timeCreated: o.updated,
      updated: o.updated,
      ...(Object.keys(o.metadata).length ? { metadata: o.metadata } : {}),
    };
  }
  function bucketOf(name: string): Map<string, GcsObject> {
    const b = buckets.get(name);
    if (!b) throw new GcsError(404, `The specified bucket does not exist: ${name}`);
    return b;
  }
  function objectOf(bucket: string, name: string): GcsObject {
    const o = bucketOf(bucket).get(name);
    if (!o) throw new GcsError(404, `No such object: ${bucket}/${name}`);
    return o;
  }
  function store(
    bucket: string,
    name: string,
    data: Buffer,
    contentType: string,
    metadata: Record<string, string>,
  ): GcsObject {
    const o: GcsObject = {
      bucket,
      name,
      data,
      contentType: contentType || "application/octet-stream",
      metadata,
      generation: String(++generation),
      updated: new Date().toISOString(),
    };
    bucketOf(bucket).set(name, o);
    return o;
  }
}
