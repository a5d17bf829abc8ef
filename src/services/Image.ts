/**
 * Image work on sharp (libvips), as an Effect service: one operation, a JPEG thumbnail of a given
 * width.
 *
 * Memory is what limits this service in a 128 MB Lambda, so:
 * - `sharp.cache(false)` and `sharp.concurrency(1)`, set when the service is made;
 * - one sharp pipeline at a time in the whole process (a module-level semaphore), whatever the
 *   engine's concurrency;
 * - the input is never decoded at full size when it can be avoided: the pipeline is
 *   `autoOrient → resize → JPEG`, which keeps libjpeg's shrink-on-load (a baseline 24 MP JPEG
 *   decodes at 1/8 scale; measured: the same peak RSS with and without autoOrient on an
 *   orientation-6 24 MP JPEG); no rotate-before-resize, no extract;
 * - a pixel limit, checked from the header before any pixel is decoded, rejects decompression
 *   bombs and images too large for the memory (`THUMBNAIL_MAX_PIXELS`, default 25 MP: a baseline
 *   24 MP JPEG peaks at about 121 MB through the Lambda handler, 30 MP at about 129 MB);
 * - progressive JPEGs (and interlaced PNGs) cannot be decoded at reduced size: libjpeg keeps the
 *   DCT coefficients of the whole image, about 3 bytes a pixel, so a progressive 24 MP JPEG needs
 *   about 141 MB in bare sharp and 180 MB through the handler. They have their own, lower limit
 *   (`THUMBNAIL_MAX_PROGRESSIVE_PIXELS`, default 6 MP: about 113-119 MB through the handler).
 *   Above it the image is a permanent error that says which setting to raise; a Lambda killed
 *   for memory would instead fail its whole batch, again and again, with no reason given.
 */
import { Config, Context, Effect, Layer, Schema, Semaphore } from "effect"
import sharp from "sharp"
import { readImageHeader, SNIFF_BYTES, sniffImageType } from "../domain/ImageType.ts"

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


export const ImageLimitsConfig = Config.all({
  maxPixels: Config.Int("THUMBNAIL_MAX_PIXELS").pipe(Config.withDefault(25_000_000)),
  maxProgressivePixels: Config.Int("THUMBNAIL_MAX_PROGRESSIVE_PIXELS").pipe(Config.withDefault(6_000_000))
})

/** One sharp pipeline at a time in this process, across every layer and fiber. */
const sharpPermit = Semaphore.makeUnsafe(1)

const megapixels = (pixels: number) => `${(pixels / 1e6).toFixed(1)} MP`

const decodeFailure = (cause: unknown, limits: ImageLimits): ImageError => {
  const text = cause instanceof Error ? cause.message : String(cause)
  if (/pixel limit/i.test(text)) {
    return new ImagePixelLimit({
      message: `image exceeds the limit of ${megapixels(limits.maxPixels)} (THUMBNAIL_MAX_PIXELS): ${text}`,
      limit: limits.maxPixels
    })
  }
  if (/unsupported image format/i.test(text)) {
    return new UnsupportedImage({ message: `not an image format that can be read: ${text}` })
  }
  return new CorruptImage({ message: `corrupt or truncated image: ${text.trim()}` })
}

const attempt = <A>(limits: ImageLimits, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => decodeFailure(cause, limits) })

export const makeImage = (limits: ImageLimits): Image["Service"] => {
  sharp.cache(false)
  sharp.concurrency(1)
  const options = { limitInputPixels: limits.maxPixels, failOn: "warning", sequentialRead: true } as const

  const thumbnail = Effect.fn("Image.thumbnail")(function*(input: Uint8Array, width: number) {
    const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
    // by magic bytes first: SVG, PDF, HEIC and the rest never reach a decoder
    if (sniffImageType(bytes.subarray(0, SNIFF_BYTES)) === undefined) {
      return yield* new UnsupportedImage({ message: "not a JPEG, PNG, GIF, WebP, TIFF or AVIF image" })
    }
    // the header only, no pixel decoded: read in JavaScript for JPEG and PNG, by sharp otherwise
    const header = readImageHeader(bytes) ??
      (yield* attempt(limits, () => sharp(bytes, { ...options, limitInputPixels: false }).metadata()).pipe(
        Effect.map((metadata) => ({ ...metadata, progressive: metadata.isProgressive }))
      ))
    const pixels = header.width * header.height
    if (pixels > limits.maxPixels) {
      return yield* new ImagePixelLimit({
        message: `image is ${header.width}x${header.height} (${megapixels(pixels)}), over the limit of ${
          megapixels(limits.maxPixels)
        } (THUMBNAIL_MAX_PIXELS)`,
        pixels,
        limit: limits.maxPixels
      })
    }
    if (header.progressive && pixels > limits.maxProgressivePixels) {
      return yield* new ImagePixelLimit({
        message: `progressive ${header.format} of ${header.width}x${header.height} (${megapixels(pixels)}) is over the limit of ${
          megapixels(limits.maxProgressivePixels)
        } for progressive images (THUMBNAIL_MAX_PROGRESSIVE_PIXELS): it cannot be decoded at reduced size, ` +
          `its decoder holds about 3 bytes a pixel (${Math.ceil((pixels * 3) / 1e6)} MB)`,
        pixels,
        limit: limits.maxProgressivePixels
      })
    }
    const { data, info } = yield* attempt(limits, () =>
      sharp(bytes, options)
        .autoOrient()
        .resize({ width, withoutEnlargement: true })
        .flatten({ background: "#ffffff" })
        .jpeg({ quality: JPEG_QUALITY })
        .toBuffer({ resolveWithObject: true }))
    return { data, width: info.width, height: info.height }
  }, (effect) => Semaphore.withPermit(sharpPermit, effect))

  return Image.of({ limits, thumbnail })
}

export class Image extends Context.Service<Image, {
  readonly limits: ImageLimits
  /**
   * A JPEG (quality 80, sRGB, no metadata) of `width` pixels wide, upright by EXIF orientation,
   * aspect ratio kept, never enlarged: a narrower input keeps its own width.
   */
  thumbnail(input: Uint8Array, width: number): Effect.Effect<Thumbnail, ImageError>
}>()("pipeline/services/Image") {
  /** Limits from `THUMBNAIL_MAX_PIXELS` and `THUMBNAIL_MAX_PROGRESSIVE_PIXELS`. */
  static readonly layer: Layer.Layer<Image, Config.ConfigError> = Layer.effect(Image, Effect.map(ImageLimitsConfig, makeImage))
}
