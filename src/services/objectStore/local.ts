/**
 * The embedded bucket: one file per key under a folder.
 *
 * - Key `a/b.jpg` is the file `<folder>/a/b.jpg`, so people can look at the objects directly.
 * - Bookkeeping lives under `<folder>/.objectstore/` (a key may not start with that segment):
 *   `meta/<key>.json` holds the content type when it is not the one the key's extension gives;
 *   `tmp/` holds files being written. A put writes a temp file and renames it into place, so
 *   readers see the old object or the new one, never part.
 * - A file with no metadata (the extension's type, copied in by hand, or a put that crashed
 *   between its two renames) gets a content type from its extension.
 * - Like any folder, it cannot hold both `a` and `a/b`: the second put fails (not retryable).
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from "node:path"
import { Effect, Option, Schema, Stream } from "effect"
import {
  isSafeKey,
  ObjectNotFound,
  type ObjectInfo,
  ObjectStore,
  ObjectStoreError,
  type StoredObject
} from "../ObjectStore.ts"

export const RESERVED_DIR = ".objectstore"
/** Temp files older than this are left over from crashed puts and removed at start-up. */
const STALE_TEMP_MS = 60 * 60 * 1000

const byExtension: Readonly<Record<string, string>> = {
  ".json": "application/json",
  ".txt": "text/plain",
  ".html": "text/html",
  ".csv": "text/csv",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".png": "image/png",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".avif": "image/avif",
  ".svg": "image/svg+xml",
  ".pdf": "application/pdf"
}
const inferContentType = (key: string): string =>
  byExtension[extname(key).toLowerCase()] ?? "application/octet-stream"

const errnoCode = (cause: unknown): string | undefined => {
  const code = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}
const isMissing = (cause: unknown) => errnoCode(cause) === "ENOENT" || errnoCode(cause) === "ENOTDIR"
const RETRYABLE = new Set(["EAGAIN", "EBUSY", "EMFILE", "ENFILE", "ETIMEDOUT", "EINTR"])

const storeError = (operation: string, key: string, cause: unknown): ObjectStoreError => {
  const code = errnoCode(cause)
  const detail = cause instanceof Error ? cause.message : String(cause)
  const message = code === "EISDIR" || code === "ENOTDIR" || code === "EEXIST" || code === "ENOTEMPTY"
    ? `key "${key}" clashes with a folder of other keys (a folder cannot hold both "a" and "a/b"): ${detail}`
    : detail
  return new ObjectStoreError({ operation, key, message, retryable: code !== undefined && RETRYABLE.has(code), cause })
}

class ObjectChanged extends Error {
  override readonly message = "The object was replaced or deleted between get and reading its body; get it again"
}

const Meta = Schema.Struct({ contentType: Schema.String })
type Meta = typeof Meta.Type
const decodeMeta = Schema.decodeUnknownOption(Schema.fromJsonString(Meta))

