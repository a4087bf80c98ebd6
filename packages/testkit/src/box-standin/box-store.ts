import { createHash } from "node:crypto";

/** A Box error as Box answers it (developer.box.com/reference/resources/client-error). */
export class BoxApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly contextInfo?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface BoxFolder {
  type: "folder";
  id: string;
  name: string;
  parentId: string | null;
  createdAt: string;
  modifiedAt: string;
  status: "active" | "trashed";
  sequence: number;
}

export interface BoxFile {
  type: "file";
  id: string;
  name: string;
  parentId: string;
  data: Buffer;
  sha1: string;
  versionId: string;
  createdAt: string;
  modifiedAt: string;
  contentCreatedAt: string;
  contentModifiedAt: string;
  status: "active" | "trashed";
  sequence: number;
}

export type BoxItem = BoxFolder | BoxFile;

export const ROOT_FOLDER_ID = "0";
export const OWNER = { type: "user", id: "20000001", name: "Roder Test", login: "roder@example.invalid" };

/** Box's times: RFC 3339 to the second with an offset (what rclone's `api.Time` parses). */
export const boxTime = (t = Date.now()) => `${new Date(t).toISOString().slice(0, 19)}Z`;
export const sha1Hex = (b: Buffer) => createHash("sha1").update(b).digest("hex");

/** Box's name rules (developer.box.com/reference/post-folders: name). */
export function checkName(name: unknown): string {
  if (
    typeof name !== "string" ||
    name.length === 0 ||
    name.length > 255 ||
    /[/\\]/.test(name) ||
    name === "." ||
    name === ".." ||
    name !== name.trim()
  )
    throw new BoxApiError(400, "item_name_invalid", "Item name invalid");
  return name;
}

/** The folder tree of one Box account, in memory. Names are unique per folder, case-insensitively. */
export class BoxStore {
  readonly items = new Map<string, BoxItem>();
  private nextId = 1_000_001;

  constructor() {
    const now = boxTime();
    this.items.set(ROOT_FOLDER_ID, {
      type: "folder",
      id: ROOT_FOLDER_ID,
      name: "All Files",
      parentId: null,
      createdAt: now,
      modifiedAt: now,
      status: "active",
      sequence: 0,
    });
  }

  newId(): string {
    return String(this.nextId++);
  }

  get(id: string): BoxItem | undefined {
    return this.items.get(id);
  }

  /** An active item or 404 `not_found` (404 `trashed` for an item in the trash). */
  active(id: string, type?: "file" | "folder"): BoxItem {
    const it = this.items.get(id);
    if (!it || (type && it.type !== type)) throw new BoxApiError(404, "not_found", "Not Found");
    if (it.status === "trashed" || !this.reachable(it))
      throw new BoxApiError(404, "trashed", "Item is trashed");
    return it;
  }

  folder(id: string): BoxFolder {
    return this.active(id, "folder") as BoxFolder;
  }

  private reachable(it: BoxItem): boolean {
    let p = it.parentId;
    while (p !== null) {
      const f = this.items.get(p);
      if (f?.status !== "active") return false;
      p = f.parentId;
    }
    return true;
  }

  children(folderId: string): BoxItem[] {
    const out: BoxItem[] = [];
    for (const it of this.items.values())
      if (it.parentId === folderId && it.status === "active" && it.id !== ROOT_FOLDER_ID) out.push(it);
    // Box's default order: folders first, then by name.
    return out.sort((a, b) =>
      a.type !== b.type ? (a.type === "folder" ? -1 : 1) : a.name.localeCompare(b.name),
    );
  }

  childNamed(folderId: string, name: string): BoxItem | undefined {
    const lower = name.toLowerCase();
    return this.children(folderId).find((c) => c.name.toLowerCase() === lower);
  }

  /** 409 `item_name_in_use` with the conflicting item, as Box answers it. */
  conflict(it: BoxItem, many = false): BoxApiError {
    const c = {
      type: it.type,
      id: it.id,
      ...(it.type === "file"
        ? { file_version: { type: "file_version", id: it.versionId, sha1: it.sha1 }, sha1: it.sha1 }
        : {}),
      sequence_id: String(it.sequence),
      etag: String(it.sequence),
      name: it.name,
    };
    return new BoxApiError(409, "item_name_in_use", "Item with the same name already exists", {
      conflicts: many ? [c] : c,
    });
  }

  checkFree(folderId: string, name: string, except?: string, many = false) {
    const other = this.childNamed(folderId, name);
    if (other && other.id !== except) throw this.conflict(other, many);
  }

  touch(folderId: string | null) {
    if (folderId === null) return;
    const f = this.items.get(folderId);
    if (f) {
      f.modifiedAt = boxTime();
      f.sequence += 1;
    }
  }

