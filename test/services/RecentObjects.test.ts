/**
 * Read-your-writes (`PIPELINE_OBJECT_CACHE`): objects this process wrote are read back from memory,
 * within a byte budget, oldest dropped first; anything else still comes from the store.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream } from "effect"
import { ObjectStore, ObjectStoreError } from "../../src/services/ObjectStore.ts"

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill)

/** A memory store that counts the reads reaching it, and fails puts of keys starting with "fail". */
const counted = Effect.gen(function*() {
  const inner = yield* ObjectStore
  const reads: Array<string> = []
  const store: ObjectStore["Service"] = {
    ...inner,
    put: (key, body, type) =>
      key.startsWith("fail")
        ? Effect.fail(new ObjectStoreError({ operation: "put", key, message: "refused", retryable: false, cause: undefined }))
        : inner.put(key, body, type),
    get: (key) => Effect.suspend(() => (reads.push(key), inner.get(key))),
    head: (key) => Effect.suspend(() => (reads.push(`head ${key}`), inner.head(key)))
  }
  return { store, reads }
})

const underTest = (maxBytes: number) =>
  Effect.gen(function*() {
    const { store, reads } = yield* counted
    const cached = yield* Effect.provide(Effect.gen(function*() {
      return yield* ObjectStore
    }), ObjectStore.withRecentObjects(Layer.succeed(ObjectStore, store), maxBytes))
    return { cached, reads }
  })

const read = (store: ObjectStore["Service"], key: string) =>
  Effect.flatMap(store.get(key), (object) => Stream.runCollect(object.body)).pipe(Effect.map((chunks) => [...chunks].reduce((n, c) => n + c.byteLength, 0)))

describe("recent objects", () => {
  it.effect("a written object is read back without reaching the store; others still go to it", () =>
    Effect.gen(function*() {
      const { cached, reads } = yield* underTest(100)
      yield* cached.put("raw/a", bytes(40), "image/jpeg")
      assert.strictEqual(yield* read(cached, "raw/a"), 40)
      assert.deepStrictEqual(Option.map(yield* cached.head("raw/a"), (info) => info.size), Option.some(40))
      assert.deepStrictEqual(reads, [])
      yield* (yield* ObjectStore).put("raw/other", bytes(5), "image/jpeg")
      assert.strictEqual(yield* read(cached, "raw/other"), 5)
      assert.deepStrictEqual(reads, ["raw/other"])
    }).pipe(Effect.provide(ObjectStore.layerMemory)))

  it.effect("within the budget, the least recently used go first; an object over the budget is not kept", () =>
    Effect.gen(function*() {
      const { cached, reads } = yield* underTest(100)
      yield* cached.put("a", bytes(40), "x")
      yield* cached.put("b", bytes(40), "x")
      yield* read(cached, "a") // a is now the most recent
      yield* cached.put("c", bytes(40), "x") // 120 > 100: b goes
      yield* cached.put("huge", bytes(101), "x")
      for (const key of ["a", "b", "c", "huge"]) yield* read(cached, key)
      assert.deepStrictEqual(reads, ["b", "huge"])
    }).pipe(Effect.provide(ObjectStore.layerMemory)))

  it.effect("a write that fails keeps nothing", () =>
    Effect.gen(function*() {
      const { cached, reads } = yield* underTest(100)
      yield* cached.put("fail/a", bytes(10), "x").pipe(Effect.flip)
      const missing = yield* Effect.flip(cached.get("fail/a"))
      assert.strictEqual(missing._tag, "ObjectNotFound")
      assert.deepStrictEqual(reads, ["fail/a"])
    }).pipe(Effect.provide(ObjectStore.layerMemory)))

  it.effect("a budget of 0 is the store itself", () =>
    Effect.gen(function*() {
      const { cached, reads } = yield* underTest(0)
      yield* cached.put("a", bytes(1), "x")
      yield* read(cached, "a")
      assert.deepStrictEqual(reads, ["a"])
    }).pipe(Effect.provide(ObjectStore.layerMemory)))
})
