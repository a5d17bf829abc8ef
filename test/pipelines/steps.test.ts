/**
 * The thumbnail steps' own logic on fakes, without native code: the memory bucket, images from
 * memory (`ImageSource.layerMemory`) and the fake image service (`Image.layerTest`), whose
 * thumbnails name what they were made from. sharp's part is in image.test.ts and thumbnails.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option } from "effect"
import { readImageHeader } from "../../src/domain/ImageType.ts"
import { makeThumbnailSteps, ThumbnailSteps } from "../../src/pipelines/thumbnails/steps.ts"
import { fakeJpeg } from "../../src/services/image/fake.ts"
import { Image } from "../../src/services/Image.ts"
import { ImageSource } from "../../src/services/ImageSource.ts"
import { MemoryObjectStoreControl } from "../../src/services/objectStore/memory.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

/** The header of a PNG (signature, IHDR, IEND; CRCs left zero): all the fake reads. */
const pngHeader = (width: number, height: number) => {
  const bytes = Buffer.alloc(8 + 25 + 12)
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(bytes, 0)
  bytes.writeUInt32BE(13, 8)
  bytes.write("IHDR", 12, "latin1")
  bytes.writeUInt32BE(width, 16)
  bytes.writeUInt32BE(height, 20)
  bytes[24] = 8 // bit depth
  bytes[25] = 2 // truecolour
  bytes.write("IEND", 8 + 25 + 4, "latin1")
  return bytes
}

const images = {
  PHOTO: fakeJpeg(6000, 4000),
  PLAN: pngHeader(1024, 768),
  HUGE: fakeJpeg(10_000, 10_000),
  CUT: fakeJpeg(1600, 1200).subarray(0, -2)
}

const stepsLayer = ThumbnailSteps.layerNoDeps.pipe(
  Layer.provideMerge(ObjectStore.layerMemory),
  Layer.provide(Layer.mergeAll(
    Image.layerTest(),
    ImageSource.layerMemory(images),
    ConfigProvider.layer(ConfigProvider.fromUnknown({}))
  ))
)

const stored = (key: string) => MemoryObjectStoreControl.useSync((control) => control.objects.get(key))
const keys = MemoryObjectStoreControl.useSync((control) => [...control.objects.keys()].sort())

/** What a fake thumbnail says it is: its size and what it was made from. */
const madeFrom = (key: string) =>
  Effect.map(stored(key), (object) => {
    assert.isDefined(object, key)
    assert.strictEqual(object!.contentType, "image/jpeg")
    const header = readImageHeader(object!.bytes)!
    // the fake's comment: "fake thumbnail 200x133 of a 6000x4000 jpeg"
    const source = /of a ([0-9]+x[0-9]+ (?:jpeg|png))/.exec(Buffer.from(object!.bytes).toString("latin1"))?.[1]
    return `${header.width}x${header.height} ${source}`
  })

