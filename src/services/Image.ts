/**
 * Image work as an Effect service: one operation, a JPEG thumbnail of a given width. Implemented by
 * sharp (libvips, `image/sharp.ts`, loaded with sharp itself on the first thumbnail, so that
 * neither importing this file nor a step that makes no thumbnail costs a Lambda's cold start or memory anything) and by a fake for unit tests
 * (`image/fake.ts`, no native code).
 *
 * Memory is what limits the sharp implementation in a 128 MB Lambda, so:
 * - `sharp.cache(false)` and `sharp.concurrency(1)`, set when the service is made;
 * - a bounded number of sharp pipelines at once in the whole process (a module-level semaphore),
 *   whatever the engine's concurrency: one with a memory budget of 256 MB or less (a 128 MB
 *   Lambda, which has a fraction of one core anyway), else two per core (sharp's threads wait on
 *   each other and on the event loop: with 59 sample images on 2 cores, two per core made the
 *   thumbnails end to end 0.92 of a bare script's rate, one per core 0.74)
 *   (`THUMBNAIL_DECODES_AT_ONCE`);
 * - the input is never decoded at full size when it can be avoided: the pipeline is
 *   `autoOrient → resize → JPEG`, which keeps libjpeg's shrink-on-load (a baseline 24 MP JPEG
 *   decodes at 1/8 scale; measured: the same peak RSS with and without autoOrient on an
 *   orientation-6 24 MP JPEG); no rotate-before-resize, no extract;
 * - a pixel limit, checked from the header before any pixel is decoded, rejects decompression
 *   bombs and images too large for the memory (`THUMBNAIL_MAX_PIXELS`, default 25 MP: a baseline
 *   24 MP JPEG peaks at about 107-117 MB through the Lambda handler under RIE, 30 MP at about 115 MB);
 * - progressive JPEGs (and interlaced PNGs) cannot be decoded at reduced size: libjpeg keeps the
 *   DCT coefficients of the whole image, about 3 bytes a pixel, so a progressive 24 MP JPEG needs
 *   about 141 MB in bare sharp and 180 MB through the handler. They have their own, lower limit
 *   (`THUMBNAIL_MAX_PROGRESSIVE_PIXELS`, default 6 MP: about 113-119 MB through the handler).
 *   Above it the image is a permanent error that says which setting to raise; a Lambda killed
 *   for memory would instead fail its whole batch, again and again, with no reason given.
 */
import { availableParallelism } from "node:os"
import { Config, Context, Effect, Layer, Option, Schema } from "effect"
import { intSetting } from "./settings.ts"

/** The header says more pixels than allowed: a decompression bomb, or simply too big. Permanent. */
export class ImagePixelLimit extends Schema.TaggedError<ImagePixelLimit>()("ImagePixelLimit", {
  message: Schema.String,
  /** Absent when sharp refused the image before telling its size. */
  pixels: Schema.optionalKey(Schema.Number),
  limit: Schema.Number
}) {}

/** The bytes claim to be an image but cannot be decoded. Permanent. */
export class CorruptImage extends Schema.TaggedError<CorruptImage>()("CorruptImage", {
  message: Schema.String
}) {}

/** A format this service does not read (SVG, PDF, HEIC, ...), or not an image at all. Permanent. */
export class UnsupportedImage extends Schema.TaggedError<UnsupportedImage>()("UnsupportedImage", {
  message: Schema.String
}) {}

export type ImageError = ImagePixelLimit | CorruptImage | UnsupportedImage

export interface Thumbnail {
  /** JPEG bytes. */
  readonly data: Uint8Array
  readonly width: number
  readonly height: number
}

export interface ImageLimits {
  /** Largest width × height read at all. */
  readonly maxPixels: number
  /** Largest width × height read for progressive JPEGs and interlaced PNGs (no shrink-on-load). */
  readonly maxProgressivePixels: number
}

export const JPEG_QUALITY = 80

export const DEFAULT_IMAGE_LIMITS: ImageLimits = { maxPixels: 25_000_000, maxProgressivePixels: 6_000_000 }

export const ImageLimitsConfig = Config.all({
  maxPixels: intSetting("THUMBNAIL_MAX_PIXELS", 1).pipe(Config.withDefault(DEFAULT_IMAGE_LIMITS.maxPixels)),
  maxProgressivePixels: intSetting("THUMBNAIL_MAX_PROGRESSIVE_PIXELS", 1).pipe(
    Config.withDefault(DEFAULT_IMAGE_LIMITS.maxProgressivePixels)
  )
})

/**
 * The memory the process may use, in MB: `THUMBNAIL_MEMORY_BUDGET_MB`, else Lambda's
 * `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, else none (a machine's own memory).
 */
