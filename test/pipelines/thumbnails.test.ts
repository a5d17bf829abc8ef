import { readFile } from "node:fs/promises"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Schema } from "effect"
import sharp from "sharp"
import { builtinPipelines, defaultPipelineName } from "../../src/pipelines/index.ts"
import {
  makeThumbnailPipeline,
  parseSizes,
  StepOptionsConfig,
  ThumbnailRecord,
  ThumbnailSizesConfig,
  ThumbnailSteps
} from "../../src/pipelines/thumbnails/index.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { type SampleImage, samplePlan, serveImages } from "../../src/pipelines/thumbnails/sampleImages.ts"
import { MemoryObjectStoreControl } from "../../src/services/objectStore/memory.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import { configLayer, decompressionBomb, DLQ, drain, QUEUE, sampleSet, scriptedServer, seed, sendBytes } from "./support.ts"
import { DecodesAtOnceConfig } from "../../src/services/Image.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

const stepsLayer = (config: Record<string, string>) =>
  ThumbnailSteps.layer.pipe(Layer.provideMerge(ObjectStore.layerMemory), Layer.provide(configLayer(config)))

/** Everything in the memory bucket: key → content type and bytes. */
const snapshot = MemoryObjectStoreControl.useSync((control) =>
  new Map([...control.objects].map(([key, stored]) => [key, { contentType: stored.contentType, bytes: Buffer.from(stored.bytes) }]))
)

const dimensions = (bytes: Uint8Array) => Effect.promise(() => sharp(bytes).metadata().then((m) => [m.width, m.height]))

const stored = (key: string) =>
  MemoryObjectStoreControl.useSync((control) => {
    const object = control.objects.get(key)
    assert.isDefined(object, `${key} is in the bucket`)
    return object!
  })

/** The width and height a thumbnail of `width` must have for a sample. */
const expected = (image: SampleImage, width: number) => {
  const w = Math.min(width, image.width)
  return [w, Math.round((w * image.height) / image.width)]
}

describe("the sample image set", () => {
  it.live("has a 24 MP photo, an EXIF-rotated one, a PNG and a broken file, served over HTTP", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      assert.deepStrictEqual(set.images, samplePlan(12))
      const kinds = set.images.map((image) => image.kind)
      assert.includeMembers(kinds, ["photo", "exif-rotated", "png", "broken"])
      const read = (name: string) => Effect.promise(() => readFile(join(set.folder, name)))
      const info = (name: string) => Effect.flatMap(read(name), (bytes) => Effect.promise(() => sharp(bytes).metadata()))
      const big = yield* info("STK000001.jpg")
      assert.deepStrictEqual([big.format, big.width, big.height, big.isProgressive], ["jpeg", 6000, 4000, false])
      assert.strictEqual((yield* info("STK000002.jpg")).orientation, 6)
      assert.strictEqual((yield* info("STK000003.png")).format, "png")
      const broken = yield* read("STK000004.jpg")
      assert.deepStrictEqual([...broken.subarray(0, 3)], [0xff, 0xd8, 0xff], "looks like a JPEG")
      yield* Effect.flip(Effect.tryPromise(() => sharp(broken).toBuffer())) // but does not decode

      const server = yield* serveImages(set.folder)
      const status = (id: string) =>
        Effect.promise(() => fetch(server.imageSource.replace("{stock_no}", id)).then(async (r) => [r.status, r.headers.get("content-type"), (await r.arrayBuffer()).byteLength]))
      assert.deepStrictEqual(yield* status("STK000003"), [200, "image/png", (yield* read("STK000003.png")).byteLength])
      assert.deepStrictEqual((yield* status("STK999999")).slice(0, 1), [404])
      assert.deepStrictEqual((yield* status("..%2Fmanifest.json")).slice(0, 1), [404])
    }))
})

