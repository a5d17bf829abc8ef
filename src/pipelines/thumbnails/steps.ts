/**
 * The two kinds of step of the thumbnail pipeline, over the bucket, the image source and sharp.
 *
 * - download: the raw image of a stock number, stored as `raw/{stock_no}.{ext}` with the content
 *   type its bytes show.
 * - thumbnail N: `thumbnails/{N}/{stock_no}.jpg`, made from the next larger thumbnail the record
 *   already has, or from the raw image for the largest size. Decoding the raw image is nearly all
 *   of the cost, so a chain pays for about one decode per image however many sizes it makes.
 *
 * Both are idempotent: they overwrite their object with the same bytes and return the same record.
 */
import { Config, Context, Effect, Layer, Option, Schema, Semaphore, Stream } from "effect"
import { type ObjectNotFound, ObjectStore, type ObjectStoreError } from "../../services/ObjectStore.ts"
import { DecodesAtOnceConfig, Image, type ImageError, isSmallBudget, MemoryBudgetConfig } from "../../services/Image.ts"
import { ImageSource, type ImageSourceError } from "../../services/ImageSource.ts"
import { collectGarbageHoldingBuffers } from "../../services/garbage.ts"
import { intSetting } from "../../services/settings.ts"
import { IMAGE_TYPES } from "../../domain/ImageType.ts"
import {
  hasSize,
  rawKey,
  rawKeyPrefix,
  sizeFlag,
  thumbnailKey,
  type ThumbnailRecord
} from "./record.ts"

/** A thumbnail step found no raw image: the download step has not run, or its object was deleted. Permanent. */
export class RawImageMissing extends Schema.TaggedError<RawImageMissing>()("RawImageMissing", {
  message: Schema.String,
  stockNo: Schema.String
}) {}

export type DownloadError = ImageSourceError | ObjectStoreError
export type ThumbnailError = ImageError | RawImageMissing | ObjectNotFound | ObjectStoreError

const rawExtensions = IMAGE_TYPES.map((type) => type.extension)

/** Stock numbers whose downloaded raw image's type a process remembers (`storedRawExtension`). */
const RAW_EXTENSIONS_KEPT = 1024

export interface StepOptions {
  /**
   * The process's memory limit in MB (a Lambda's memory size). After a step whose process is above
   * 85% of it, garbage is collected at once rather than when V8 would, so the freed raw image is
   * returned before the next one arrives. None: leave it to V8.
   */
  readonly memoryBudgetMB: Option.Option<number>
  /**
   * Raw images the steps hold in memory at once: a step holds a permit from fetching or reading its
   * raw image until its object is stored. Without a limit, a Lambda batch of ten 24 MP images
   * holds ten at once (measured through the handler: 235 MB peak RSS; one at a time with the
   * memory budget: 126-133 MB). One is the figure for a 128 MB Lambda; two lets a download overlap
   * another image's decoding.
   */
  readonly rawImagesInMemory: number
}

/**
 * The memory budget (`MemoryBudgetConfig`); `THUMBNAIL_RAW_IMAGES_IN_MEMORY`, else 1 with a budget
 * of 256 MB or less, else one per image decoded at once and one more, downloading meanwhile.
 */
export const StepOptionsConfig: Config.Config<StepOptions> = Config.all({
  memoryBudgetMB: MemoryBudgetConfig,
  rawImagesInMemory: Config.option(intSetting("THUMBNAIL_RAW_IMAGES_IN_MEMORY", 1)),
  decodesAtOnce: DecodesAtOnceConfig
}).pipe(Config.map(({ decodesAtOnce, memoryBudgetMB, rawImagesInMemory }): StepOptions => ({
  memoryBudgetMB,
  rawImagesInMemory: Option.getOrElse(rawImagesInMemory, () => isSmallBudget(memoryBudgetMB) ? 1 : decodesAtOnce + 1)
})))

/**
 * The bytes of an object in one buffer. Chunks are copied into a buffer of the object's size as
 * they arrive, so each is garbage at once; a single chunk of the whole size is used as it is.
 */
const readAll = (store: ObjectStore["Service"], key: string) =>
  Effect.gen(function*() {
    const object = yield* store.get(key)
    let whole: Uint8Array | undefined
    let bytes: Uint8Array | undefined
    let size = 0
    const extra: Array<Uint8Array> = []
    yield* Stream.runForEachArray(object.body, (chunks) =>
      Effect.sync(() => {
        for (const chunk of chunks) {
          if (size === 0 && chunk.byteLength === object.size) whole = chunk
          else if (whole === undefined && size + chunk.byteLength <= object.size) {
            bytes ??= new Uint8Array(object.size)
            bytes.set(chunk, size)
          } else extra.push(chunk) // the object changed while being read: keep every byte
          size += chunk.byteLength
        }
      }))
    const start = whole ?? bytes?.subarray(0, Math.min(size, object.size)) ?? new Uint8Array(0)
    return extra.length === 0 ? start : Buffer.concat([start, ...extra])
  })

