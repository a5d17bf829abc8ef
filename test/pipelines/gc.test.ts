/**
 * Garbage collection on demand: the stack starts the function with `--expose-gc`, and under a
 * memory budget the thumbnail steps call the runtime's `gc` once a step is done, so the freed raw
 * image is returned before the next one arrives. vitest runs without the flag, so these tests put
 * a counting `globalThis.gc` in its place (and restore whatever was there).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { serveImages } from "../../src/pipelines/thumbnails/sampleImages.ts"
import { ThumbnailSteps } from "../../src/pipelines/thumbnails/steps.ts"
import { configLayer, sampleSet } from "./support.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

type WithGc = { gc?: (() => void) | undefined }

/** Sets `globalThis.gc` (a function, or none) until the scope closes. */
const gcIs = (gc: (() => void) | undefined) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const saved = Object.getOwnPropertyDescriptor(globalThis, "gc")
      if (gc === undefined) delete (globalThis as WithGc).gc
      else (globalThis as WithGc).gc = gc
      return saved
    }),
    (saved) =>
      Effect.sync(() => {
        if (saved === undefined) delete (globalThis as WithGc).gc
        else Object.defineProperty(globalThis, "gc", saved)
      })
  )

/** Downloads the 24 MP sample (5 MB of JPEG, kept in the memory bucket) and makes its 200 px thumbnail. */
const downloadAndThumbnail = (config: Record<string, string>) =>
  Effect.gen(function*() {
    const set = yield* sampleSet()
    const server = yield* serveImages(set.folder)
    return yield* Effect.gen(function*() {
      const steps = yield* ThumbnailSteps
      const raw = yield* steps.download({ stock_no: "STK000001" })
      const made = yield* steps.thumbnail(raw, 200, [200, 100])
      assert.deepStrictEqual(made, { stock_no: "STK000001", has_raw: true, size_200: true })
    }).pipe(
      Effect.provide(ThumbnailSteps.layer.pipe(
        Layer.provide(ObjectStore.layerMemory),
        Layer.provide(configLayer({ IMAGE_SOURCE: server.imageSource, ...config }))
      ))
    )
  })

describe("garbage collection between thumbnail steps", () => {
  it.live("over the memory budget, each step ends with a call to the runtime's gc, and a thumbnail's read of its input too", () =>
    Effect.gen(function*() {
      let calls = 0
      yield* gcIs(() => void calls++)
      // 1 MB: any process is over 85% of it
      yield* downloadAndThumbnail({ THUMBNAIL_MEMORY_BUDGET_MB: "1" })
      assert.strictEqual(calls, 3, "once after the download; after the thumbnail's read, before the decode; once after the thumbnail")
    }))

  it.live("with no budget, or well under it, gc is left to V8", () =>
    Effect.gen(function*() {
      let calls = 0
      yield* gcIs(() => void calls++)
      yield* downloadAndThumbnail({})
      yield* downloadAndThumbnail({ THUMBNAIL_MEMORY_BUDGET_MB: "1000000" })
      assert.strictEqual(calls, 0)
    }))

  it.live("without --expose-gc (no globalThis.gc) the steps work under a budget all the same", () =>
    Effect.gen(function*() {
      yield* gcIs(undefined)
      yield* downloadAndThumbnail({ THUMBNAIL_MEMORY_BUDGET_MB: "1" })
    }))
})