describe("the thumbnail steps on the fake image service", () => {
  it.effect("download stores the raw image under the type its bytes show; a missing one is ImageNotFound", () =>
    Effect.gen(function*() {
      const steps = yield* ThumbnailSteps
      assert.deepStrictEqual(yield* steps.download({ stock_no: "PHOTO" }), { stock_no: "PHOTO", has_raw: true })
      assert.deepStrictEqual(yield* steps.download({ stock_no: "PLAN" }), { stock_no: "PLAN", has_raw: true })
      assert.strictEqual((yield* stored("raw/PHOTO.jpg"))?.contentType, "image/jpeg")
      assert.strictEqual((yield* stored("raw/PLAN.png"))?.contentType, "image/png")
      const missing = yield* Effect.flip(steps.download({ stock_no: "NONE" }))
      assert.strictEqual(missing._tag, "ImageNotFound")
      assert.deepStrictEqual(yield* keys, ["raw/PHOTO.jpg", "raw/PLAN.png"])
    }).pipe(Effect.provide(stepsLayer)))

  it.effect("the largest size is made from the raw image, each smaller one from the next larger", () =>
    Effect.gen(function*() {
      const steps = yield* ThumbnailSteps
      const sizes = [400, 200, 100]
      let record = yield* steps.download({ stock_no: "PHOTO" })
      for (const size of sizes) record = yield* steps.thumbnail(record, size, sizes)
      assert.deepStrictEqual(record, { stock_no: "PHOTO", has_raw: true, size_400: true, size_200: true, size_100: true })
      assert.strictEqual(yield* madeFrom("thumbnails/400/PHOTO.jpg"), "400x267 6000x4000 jpeg")
      assert.strictEqual(yield* madeFrom("thumbnails/200/PHOTO.jpg"), "200x134 400x267 jpeg")
      assert.strictEqual(yield* madeFrom("thumbnails/100/PHOTO.jpg"), "100x67 200x134 jpeg")

      // a record that does not claim 200 (a size added later) skips to the next larger it claims
      yield* steps.thumbnail({ stock_no: "PHOTO", has_raw: true, size_400: true }, 100, sizes)
      assert.strictEqual(yield* madeFrom("thumbnails/100/PHOTO.jpg"), "100x67 400x267 jpeg")

      // a larger thumbnail the record claims but the bucket lost: the raw image instead
      yield* MemoryObjectStoreControl.useSync((control) => control.objects.delete("thumbnails/400/PHOTO.jpg"))
      yield* steps.thumbnail({ stock_no: "PHOTO", has_raw: true, size_400: true }, 200, sizes)
      assert.strictEqual(yield* madeFrom("thumbnails/200/PHOTO.jpg"), "200x133 6000x4000 jpeg")

      // and with the raw image gone too, the step says so
      yield* MemoryObjectStoreControl.useSync((control) => control.objects.delete("raw/PHOTO.jpg"))
      const missing = yield* Effect.flip(steps.thumbnail({ stock_no: "PHOTO", has_raw: true }, 400, sizes))
      assert.strictEqual(missing._tag, "RawImageMissing")
    }).pipe(Effect.provide(stepsLayer)))

  it.effect("the raw image is found under any image type's extension; of several, the first in the types' order", () =>
    Effect.gen(function*() {
      const steps = yield* ThumbnailSteps
      const store = yield* ObjectStore
      const hasRaw = { stock_no: "ITEM", has_raw: true }
      yield* store.put("raw/ITEM.png", pngHeader(1024, 768), "image/png")
      yield* steps.thumbnail(hasRaw, 200, [200])
      assert.strictEqual(yield* madeFrom("thumbnails/200/ITEM.jpg"), "200x150 1024x768 png")
      // the source changed format: a JPEG too, which comes first
      yield* store.put("raw/ITEM.jpg", fakeJpeg(6000, 4000), "image/jpeg")
      yield* steps.thumbnail(hasRaw, 200, [200])
      assert.strictEqual(yield* madeFrom("thumbnails/200/ITEM.jpg"), "200x133 6000x4000 jpeg")
      // an object under another prefix that starts the same is not the raw image
      yield* store.put("raw/ITEM2.jpg", fakeJpeg(10, 10), "image/jpeg")
      const missing = yield* Effect.flip(steps.thumbnail({ stock_no: "ITEM2X", has_raw: true }, 200, [200]))
      assert.strictEqual(missing._tag, "RawImageMissing")
      assert.include(missing.message, "raw/ITEM2X.*")
    }).pipe(Effect.provide(stepsLayer)))

  it.effect("a raw image this process downloaded is read under its own type first: a PNG costs no read of a .jpg", () =>
    Effect.gen(function*() {
      const store = yield* ObjectStore
      const asked: Array<string> = []
      const counting = ObjectStore.of({ ...store, get: (key) => Effect.andThen(Effect.sync(() => asked.push(key)), store.get(key)) })
      const options = { memoryBudgetMB: Option.none(), rawImagesInMemory: 1 }
      const steps = yield* makeThumbnailSteps(options).pipe(Effect.provideService(ObjectStore, counting))
      const record = yield* steps.download({ stock_no: "PLAN" })
      yield* steps.thumbnail(record, 200, [200])
      assert.deepStrictEqual(asked, ["raw/PLAN.png"])
      assert.strictEqual(yield* madeFrom("thumbnails/200/PLAN.jpg"), "200x150 1024x768 png")
      // steps in another process, which did not download it, go by the types' order
      asked.length = 0
      const elsewhere = yield* makeThumbnailSteps(options).pipe(Effect.provideService(ObjectStore, counting))
      yield* elsewhere.thumbnail(record, 200, [200])
      assert.deepStrictEqual(asked, ["raw/PLAN.jpg", "raw/PLAN.png"])
    }).pipe(Effect.provide(Layer.mergeAll(ObjectStore.layerMemory, Image.layerTest(), ImageSource.layerMemory(images)))))

  it.effect("the image service's errors come out of the step as they are, and nothing is written", () =>
    Effect.gen(function*() {
      const steps = yield* ThumbnailSteps
      for (const [stockNo, tag] of [["CUT", "CorruptImage"], ["HUGE", "ImagePixelLimit"]] as const) {
        const record = yield* steps.download({ stock_no: stockNo })
        const error = yield* Effect.flip(steps.thumbnail(record, 200, [200]))
        assert.strictEqual(error._tag, tag, stockNo)
      }
      assert.deepStrictEqual(yield* keys, ["raw/CUT.jpg", "raw/HUGE.jpg"])
    }).pipe(Effect.provide(stepsLayer)))
})
