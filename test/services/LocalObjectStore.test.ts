import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option, Stream } from "effect"
import { RESERVED_DIR } from "../../src/services/objectStore/local.ts"
import { ObjectStore, type StoredObject } from "../../src/services/ObjectStore.ts"
import * as LocalObjectStore from "../../src/services/objectStore/local.ts"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "local-store-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** The store in `<tmp>/bucket`, a folder that does not exist yet. */
const openStore = Effect.gen(function*() {
  const dir = yield* tempDir
  const folder = join(dir, "bucket")
  return { folder, store: yield* LocalObjectStore.make(folder) }
})

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (object: StoredObject) =>
  Stream.runCollect(object.body).pipe(
    Effect.map((chunks) => Buffer.concat(Array.from(chunks)).toString("utf8"))
  )

describe("LocalObjectStore", () => {
  it.effect("the extension's own content type needs no metadata file; another type has one, gone when the extension's comes back", () =>
    Effect.gen(function*() {
      const { folder, store } = yield* openStore
      const metaFile = join(folder, RESERVED_DIR, "meta", "raw", "a.jpg.json")
      const typeOf = Effect.map(store.head("raw/a.jpg"), Option.map((info) => info.contentType))
      yield* store.put("raw/a.jpg", bytes("jpeg"), "image/jpeg")
      assert.isFalse(existsSync(metaFile))
      assert.deepStrictEqual(yield* typeOf, Option.some("image/jpeg"))
      yield* store.put("raw/a.jpg", bytes("??"), "application/octet-stream")
      assert.isTrue(existsSync(metaFile))
      assert.deepStrictEqual(yield* typeOf, Option.some("application/octet-stream"))
      yield* store.put("raw/a.jpg", bytes("jpeg"), "image/jpeg")
      assert.isFalse(existsSync(metaFile))
      assert.deepStrictEqual(yield* typeOf, Option.some("image/jpeg"))
    }).pipe(Effect.scoped))

  it.effect("put then get returns the bytes and the content type; head agrees", () =>
    Effect.gen(function*() {
      const { folder, store } = yield* openStore
      assert.strictEqual(store.location, folder)
      yield* store.put("jobs/1/in.json", bytes("{\"a\":1}"), "application/x-custom")
      // the object is a plain file people can open
      assert.strictEqual(readFileSync(join(folder, "jobs", "1", "in.json"), "utf8"), "{\"a\":1}")

      const object = yield* store.get("jobs/1/in.json")
      assert.deepStrictEqual([object.key, object.size, object.contentType], ["jobs/1/in.json", 7, "application/x-custom"])
      assert.strictEqual(yield* text(object), "{\"a\":1}")
      assert.deepStrictEqual(
        yield* store.head("jobs/1/in.json"),
        Option.some({ key: "jobs/1/in.json", size: 7, contentType: "application/x-custom" })
      )
    }))

  it.effect("streams a large object in several chunks", () =>
    Effect.gen(function*() {
      const { store } = yield* openStore
      const big = new Uint8Array(1_000_000).map((_, i) => i % 251)
      yield* store.put("big.bin", big, "application/octet-stream")
      const object = yield* store.get("big.bin")
      const chunks = Array.from(yield* Stream.runCollect(object.body))
      assert.isAbove(chunks.length, 1)
      assert.isTrue(Buffer.concat(chunks).equals(Buffer.from(big)))
    }))

  it.effect("a missing key is ObjectNotFound for get and none for head", () =>
    Effect.gen(function*() {
      const { store } = yield* openStore
      const error = yield* Effect.flip(store.get("nope/missing.txt"))
      assert.strictEqual(error._tag, "ObjectNotFound")
      assert.isTrue(Option.isNone(yield* store.head("nope/missing.txt")))
      // a folder is not an object
      yield* store.put("dir/file.txt", bytes("x"), "text/plain")
      assert.strictEqual((yield* Effect.flip(store.get("dir")))._tag, "ObjectNotFound")
    }))

  it.effect("list returns objects under a prefix, sorted, without sidecars or temp files", () =>
    Effect.gen(function*() {
      const { folder, store } = yield* openStore
      yield* store.put("jobs/2/out.png", bytes("png"), "image/png")
      yield* store.put("jobs/1/in.json", bytes("{}"), "application/json")
      yield* store.put("jobs/10/in.json", bytes("{}"), "application/json")
      yield* store.put("other/x.txt", bytes("x"), "text/plain")
      // leftovers a crashed put could leave behind
      writeFileSync(join(folder, RESERVED_DIR, "tmp", "leftover"), "partial")

      const all = yield* store.list("")
      assert.deepStrictEqual(all.map((o) => o.key), ["jobs/1/in.json", "jobs/10/in.json", "jobs/2/out.png", "other/x.txt"])
      assert.deepStrictEqual((yield* store.list("jobs/1")).map((o) => o.key), ["jobs/1/in.json", "jobs/10/in.json"])
      assert.deepStrictEqual(yield* store.list("jobs/2/"), [{ key: "jobs/2/out.png", size: 3, contentType: "image/png" }])
      assert.deepStrictEqual(yield* store.list("nothing/"), [])
      assert.deepStrictEqual(yield* store.list("../"), [])
      assert.deepStrictEqual(yield* store.list(`${RESERVED_DIR}/`), [])
    }))

  it.effect("refuses keys that could leave the folder, and writes nothing for them", () =>
    Effect.gen(function*() {
      const { folder, store } = yield* openStore
      const outside = join(folder, "..", "escape")
      for (const key of ["../escape", "/etc/escape", "a/../../escape", "a//b", "./a", "a\\..\\b", `${RESERVED_DIR}/meta/x`, ""]) {
        const putError = yield* Effect.flip(store.put(key, bytes("x"), "text/plain"))
        assert.strictEqual(putError._tag, "ObjectStoreError", key)
        assert.isFalse(putError.retryable)
        assert.strictEqual((yield* Effect.flip(store.get(key)))._tag, "ObjectStoreError", key)
        assert.strictEqual((yield* Effect.flip(store.head(key)))._tag, "ObjectStoreError", key)
      }
      assert.isFalse(existsSync(outside))
      assert.deepStrictEqual(yield* store.list(""), [])
    }))

  it.effect("an overwrite replaces the content and type at once and leaves no temp files", () =>
    Effect.gen(function*() {
      const { folder, store } = yield* openStore
      yield* store.put("a.txt", bytes("first version, longer"), "text/plain")
      const before = yield* store.get("a.txt")
      yield* store.put("a.txt", bytes("second"), "text/markdown")
      const after = yield* store.get("a.txt")
      assert.deepStrictEqual([after.size, after.contentType], [6, "text/markdown"])
      assert.strictEqual(yield* text(after), "second")
      // a body fetched before the overwrite never mixes versions: it fails, retryably
      const stale = yield* Effect.flip(text(before))
      assert.isTrue(stale.retryable)
      assert.include(stale.message, "get it again")
      // concurrent writers: the survivor is one of them, whole
      yield* Effect.all(
        Array.from({ length: 20 }, (_, i) => store.put("race.txt", bytes(`writer-${i}-`.repeat(1000)), "text/plain")),
        { concurrency: "unbounded" }
      )
      const raced = yield* text(yield* store.get("race.txt"))
      assert.match(raced, /^(writer-\d+-)+$/)
      assert.strictEqual(new Set(raced.match(/writer-\d+-/g)).size, 1)
      assert.deepStrictEqual(readdirSync(join(folder, RESERVED_DIR, "tmp")), [])
    }))

  it.effect("a file dropped in by hand is listed, with a type from its extension", () =>
    Effect.gen(function*() {
      const { folder, store } = yield* openStore
      writeFileSync(join(folder, "photo.JPG"), "jpeg bytes")
      assert.deepStrictEqual(yield* store.head("photo.JPG"), Option.some({ key: "photo.JPG", size: 10, contentType: "image/jpeg" }))
    }))

  it.effect("metadata that does not decode (not JSON, null, no string contentType) gives way to the extension", () =>
    Effect.gen(function*() {
      const { folder, store } = yield* openStore
      for (const [index, meta] of ["{not json", "null", "{\"contentType\":7}"].entries()) {
        const key = `hand/${index}.png`
        yield* store.put(key, bytes("png bytes"), "application/x-stored")
        writeFileSync(join(folder, RESERVED_DIR, "meta", "hand", `${index}.png.json`), meta)
        assert.deepStrictEqual(yield* store.head(key), Option.some({ key, size: 9, contentType: "image/png" }), meta)
      }
    }))

  it.effect("a key cannot be both an object and a folder; the refusal is not retryable", () =>
    Effect.gen(function*() {
      const { store } = yield* openStore
      yield* store.put("a/b", bytes("x"), "text/plain")
      const error = yield* Effect.flip(store.put("a", bytes("y"), "text/plain"))
      assert.strictEqual(error._tag, "ObjectStoreError")
      assert.isFalse(error.retryable)
      assert.strictEqual(yield* text(yield* store.get("a/b")), "x")
    }))

  it.effect("objects survive a new store on the same folder", () =>
    Effect.gen(function*() {
      const { folder, store } = yield* openStore
      yield* store.put("k/v.json", bytes("[1]"), "application/json")
      const again = yield* LocalObjectStore.make(folder)
      const object = yield* again.get("k/v.json")
      assert.deepStrictEqual([object.contentType, yield* text(object)], ["application/json", "[1]"])
    }))

  it.effect("ObjectStore.layerLocalConfig keeps the bucket in <PIPELINE_DATA_DIR>/bucket", () =>
    Effect.gen(function*() {
      const directory = yield* tempDir
      const config = ConfigProvider.layer(ConfigProvider.fromUnknown({ PIPELINE_DATA_DIR: directory }))
      const location = yield* Effect.gen(function*() {
        const store = yield* ObjectStore
        yield* store.put("x.txt", bytes("x"), "text/plain")
        return store.location
      }).pipe(Effect.provide(ObjectStore.layerLocalConfig.pipe(Layer.provide(config))))
      assert.strictEqual(location, join(directory, "bucket"))
      assert.strictEqual(readFileSync(join(directory, "bucket", "x.txt"), "utf8"), "x")
    }))
})