export const makeThumbnailSteps = Effect.fnUntraced(function*(options: StepOptions) {
  const store = yield* ObjectStore
  const image = yield* Image
  const source = yield* ImageSource
  const relieve = Option.match(options.memoryBudgetMB, {
    onNone: () => Effect.void,
    onSome: (budget) =>
      Effect.sync(() => {
        if (process.memoryUsage.rss() < budget * 0.85 * 1024 * 1024) return
        // only when Buffers (raw images, chunks) are what fills memory: small images skip the cost
        collectGarbageHoldingBuffers(4 * 1024 * 1024)
      })
  })
  const rawImagePermits = yield* Semaphore.make(options.rawImagesInMemory)
  /** Inside the permit: the garbage is collected before the next raw image comes in. */
  const holdingRawImage = <A, E>(effect: Effect.Effect<A, E>) =>
    Semaphore.withPermit(rawImagePermits, Effect.ensuring(effect, relieve))

  /**
   * The extension of the raw image this process last stored for a stock number (its download ran
   * here, as under run-ahead), for the thumbnail steps to try first: a PNG is then read at once
   * instead of after a GetObject of its `.jpg` that misses (on moto, 110 ms on the chain's way).
   * The most recent `RAW_EXTENSIONS_KEPT` only.
   */
  const storedRawExtension = new Map<string, string>()
  const noteRawExtension = (stockNo: string, extension: string) => {
    storedRawExtension.delete(stockNo)
    storedRawExtension.set(stockNo, extension)
    if (storedRawExtension.size > RAW_EXTENSIONS_KEPT) storedRawExtension.delete(storedRawExtension.keys().next().value!)
  }

  /**
   * The bytes of a stock number's raw image: the one this process last downloaded, else the first
   * of `raw/{stock_no}.{ext}` in the image types' fixed order (several exist when the source changed
   * format). Read by name rather than found by listing: a JPEG, the usual case, costs one request,
   * and none when the object store still holds what the download step just wrote (run-ahead); a
   * listing costs one request and a HeadObject a key on S3, before the read.
   */
  const readRaw = (stockNo: string) =>
    Effect.gen(function*() {
      const downloaded = storedRawExtension.get(stockNo)
      const extensions = downloaded === undefined ? rawExtensions : [downloaded, ...rawExtensions.filter((other) => other !== downloaded)]
      for (const extension of extensions) {
        const found = yield* readAll(store, rawKey(stockNo, extension)).pipe(
          Effect.map(Option.some),
          Effect.catchTag("ObjectNotFound", () => Effect.succeedNone)
        )
        if (Option.isSome(found)) return found.value
      }
      return yield* new RawImageMissing({
        message: `no raw image for ${stockNo} under ${rawKeyPrefix(stockNo)}* (${rawExtensions.join(", ")})`,
        stockNo
      })
    })

  const download = Effect.fn("thumbnails.download")(function*(record: ThumbnailRecord) {
    const fetched = yield* source.fetch(record.stock_no)
    yield* store.put(rawKey(record.stock_no, fetched.type.extension), fetched.bytes, fetched.type.contentType)
    noteRawExtension(record.stock_no, fetched.type.extension)
    return { ...record, has_raw: true }
  }, holdingRawImage)

  const thumbnail = Effect.fn("thumbnails.thumbnail")(function*(record: ThumbnailRecord, size: number, sizes: ReadonlyArray<number>) {
    const stockNo = record.stock_no
    // the smallest larger thumbnail the record says exists; the raw image otherwise
    const larger = sizes.filter((other) => other > size && hasSize(record, other)).sort((a, b) => a - b)[0]
    const input = yield* (larger === undefined
      ? readRaw(stockNo)
      : readAll(store, thumbnailKey(larger, stockNo)).pipe(
        Effect.catchTag("ObjectNotFound", (missing) =>
          Effect.logWarning(`${missing.key} is gone although the record has ${sizeFlag(larger)}; using the raw image`).pipe(
            Effect.andThen(readRaw(stockNo))
          ))
      ))
    // the read's chunks are garbage now: returned before sharp and the decode take their memory
    yield* relieve
    const made = yield* image.thumbnail(input, size)
    yield* store.put(thumbnailKey(size, stockNo), made.data, "image/jpeg")
    return { ...record, [sizeFlag(size)]: true }
  }, holdingRawImage)

  return { download, thumbnail }
})

/** What the pipeline's mutations run on. */
export class ThumbnailSteps extends Context.Service<ThumbnailSteps, {
  download(record: ThumbnailRecord): Effect.Effect<ThumbnailRecord, DownloadError>
  /** Makes size `size`; `sizes` are all the configured ones, to find the next larger thumbnail. */
  thumbnail(record: ThumbnailRecord, size: number, sizes: ReadonlyArray<number>): Effect.Effect<ThumbnailRecord, ThumbnailError>
}>()("pipeline/pipelines/thumbnails/ThumbnailSteps") {
  static readonly layerNoDeps: Layer.Layer<ThumbnailSteps, Config.ConfigError, ObjectStore | Image | ImageSource> = Layer.effect(
    ThumbnailSteps,
    Effect.map(Effect.flatMap(StepOptionsConfig, makeThumbnailSteps), (steps) => ThumbnailSteps.of(steps))
  )

  /** sharp and the source from the environment (`IMAGE_SOURCE`, ...); the bucket from the runtime. */
  static readonly layer = ThumbnailSteps.layerNoDeps.pipe(Layer.provide(Layer.mergeAll(Image.layer, ImageSource.layer)))
}