describe("the thumbnail record", () => {
  const decode = Schema.decodeUnknownSync(ThumbnailRecord)
  const encode = Schema.encodeSync(ThumbnailRecord)

  it("is the original series of state records, unchanged by a round trip", () => {
    for (
      const text of [
        `{"stock_no":"STK675849"}`,
        `{"stock_no":"STK675849","has_raw":true}`,
        `{"stock_no":"STK675849","has_raw":true,"size_100":true}`,
        `{"stock_no":"STK675849","has_raw":true,"size_100":true,"size_200":true}`
      ]
    ) {
      assert.strictEqual(JSON.stringify(encode(decode(JSON.parse(text)))), text)
    }
  })

  it("rejects a stock number that could leave its folder, with a clear message", () => {
    for (const stockNo of ["../etc/passwd", "a/b", "", "x".repeat(65), "STK 1", "..", "a.b"]) {
      const result = Schema.decodeUnknownExit(ThumbnailRecord)({ stock_no: stockNo })
      assert.strictEqual(result._tag, "Failure", stockNo)
    }
    assert.throws(() => decode({ stock_no: "../x" }), /stock_no must be 1-64 characters from A-Z a-z 0-9 _ -/)
    assert.throws(() => decode({ stock_no: "a", size_100: "yes" }), /size_100/)
  })

  it("reads THUMBNAIL_SIZES as widths, largest first", () => {
    assert.deepStrictEqual(parseSizes("100,200"), [200, 100])
    assert.deepStrictEqual(parseSizes(" 300, 100,300 ,400"), [400, 300, 100])
    assert.include(parseSizes("100,abc") as string, `"abc"`)
    assert.include(parseSizes("0") as string, "not a width")
    assert.include(parseSizes("") as string, "at least one")
  })

  it.effect("THUMBNAIL_SIZES defaults to 100,200 and fails clearly when wrong", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* ThumbnailSizesConfig.pipe(Effect.provide(configLayer({}))), [200, 100])
      assert.deepStrictEqual(yield* ThumbnailSizesConfig.pipe(Effect.provide(configLayer({ THUMBNAIL_SIZES: "64" }))), [64])
      const error = yield* Effect.flip(ThumbnailSizesConfig.pipe(Effect.provide(configLayer({ THUMBNAIL_SIZES: "100,x" }))))
      assert.include(error.message, `expected widths from 1 to 4096 separated by commas, such as "100,200", got "100,x"`)
      assert.include(error.message, `THUMBNAIL_SIZES`)
    }))
})

describe("the router", () => {
  it("downloads first, then makes sizes from the largest down, then is done", () => {
    const pipeline = makeThumbnailPipeline([100, 300, 200])
    const route = (record: ThumbnailRecord) => {
      const next = pipeline.router(record)
      return next._tag === "Mutation" ? next.name : next._tag
    }
    assert.strictEqual(route({ stock_no: "A" }), "download")
    assert.strictEqual(route({ stock_no: "A", size_300: true }), "download")
    assert.strictEqual(route({ stock_no: "A", has_raw: true }), "thumbnail_300")
    assert.strictEqual(route({ stock_no: "A", has_raw: true, size_300: true }), "thumbnail_200")
    assert.strictEqual(route({ stock_no: "A", has_raw: true, size_300: true, size_200: true }), "thumbnail_100")
    assert.strictEqual(route({ stock_no: "A", has_raw: true, size_300: true, size_200: true, size_100: true }), "Done")
    // a size added to the configuration later is made from the raw image
    assert.strictEqual(route({ stock_no: "A", has_raw: true, size_200: true, size_100: true }), "thumbnail_300")
    assert.deepStrictEqual(pipeline.initialRecord("STK1"), { stock_no: "STK1" })
    assert.strictEqual(pipeline.recordId({ stock_no: "STK1", has_raw: true }), "STK1")
  })

  it.effect("is the built-in default pipeline, its widths from THUMBNAIL_SIZES when a runtime builds it", () =>
    Effect.gen(function*() {
      assert.strictEqual(defaultPipelineName, "thumbnails")
      const pipeline = yield* builtinPipelines.thumbnails!.pipe(Effect.provide(configLayer({ THUMBNAIL_SIZES: "50" })))
      assert.strictEqual(pipeline.name, "thumbnails")
      assert.strictEqual(pipeline.router({ stock_no: "A", has_raw: true })._tag === "Mutation" && (pipeline.router({ stock_no: "A", has_raw: true }) as { name: string }).name, "thumbnail_50")
      const wrong = yield* Effect.flip(builtinPipelines.thumbnails!.pipe(Effect.provide(configLayer({ THUMBNAIL_SIZES: "big" }))))
      assert.include(wrong.message, "THUMBNAIL_SIZES")
    }))
})