export const MemoryBudgetConfig: Config.Config<Option.Option<number>> = Config.all({
  // a value of our own that is wrong is an error, not a reason to fall back to Lambda's
  own: Config.option(intSetting("THUMBNAIL_MEMORY_BUDGET_MB", 1)),
  lambda: Config.option(intSetting("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1))
}).pipe(Config.map(({ lambda, own }) => Option.orElse(own, () => lambda)))

/** A memory budget up to this many MB (a 128 MB Lambda's) holds one image at a time. */
export const SMALL_MEMORY_BUDGET_MB = 256

export const isSmallBudget = (budgetMB: Option.Option<number>) => Option.isSome(budgetMB) && budgetMB.value <= SMALL_MEMORY_BUDGET_MB

/** Images decoded at once: `THUMBNAIL_DECODES_AT_ONCE`, else 1 with a budget of 256 MB or less, else two per core. */
export const DecodesAtOnceConfig: Config.Config<number> = Config.all({
  own: Config.option(intSetting("THUMBNAIL_DECODES_AT_ONCE", 1)),
  budgetMB: MemoryBudgetConfig
}).pipe(Config.map(({ budgetMB, own }) =>
  Option.getOrElse(own, () => isSmallBudget(budgetMB) ? 1 : 2 * availableParallelism())
))

export const megapixels = (pixels: number) => `${(pixels / 1e6).toFixed(1)} MP`

export const NOT_AN_IMAGE = "not a JPEG, PNG, GIF, WebP, TIFF or AVIF image"

/** The limits applied to an image's header, before any pixel is decoded; undefined when it may be read. */
export const checkPixels = (
  header: { readonly format: string; readonly width: number; readonly height: number; readonly progressive?: boolean | undefined },
  limits: ImageLimits
): ImagePixelLimit | undefined => {
  const pixels = header.width * header.height
  if (pixels > limits.maxPixels) {
    return new ImagePixelLimit({
      message: `image is ${header.width}x${header.height} (${megapixels(pixels)}), over the limit of ${
        megapixels(limits.maxPixels)
      } (THUMBNAIL_MAX_PIXELS)`,
      pixels,
      limit: limits.maxPixels
    })
  }
  if (header.progressive && pixels > limits.maxProgressivePixels) {
    return new ImagePixelLimit({
      message: `progressive ${header.format} of ${header.width}x${header.height} (${megapixels(pixels)}) is over the limit of ${
        megapixels(limits.maxProgressivePixels)
      } for progressive images (THUMBNAIL_MAX_PROGRESSIVE_PIXELS): it cannot be decoded at reduced size, ` +
        `its decoder holds about 3 bytes a pixel (${Math.ceil((pixels * 3) / 1e6)} MB)`,
      pixels,
      limit: limits.maxProgressivePixels
    })
  }
  return undefined
}

export class Image extends Context.Service<Image, {
  readonly limits: ImageLimits
  /**
   * A JPEG (quality 80, sRGB, no metadata) of `width` pixels wide, upright by EXIF orientation,
   * aspect ratio kept, never enlarged: a narrower input keeps its own width.
   */
  thumbnail(input: Uint8Array, width: number): Effect.Effect<Thumbnail, ImageError>
}>()("pipeline/services/Image") {
  /**
   * sharp with these limits, loaded on the first thumbnail rather than when the layer is built:
   * sharp and libvips are about 30 MB of a Lambda's memory and much of its init, and a step that
   * makes no thumbnail (the download) never needs them.
   */
  static readonly layerSharp = (limits: ImageLimits, decodesAtOnce = 1): Layer.Layer<Image> =>
    Layer.sync(Image, () => {
      let loaded: Promise<Image["Service"]> | undefined
      const sharp = Effect.promise(() =>
        (loaded ??= import("./image/sharp.ts").then((module) => Effect.runPromise(module.make(limits, decodesAtOnce))))
      )
      return Image.of({ limits, thumbnail: (input, width) => Effect.flatMap(sharp, (service) => service.thumbnail(input, width)) })
    })

  /** sharp, limits from `THUMBNAIL_MAX_PIXELS` and `THUMBNAIL_MAX_PROGRESSIVE_PIXELS`, `THUMBNAIL_DECODES_AT_ONCE`. */
  static readonly layer: Layer.Layer<Image, Config.ConfigError> = Layer.unwrap(
    Effect.map(Config.all([ImageLimitsConfig, DecodesAtOnceConfig]), ([limits, decodesAtOnce]) => Image.layerSharp(limits, decodesAtOnce))
  )

  /**
   * A fake for unit tests, no native code: reads JPEG and PNG headers in JavaScript, applies the
   * same limits and errors, and returns a tiny JPEG-shaped header of the thumbnail's size (see
   * `image/fake.ts`, whose `fakeJpeg` also makes inputs of any size).
   */
  static readonly layerTest = (limits: Partial<ImageLimits> = {}): Layer.Layer<Image> =>
    Layer.effect(
      Image,
      Effect.flatMap(Effect.promise(() => import("./image/fake.ts")), (fake) => fake.make({ ...DEFAULT_IMAGE_LIMITS, ...limits }))
    )
}