  size(it: BoxItem): number {
    if (it.type === "file") return it.data.length;
    return this.children(it.id).reduce((n, c) => n + this.size(c), 0);
  }

  createFolder(parentId: string, name: string): BoxFolder {
    this.folder(parentId);
    checkName(name);
    this.checkFree(parentId, name, undefined, true);
    const now = boxTime();
    const f: BoxFolder = {
      type: "folder",
      id: this.newId(),
      name,
      parentId,
      createdAt: now,
      modifiedAt: now,
      status: "active",
      sequence: 0,
    };
    this.items.set(f.id, f);
    this.touch(parentId);
    return f;
  }

  /** A new file, or a new version of `existing`. */
  writeFile(
    parentId: string,
    name: string,
    data: Buffer,
    times: { created?: string; modified?: string } = {},
    existing?: BoxFile,
  ): BoxFile {
    const now = boxTime();
    if (existing) {
      existing.data = data;
      existing.sha1 = sha1Hex(data);
      existing.versionId = this.newId();
      existing.modifiedAt = now;
      existing.contentModifiedAt = times.modified ?? now;
      existing.sequence += 1;
      if (name !== existing.name) {
        this.checkFree(existing.parentId, name, existing.id);
        existing.name = name;
      }
      this.touch(existing.parentId);
      return existing;
    }
    this.folder(parentId);
    checkName(name);
    this.checkFree(parentId, name);
    const f: BoxFile = {
      type: "file",
      id: this.newId(),
      name,
      parentId,
      data,
      sha1: sha1Hex(data),
      versionId: this.newId(),
      createdAt: now,
      modifiedAt: now,
      contentCreatedAt: times.created ?? now,
      contentModifiedAt: times.modified ?? now,
      status: "active",
      sequence: 0,
    };
    this.items.set(f.id, f);
    this.touch(parentId);
    return f;
  }

  /** Moves to the trash (what `DELETE /files/{id}` and `DELETE /folders/{id}` do). */
  trash(it: BoxItem) {
    it.status = "trashed";
    it.sequence += 1;
    this.touch(it.parentId);
  }

  /** The folder at a `/`-separated path under `from` (creating folders when `create`). */
  folderAt(path: string, create = false, from = ROOT_FOLDER_ID): BoxFolder | undefined {
    let cur = this.folder(from);
    for (const seg of path.split("/").filter(Boolean)) {
      const next = this.childNamed(cur.id, seg);
      if (next?.type === "folder") cur = next;
      else if (!next && create) cur = this.createFolder(cur.id, seg);
      else return undefined;
    }
    return cur;
  }

  /** The file at a `/`-separated path under `from`. */
  fileAt(path: string, from = ROOT_FOLDER_ID): BoxFile | undefined {
    const segs = path.split("/").filter(Boolean);
    const leaf = segs.pop();
    const dir = this.folderAt(segs.join("/"), false, from);
    const it = dir && leaf ? this.childNamed(dir.id, leaf) : undefined;
    return it?.type === "file" ? it : undefined;
  }

  /** Box's JSON for an item, limited to `fields` (type, id and etag always come) when given. */
  json(it: BoxItem, fields?: string[]): Record<string, unknown> {
    const parent = it.parentId === null ? null : this.items.get(it.parentId);
    const full: Record<string, unknown> = {
      type: it.type,
      id: it.id,
      sequence_id: it.id === ROOT_FOLDER_ID ? null : String(it.sequence),
      etag: it.id === ROOT_FOLDER_ID ? null : String(it.sequence),
      name: it.name,
      size: this.size(it),
      created_at: it.id === ROOT_FOLDER_ID ? null : it.createdAt,
      modified_at: it.id === ROOT_FOLDER_ID ? null : it.modifiedAt,
      item_status: it.status,
      shared_link: null,
      owned_by: OWNER,
      parent: parent
        ? {
            type: "folder",
            id: parent.id,
            sequence_id: parent.id === ROOT_FOLDER_ID ? null : String(parent.sequence),
            etag: parent.id === ROOT_FOLDER_ID ? null : String(parent.sequence),
            name: parent.name,
          }
        : null,
      ...(it.type === "file"
        ? {
            sha1: it.sha1,
            file_version: { type: "file_version", id: it.versionId, sha1: it.sha1 },
            content_created_at: it.contentCreatedAt,
            content_modified_at: it.contentModifiedAt,
          }
        : {
            content_created_at: it.id === ROOT_FOLDER_ID ? null : it.createdAt,
            content_modified_at: it.id === ROOT_FOLDER_ID ? null : it.modifiedAt,
          }),
    };
    if (!fields?.length) return full;
    const out: Record<string, unknown> = { type: it.type, id: it.id, etag: full.etag };
    for (const f of fields) if (f in full) out[f] = full[f];
    return out;
  }
}
