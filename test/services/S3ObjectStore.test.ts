import "../support/awsEnv.ts"
import { randomBytes } from "node:crypto"
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option, Stream } from "effect"
import { inject } from "vitest"
import { createBucket, withEnv } from "../support/aws.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

/** A fresh bucket; list pages of 2 keys so that a handful of objects spans several pages. */
const StoreOnFreshBucket = Layer.unwrap(
  Effect.promise(createBucket).pipe(
    Effect.map((bucket) => ObjectStore.layerS3(bucket, { listPageSize: 2 }))
  )
)

const collect = (body: Stream.Stream<Uint8Array, unknown>) =>
  Stream.runCollect(body).pipe(Effect.map((chunks) => Buffer.concat(Array.from(chunks))))

describe("S3ObjectStore", () => {
  layer(StoreOnFreshBucket)("on moto", (it) => {
    it.effect("location names the bucket", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        assert.match(store.location, /^s3:\/\/bucket-[0-9a-f-]+$/)
      }))

    it.effect("put then get round-trips the bytes and the content type", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const text = new TextEncoder().encode("hello, pipeline")
        yield* store.put("jobs/1/input.txt", text, "text/plain; charset=utf-8")
        const object = yield* store.get("jobs/1/input.txt")
        assert.strictEqual(object.key, "jobs/1/input.txt")
        assert.strictEqual(object.contentType, "text/plain; charset=utf-8")
        assert.strictEqual(object.size, text.byteLength)
        assert.strictEqual((yield* collect(object.body)).toString("utf8"), "hello, pipeline")

        // large enough to arrive in several chunks
        const binary = randomBytes(3 * 1024 * 1024 + 17)
        yield* store.put("jobs/1/image.bin", binary, "application/octet-stream")
        const big = yield* store.get("jobs/1/image.bin")
        assert.strictEqual(big.size, binary.byteLength)
        assert.isTrue((yield* collect(big.body)).equals(binary))
      }))

    it.effect("get of a missing key fails with ObjectNotFound", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const error = yield* store.get("missing/key.json").pipe(Effect.flip)
        assert.strictEqual(error._tag, "ObjectNotFound")
        assert.strictEqual(error.key, "missing/key.json")
      }))

    it.effect("head finds an object's size and content type, and none for a missing key", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        yield* store.put("head/a.json", new TextEncoder().encode("{}"), "application/json")
        assert.deepStrictEqual(
          yield* store.head("head/a.json"),
          Option.some({ key: "head/a.json", size: 2, contentType: "application/json" })
        )
        assert.isTrue(Option.isNone(yield* store.head("head/b.json")))
      }))

    it.effect("list returns every object under a prefix, across pages", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        const keys = ["list/a", "list/b", "list/c/d", "list/e", "list/f"]
        for (const [i, key] of keys.entries()) {
          yield* store.put(key, new Uint8Array(i + 1), i % 2 === 0 ? "image/png" : "text/plain")
        }
        yield* store.put("listing/outside", new Uint8Array(1), "text/plain")
        const listed = yield* store.list("list/")
        assert.deepStrictEqual(
          [...listed].sort((x, y) => x.key.localeCompare(y.key)),
          keys.map((key, i) => ({ key, size: i + 1, contentType: i % 2 === 0 ? "image/png" : "text/plain" }))
        )
        assert.deepStrictEqual(yield* store.list("nothing-here/"), [])
      }))

    it.effect("refuses unsafe keys without a request", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore
        for (const key of ["../x", "/abs", "a//b", "a/./b", ""]) {
          const error = yield* store.put(key, new Uint8Array(1), "text/plain").pipe(Effect.flip)
          assert.strictEqual(error._tag, "ObjectStoreError")
          assert.strictEqual(error.operation, "PutObject")
          assert.strictEqual(error.key, key)
          assert.isFalse(error.retryable)
        }
        const getError = yield* store.get("../x").pipe(Effect.flip)
        assert.strictEqual(getError._tag, "ObjectStoreError")
        // nothing reached the bucket, under these names or normalised ones
        const stored = new Set((yield* store.list("")).map((o) => o.key))
        for (const key of ["../x", "x", "/abs", "abs", "a//b", "a/b", "a/./b"]) assert.isFalse(stored.has(key), key)
      }))
  })

  it.effect("addresses buckets by path on a configured endpoint (a virtual host like BUCKET.localhost does not resolve)", () =>
    Effect.gen(function*() {
      const bucket = yield* Effect.promise(createBucket)
      const endpoint = new URL(inject("motoEndpoint"))
      endpoint.hostname = "localhost"
      yield* withEnv({ AWS_ENDPOINT_URL_S3: endpoint.origin })
      yield* Effect.gen(function*() {
        const store = yield* ObjectStore
        yield* store.put("path/style", new TextEncoder().encode("ok"), "text/plain")
        const object = yield* store.get("path/style")
        assert.strictEqual((yield* collect(object.body)).toString("utf8"), "ok")
      }).pipe(Effect.provide(ObjectStore.layerS3(bucket), { local: true }))
    }))

  it.effect("a bucket that does not exist fails with a non-retryable ObjectStoreError", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore
      const error = yield* store.put("a", new Uint8Array(1), "text/plain").pipe(Effect.flip)
      assert.strictEqual(error._tag, "ObjectStoreError")
      assert.isFalse(error.retryable)
      assert.include(error.message, "NoSuchBucket")
    }).pipe(Effect.provide(ObjectStore.layerS3("no-such-bucket-here"))))

  it.effect("a missing PIPELINE_BUCKET fails the layer with a ConfigError naming it", () =>
    Effect.gen(function*() {
      const error = yield* Layer.build(ObjectStore.layerS3Config).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({}))),
        Effect.flip
      )
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, "PIPELINE_BUCKET")
    }))
})
