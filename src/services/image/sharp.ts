/**
 * `Image` on sharp (libvips); see `../Image.ts` for why it is set up this way. sharp itself is
 * imported here, when `make` runs, so that a bundle that only imports `Image.ts` does not load the
 * native library at start (esbuild keeps a dynamic import of an external package dynamic).
 */
import { Effect, Semaphore } from "effect"
import { readImageHeader, SNIFF_BYTES, sniffImageType } from "../../domain/ImageType.ts"
import {
  checkPixels,
  CorruptImage,
  Image,
  type ImageError,
  type ImageLimits,
  ImagePixelLimit,
  JPEG_QUALITY,
  megapixels,
  NOT_AN_IMAGE,
  UnsupportedImage
} from "../Image.ts"

/**
 * The sharp pipelines running at once in this process, across every layer and fiber, by how many
 * a service allows. A process has one memory budget, so one count; keyed by it so that a service
 * made for one image at a time never runs two because another (a test's) was made first for more.
 */
const sharpPermits = new Map<number, Semaphore.Semaphore>()

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

export const make = (limits: ImageLimits, decodesAtOnce = 1): Effect.Effect<Image["Service"]> =>
  Effect.map(Effect.promise(() => import("sharp")), ({ default: sharp }) => {
    let permits = sharpPermits.get(decodesAtOnce)
    if (permits === undefined) sharpPermits.set(decodesAtOnce, permits = Semaphore.makeUnsafe(decodesAtOnce))
    sharp.cache(false)
    sharp.concurrency(1)
    const options = { limitInputPixels: limits.maxPixels, failOn: "warning", sequentialRead: true } as const

    const thumbnail = Effect.fn("Image.thumbnail")(function*(input: Uint8Array, width: number) {
      const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
      // by magic bytes first: SVG, PDF, HEIC and the rest never reach a decoder
      if (sniffImageType(bytes.subarray(0, SNIFF_BYTES)) === undefined) {
        return yield* new UnsupportedImage({ message: NOT_AN_IMAGE })
      }
      // the header only, no pixel decoded: read in JavaScript for JPEG and PNG, by sharp otherwise
      const header = readImageHeader(bytes) ??
        (yield* attempt(limits, () => sharp(bytes, { ...options, limitInputPixels: false }).metadata()).pipe(
          Effect.map((metadata) => ({ ...metadata, progressive: metadata.isProgressive }))
        ))
      const refused = checkPixels(header, limits)
      if (refused !== undefined) return yield* refused
      const { data, info } = yield* attempt(limits, () =>
        sharp(bytes, options)
          .autoOrient()
          .resize({ width, withoutEnlargement: true })
          .flatten({ background: "#ffffff" })
          .jpeg({ quality: JPEG_QUALITY })
          .toBuffer({ resolveWithObject: true }))
      return { data, width: info.width, height: info.height }
    }, (effect) => Semaphore.withPermit(permits, effect))

    return Image.of({ limits, thumbnail })
  })