describe("the steps, on the memory bucket and the local HTTP server", () => {
  it.live("download stores the raw image under its real type; running it twice changes nothing", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* serveImages(set.folder)
      yield* Effect.gen(function*() {
        const steps = yield* ThumbnailSteps
        const jpeg = yield* steps.download({ stock_no: "STK000005" })
        assert.deepStrictEqual(jpeg, { stock_no: "STK000005", has_raw: true })
        const png = yield* steps.download({ stock_no: "STK000003" })
        assert.deepStrictEqual(png, { stock_no: "STK000003", has_raw: true })
        assert.strictEqual((yield* stored("raw/STK000005.jpg")).contentType, "image/jpeg")
        assert.strictEqual((yield* stored("raw/STK000003.png")).contentType, "image/png")

        const before = yield* snapshot
        assert.deepStrictEqual([...before.keys()].sort(), ["raw/STK000003.png", "raw/STK000005.jpg"])
        assert.deepStrictEqual(yield* steps.download({ stock_no: "STK000005" }), jpeg)
        assert.deepStrictEqual(yield* snapshot, before)
      }).pipe(Effect.provide(stepsLayer({ IMAGE_SOURCE: server.imageSource })))
    }))

  it.live("the largest thumbnail comes from the raw image, each smaller one from the next larger", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* serveImages(set.folder)
      yield* Effect.gen(function*() {
        const steps = yield* ThumbnailSteps
        const sizes = [200, 100]
        const raw = yield* steps.download({ stock_no: "STK000001" }) // 6000x4000
        const with200 = yield* steps.thumbnail(raw, 200, sizes)
        assert.deepStrictEqual(with200, { stock_no: "STK000001", has_raw: true, size_200: true })
        const thumbnail200 = yield* stored("thumbnails/200/STK000001.jpg")
        assert.strictEqual(thumbnail200.contentType, "image/jpeg")
        assert.deepStrictEqual(yield* dimensions(thumbnail200.bytes), [200, 133])

        // without the raw image, the 100 px one can only have come from the 200 px one
        yield* MemoryObjectStoreControl.useSync((control) => control.objects.delete("raw/STK000001.jpg"))
        const with100 = yield* steps.thumbnail(with200, 100, sizes)
        assert.deepStrictEqual(with100, { stock_no: "STK000001", has_raw: true, size_200: true, size_100: true })
        assert.deepStrictEqual(yield* dimensions((yield* stored("thumbnails/100/STK000001.jpg")).bytes), [100, 67])

        // running a thumbnail step again gives the same bytes and the same record
        const before = yield* snapshot
        assert.deepStrictEqual(yield* steps.thumbnail(with200, 100, sizes), with100)
        assert.deepStrictEqual(yield* snapshot, before)

        // a record that does not claim the 200 px one needs the raw image, which is gone
        const missing = yield* Effect.flip(steps.thumbnail(raw, 100, sizes))
        assert.strictEqual(missing._tag, "RawImageMissing")
        assert.include(missing.message, "raw/STK000001.*")
      }).pipe(Effect.provide(stepsLayer({ IMAGE_SOURCE: server.imageSource })))
    }))

  it.live("a thumbnail the record claims but the bucket lost is made again from the raw image", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* serveImages(set.folder)
      yield* Effect.gen(function*() {
        const steps = yield* ThumbnailSteps
        const record = yield* steps.download({ stock_no: "STK000006" }) // 1024x768
        const next = yield* steps.thumbnail({ ...record, size_200: true }, 100, [200, 100])
        assert.strictEqual(next.size_100, true)
        assert.deepStrictEqual(yield* dimensions((yield* stored("thumbnails/100/STK000006.jpg")).bytes), [100, 75])
      }).pipe(Effect.provide(stepsLayer({ IMAGE_SOURCE: server.imageSource })))
    }))

  it.live("an EXIF-rotated photo gives upright thumbnails", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* serveImages(set.folder)
      yield* Effect.gen(function*() {
        const steps = yield* ThumbnailSteps
        const raw = yield* steps.download({ stock_no: "STK000002" })
        const with200 = yield* steps.thumbnail(raw, 200, [200, 100])
        yield* steps.thumbnail(with200, 100, [200, 100])
        assert.deepStrictEqual(yield* dimensions((yield* stored("thumbnails/200/STK000002.jpg")).bytes), [200, 133])
        assert.deepStrictEqual(yield* dimensions((yield* stored("thumbnails/100/STK000002.jpg")).bytes), [100, 67])
      }).pipe(Effect.provide(stepsLayer({ IMAGE_SOURCE: server.imageSource })))
    }))
})