/** The bucket in `folder` (created if missing). */
export const make = (folder: string): Effect.Effect<ObjectStore["Service"], ObjectStoreError> =>
  Effect.gen(function*() {
    const root = resolve(folder)
    const metaRoot = join(root, RESERVED_DIR, "meta")
    const tmpRoot = join(root, RESERVED_DIR, "tmp")

    const attempt = <A>(operation: string, key: string, body: () => Promise<A>) =>
      Effect.tryPromise({ try: body, catch: (cause) => storeError(operation, key, cause) })

    yield* attempt("Open", "", async () => {
      await fs.mkdir(tmpRoot, { recursive: true })
      await fs.mkdir(metaRoot, { recursive: true })
      const now = Date.now()
      for (const name of await fs.readdir(tmpRoot)) {
        const file = join(tmpRoot, name)
        const info = await fs.stat(file).catch(() => undefined)
        if (info !== undefined && now - info.mtimeMs > STALE_TEMP_MS) await fs.rm(file, { force: true })
      }
    })

    const isInside = (base: string, file: string) => {
      const rel = relative(base, file)
      return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel)
    }

    /** The object's file and its metadata file, or a refusal for keys that could escape. */
    const paths = (operation: string, key: string) => {
      const file = resolve(root, ...key.split("/"))
      const metaFile = resolve(metaRoot, ...key.split("/")) + ".json"
      return isSafeKey(key) && key.split("/")[0] !== RESERVED_DIR && isInside(root, file) && isInside(metaRoot, metaFile)
        ? Effect.succeed({ file, metaFile })
        : Effect.fail(
          new ObjectStoreError({
            operation,
            key,
            message: `Unsafe key "${key}": keys are relative, /-separated, with no empty, "." or ".." segment, ` +
              `and may not start with "${RESERVED_DIR}/"`,
            retryable: false,
            cause: null
          })
        )
    }

    /** Writes `data` to a temp file, flushes it, and renames it to `target`. */
    const writeAtomically = async (target: string, data: Uint8Array | string) => {
      const temp = join(tmpRoot, randomUUID())
      try {
        const handle = await fs.open(temp, "wx")
        try {
          await handle.writeFile(data)
          await handle.datasync()
        } finally {
          await handle.close()
        }
        await fs.mkdir(dirname(target), { recursive: true })
        await fs.rename(temp, target)
      } catch (error) {
        await fs.rm(temp, { force: true })
        throw error
      }
    }

    /** The stored content type; with no metadata file, or one that does not decode, the extension's. */
    const readContentType = async (key: string, metaFile: string): Promise<string> => {
      const text = await fs.readFile(metaFile, "utf8").catch((error: unknown) => {
        if (isMissing(error)) return undefined
        throw error
      })
      const meta = text === undefined ? Option.none<Meta>() : decodeMeta(text)
      return Option.isSome(meta) ? meta.value.contentType : inferContentType(key)
    }

    /** Size and content type of a regular file, or undefined when there is no such object. */
    const info = async (key: string, file: string, metaFile: string): Promise<ObjectInfo | undefined> =>
      (await version(key, file, metaFile))?.info

    /** `info` plus the file's inode: every put renames a new file into place, so a new inode. */
    const version = async (key: string, file: string, metaFile: string) => {
      try {
        const stats = await fs.stat(file)
        if (!stats.isFile()) return undefined
        return { info: { key, size: stats.size, contentType: await readContentType(key, metaFile) }, ino: stats.ino }
      } catch (error) {
        if (isMissing(error)) return undefined
        throw error
      }
    }

    const put = Effect.fn("LocalObjectStore.put")(function*(key: string, body: Uint8Array, contentType: string) {
      const { file, metaFile } = yield* paths("PutObject", key)
      yield* attempt("PutObject", key, async () => {
        // data first: a crash between the two leaves new bytes with an inferred type
        await writeAtomically(file, body)
        // the type the extension gives needs no file of its own (one flush a put, not two);
        // one left by an earlier put of another type goes
        if (contentType === inferContentType(key)) await fs.rm(metaFile, { force: true })
        else await writeAtomically(metaFile, JSON.stringify({ contentType } satisfies Meta))
      })
    })

    const get = Effect.fn("LocalObjectStore.get")(function*(key: string) {
      const { file, metaFile } = yield* paths("GetObject", key)
      const found = yield* attempt("GetObject", key, () => version(key, file, metaFile))
      if (found === undefined) {
        return yield* new ObjectNotFound({ key, message: `No object "${key}" in ${root}` })
      }
      // The file is opened when the stream runs and closed when it ends or is interrupted, so a
      // body nobody reads holds nothing open. If a put replaced the object in between, the
      // stream fails (retryable) rather than return bytes that do not match `size`.
      const bytes: AsyncIterable<Uint8Array> = {
        async *[Symbol.asyncIterator]() {
          const handle = await fs.open(file, "r").catch((error: unknown) => {
            throw isMissing(error) ? new ObjectChanged() : error
          })
          try {
            if ((await handle.stat()).ino !== found.ino) throw new ObjectChanged()
            yield* handle.createReadStream({ autoClose: false })
          } finally {
            await handle.close()
          }
        }
      }
      return {
        ...found.info,
        body: Stream.fromAsyncIterable(bytes, (cause) =>
          cause instanceof ObjectChanged
            ? new ObjectStoreError({ operation: "GetObject", key, message: cause.message, retryable: true, cause })
            : storeError("GetObject", key, cause))
      } satisfies StoredObject
    })

    const head = Effect.fn("LocalObjectStore.head")(function*(key: string) {
      const { file, metaFile } = yield* paths("HeadObject", key)
      const found = yield* attempt("HeadObject", key, () => info(key, file, metaFile))
      return Option.fromUndefinedOr(found)
    })

    const list = Effect.fn("LocalObjectStore.list")(function*(prefix: string) {
      // start the walk at the folder the prefix names; a prefix no safe key can have matches nothing
      const folderPart = prefix.slice(0, prefix.lastIndexOf("/") + 1)
      if (folderPart !== "" && (!isSafeKey(folderPart.slice(0, -1)) || folderPart.startsWith(`${RESERVED_DIR}/`))) {
        return []
      }
      const start = resolve(root, ...folderPart.split("/").filter((segment) => segment !== ""))
      return yield* attempt("ListObjects", prefix, async () => {
        let entries
        try {
          entries = await fs.readdir(start, { recursive: true, withFileTypes: true })
        } catch (error) {
          if (isMissing(error)) return []
          throw error
        }
        const keys = entries
          .filter((entry) => entry.isFile())
          .map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join("/"))
          .filter((key) => key.startsWith(prefix) && isSafeKey(key) && key.split("/")[0] !== RESERVED_DIR)
          .sort()
        const infos = await Promise.all(
          keys.map((key) => info(key, resolve(root, ...key.split("/")), resolve(metaRoot, ...key.split("/")) + ".json"))
        )
        // a file deleted during the walk is simply not listed
        return infos.filter((found): found is ObjectInfo => found !== undefined)
      })
    })

    return ObjectStore.of({ location: root, put, get, head, list })
  })
