/**
 * The thumbnail steps on the two real buckets, the local folder and S3 (moto), downloading from
 * the local HTTP server: objects, content types, exact widths, upright EXIF, idempotency.
 */
import "../support/awsEnv.ts"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import sharp from "sharp"
import { afterAll } from "vitest"
import { type ThumbnailRecord, ThumbnailSteps } from "../../src/pipelines/thumbnails/index.ts"
import { serveImages } from "../../src/pipelines/thumbnails/sampleImages.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"
import { createBucket } from "../support/aws.ts"
import { configLayer, sampleSet } from "./support.ts"

const folders: Array<string> = []
afterAll(() => folders.forEach((folder) => rmSync(folder, { recursive: true, force: true })))

const stores: Record<string, () => Promise<{ layer: Layer.Layer<ObjectStore, unknown>; config: Record<string, string> }>> = {
  "the local bucket": async () => {
    const folder = mkdtempSync(join(tmpdir(), "steps-bucket-"))
    folders.push(folder)
    return { layer: ObjectStore.layerLocal(folder), config: {} }
  },
  "S3 on moto": async () => ({ layer: ObjectStore.layerS3Config, config: { PIPELINE_BUCKET: await createBucket() } })
}

const bytesOf = (key: string) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const object = yield* store.get(key)
    return { contentType: object.contentType, bytes: yield* Stream.mkUint8Array(object.body) }
  })

const sizes = [200, 100]

for (const [name, makeStore] of Object.entries(stores)) {
  describe(`the thumbnail steps on ${name}`, () => {
    it.live("download, then 200 px from the raw image and 100 px from the 200; twice gives the same objects and records", () =>
      Effect.gen(function*() {
        const set = yield* sampleSet()
        const server = yield* serveImages(set.folder)
        const { layer, config } = yield* Effect.promise(makeStore)
        yield* Effect.gen(function*() {
          const steps = yield* ThumbnailSteps
          for (const image of set.images.filter((i) => ["exif-rotated", "png"].includes(i.kind) || i.stockNo === "STK000005")) {
            const run = Effect.gen(function*() {
              let record: ThumbnailRecord = { stock_no: image.stockNo }
              record = yield* steps.download(record)
              for (const size of sizes) record = yield* steps.thumbnail(record, size, sizes)
              return record
            })
            const first = yield* run
            assert.deepStrictEqual(first, { stock_no: image.stockNo, has_raw: true, size_200: true, size_100: true })
            const extension = image.kind === "png" ? "png" : "jpg"
            const raw = yield* bytesOf(`raw/${image.stockNo}.${extension}`)
            assert.strictEqual(raw.contentType, image.kind === "png" ? "image/png" : "image/jpeg")
            const before = new Map<number, Uint8Array>()
            for (const size of sizes) {
              const thumbnail = yield* bytesOf(`thumbnails/${size}/${image.stockNo}.jpg`)
              assert.strictEqual(thumbnail.contentType, "image/jpeg")
              const metadata = yield* Effect.promise(() => sharp(thumbnail.bytes).metadata())
              const width = Math.min(size, image.width)
              // the EXIF-rotated sample is stored sideways; its thumbnails must be upright
              assert.deepStrictEqual([metadata.width, metadata.height], [width, Math.round((width * image.height) / image.width)])
              assert.isUndefined(metadata.orientation, "metadata stripped")
              before.set(size, thumbnail.bytes)
            }
            assert.deepStrictEqual(yield* run, first, "the same records again")
            for (const size of sizes) {
              assert.deepStrictEqual((yield* bytesOf(`thumbnails/${size}/${image.stockNo}.jpg`)).bytes, before.get(size), "the same bytes again")
            }
          }
        }).pipe(Effect.provide(ThumbnailSteps.layer.pipe(
          Layer.provideMerge(layer),
          Layer.provide(configLayer({ IMAGE_SOURCE: server.imageSource, ...config }))
        )))
      }), 60_000)
  })
}