describe("memory", () => {
  it.effect("one raw image and one decode at a time in a small Lambda, two decodes per core elsewhere, or as configured", () =>
    Effect.gen(function*() {
      const decodesElsewhere = 2 * availableParallelism()
      const options = (config: Record<string, string>) => StepOptionsConfig.pipe(Effect.provide(configLayer(config)))
      const decodes = (config: Record<string, string>) => DecodesAtOnceConfig.pipe(Effect.provide(configLayer(config)))
      assert.deepStrictEqual(yield* options({}), { memoryBudgetMB: Option.none(), rawImagesInMemory: decodesElsewhere + 1 })
      assert.strictEqual(yield* decodes({}), decodesElsewhere)
      assert.deepStrictEqual(yield* options({ AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "128" }), {
        memoryBudgetMB: Option.some(128),
        rawImagesInMemory: 1
      })
      assert.strictEqual(yield* decodes({ AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "128" }), 1)
      assert.deepStrictEqual(yield* options({ AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "1024" }), {
        memoryBudgetMB: Option.some(1024),
        rawImagesInMemory: decodesElsewhere + 1
      })
      assert.strictEqual(yield* decodes({ AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "1024", THUMBNAIL_DECODES_AT_ONCE: "3" }), 3)
      assert.deepStrictEqual(yield* options({ THUMBNAIL_DECODES_AT_ONCE: "3" }), { memoryBudgetMB: Option.none(), rawImagesInMemory: 4 })
      assert.deepStrictEqual(
        yield* options({ AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "128", THUMBNAIL_MEMORY_BUDGET_MB: "512", THUMBNAIL_RAW_IMAGES_IN_MEMORY: "3" }),
        { memoryBudgetMB: Option.some(512), rawImagesInMemory: 3 }
      )
      // the budget is the process's: an invalid own value is an error, not Lambda's size instead
      const refused = yield* Effect.flip(decodes({ AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "128", THUMBNAIL_MEMORY_BUDGET_MB: "lots" }))
      assert.include(refused.message, "THUMBNAIL_MEMORY_BUDGET_MB")
    }))

  it.live("no more raw images in flight than allowed, however many steps run at once", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const jpeg = yield* Effect.promise(() => readFile(join(set.folder, "STK000005.jpg")))
      const server = yield* scriptedServer
      let inFlight = 0
      let most = 0
      for (let i = 0; i < 6; i++) {
        server.route(`/img/S${i}`, (request, response) => {
          most = Math.max(most, ++inFlight)
          setTimeout(() => {
            inFlight--
            sendBytes(jpeg)(request, response)
          }, 30)
        })
      }
      const downloadAll = Effect.gen(function*() {
        const steps = yield* ThumbnailSteps
        return yield* Effect.all(Array.from({ length: 6 }, (_, i) => steps.download({ stock_no: `S${i}` })), {
          concurrency: "unbounded"
        })
      })
      const config = { IMAGE_SOURCE: `${server.baseUrl}/img/{stock_no}` }
      for (const [allowed, budget] of [[1, "128"], [3, undefined]] as const) {
        most = 0
        const records = yield* downloadAll.pipe(
          Effect.provide(stepsLayer({
            ...config,
            ...(budget === undefined ? {} : { THUMBNAIL_MEMORY_BUDGET_MB: budget }),
            THUMBNAIL_RAW_IMAGES_IN_MEMORY: String(allowed)
          }))
        )
        assert.strictEqual(records.length, 6)
        assert.strictEqual(most, allowed, `at most ${allowed} at once`)
      }
    }))

  it.live("under a memory budget the steps still work (garbage is collected between them)", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* serveImages(set.folder)
      yield* Effect.gen(function*() {
        const steps = yield* ThumbnailSteps
        const raw = yield* steps.download({ stock_no: "STK000001" })
        const with200 = yield* steps.thumbnail(raw, 200, [200, 100])
        assert.deepStrictEqual(yield* dimensions((yield* stored("thumbnails/200/STK000001.jpg")).bytes), [200, 133])
        assert.strictEqual(with200.size_200, true)
      }).pipe(Effect.provide(stepsLayer({ IMAGE_SOURCE: server.imageSource, THUMBNAIL_MEMORY_BUDGET_MB: "1" })))
    }))
})

describe("through the engine", () => {
  const engineLayer = (config: Record<string, string>) =>
    Layer.mergeAll(
      MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 5 } }),
      EngineSettings.layerWith({ queueUrl: QUEUE, retryFor: Duration.seconds(5) }),
      stepsLayer(config)
    )

  it.live("every sample goes from {stock_no} to done with exact widths; the broken, missing and unsafe ones are dead-lettered", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* serveImages(set.folder)
      const pipeline = makeThumbnailPipeline([100, 200])
      yield* Effect.gen(function*() {
        yield* seed([
          ...set.images.map((image) => pipeline.initialRecord(image.stockNo)),
          { stock_no: "STK404" },
          { stock_no: "../../etc/passwd" }
        ])
        const outcomes = yield* drain(pipeline)
        assert.strictEqual(outcomes.filter((outcome) => outcome._tag === "Failed").length, 0)

        const good = set.images.filter((image) => !image.broken)
        assert.strictEqual(outcomes.filter((outcome) => outcome._tag === "Done").length, good.length)
        for (const image of good) {
          for (const width of [200, 100]) {
            const thumbnail = yield* stored(`thumbnails/${width}/${image.stockNo}.jpg`)
            assert.strictEqual(thumbnail.contentType, "image/jpeg")
            assert.deepStrictEqual(yield* dimensions(thumbnail.bytes), expected(image, width), `${image.stockNo} at ${width}`)
          }
        }

        const control = yield* MemoryQueueControl
        assert.deepStrictEqual(control.messages(QUEUE), [])
        const dead = control.messages(DLQ).map((message) => ({
          body: JSON.parse(message.body) as { stock_no: string },
          tag: message.attributes["error.tag"],
          step: message.attributes["error.step"],
          reason: message.attributes["error.message"] ?? ""
        }))
        const byStock = new Map(dead.map((entry) => [entry.body.stock_no, entry]))
        assert.strictEqual(dead.length, 3)
        assert.deepInclude(byStock.get("STK000004"), { tag: "CorruptImage", step: "thumbnail_200" })
        // libvips says "premature end" of a truncated JPEG; with several images decoding at once its
        // one error buffer can lose that line to another thread, and sharp's own is left
        assert.match(byStock.get("STK000004")!.reason, /^corrupt or truncated image: .*(premature end|Warning treated as error)/)
        assert.deepInclude(byStock.get("STK404"), { tag: "ImageNotFound", step: "download" })
        assert.deepInclude(byStock.get("../../etc/passwd"), { tag: "SchemaViolation", step: "decode" })
        assert.include(byStock.get("../../etc/passwd")!.reason, "stock_no must be")
        // nothing was written outside the two prefixes
        const keys = [...(yield* snapshot).keys()]
        assert.isTrue(keys.every((key) => /^(raw|thumbnails\/(100|200))\/STK[0-9]+\.(jpg|png)$/.test(key)), keys.join(" "))
      }).pipe(Effect.provide(engineLayer({ IMAGE_SOURCE: server.imageSource })))
    }))

  it.live("a 5xx is retried in process and the step then succeeds; a decompression bomb is dead-lettered", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* scriptedServer
      const jpeg = yield* Effect.promise(() => readFile(join(set.folder, "STK000006.jpg")))
      let calls = 0
      server.route("/img/FLAKY", (request, response) => {
        calls++
        if (calls < 3) response.writeHead(502).end()
        else sendBytes(jpeg)(request, response)
      })
      server.route("/img/BOMB", sendBytes(decompressionBomb(10_000), "image/png"))
      const pipeline = makeThumbnailPipeline([100, 200])
      yield* Effect.gen(function*() {
        yield* seed([{ stock_no: "FLAKY" }, { stock_no: "BOMB" }])
        const outcomes = yield* drain(pipeline)
        assert.strictEqual(calls, 3)
        assert.deepStrictEqual(outcomes.filter((o) => o._tag === "Done").map((o) => JSON.parse(o.message.body)), [
          { stock_no: "FLAKY", has_raw: true, size_200: true, size_100: true }
        ])
        const [dead, ...rest] = (yield* MemoryQueueControl).messages(DLQ)
        assert.deepStrictEqual(rest, [])
        assert.strictEqual(dead!.attributes["error.tag"], "ImagePixelLimit")
        assert.strictEqual(dead!.attributes["error.step"], "thumbnail_200")
        assert.include(dead!.attributes["error.message"], "100.0 MP")
      }).pipe(Effect.provide(engineLayer({ IMAGE_SOURCE: `${server.baseUrl}/img/{stock_no}` })))
    }))
})
