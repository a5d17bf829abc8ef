/**
 * A fake `Image` for unit tests where sharp is not the point (the thumbnail steps, the engine):
 * no native code, instant, deterministic.
 *
 * - Inputs are read by their header only (`readImageHeader`: JPEG and PNG). Bytes that are not an
 *   image are `UnsupportedImage`, as with sharp; so are GIF, WebP, TIFF and AVIF, which this fake
 *   cannot measure. A JPEG or PNG whose header cannot be read is `CorruptImage`.
 * - The same pixel limits and the same `ImagePixelLimit` errors as sharp (`checkPixels`).
 * - A JPEG that does not end with its end-of-image marker, or a PNG without its IEND chunk, is
 *   `CorruptImage`, as a truncated file is for sharp: a test marks an input bad by cutting it short.
 * - The thumbnail is `fakeJpeg(width, height)`: a JPEG start, a comment naming the input, a frame
 *   header with the thumbnail's size, and an end. No decoder can read it, but `readImageHeader`
 *   and this fake can, so thumbnails are made from thumbnails as in production.
 * - EXIF orientation is not applied: sizes are the stored ones.
 */
import { Effect } from "effect"
import { readImageHeader, SNIFF_BYTES, sniffImageType } from "../../domain/ImageType.ts"
import { checkPixels, CorruptImage, Image, type ImageLimits, NOT_AN_IMAGE, UnsupportedImage } from "../Image.ts"

const segment = (marker: number, payload: Uint8Array) => {
  const length = payload.byteLength + 2
  return [0xff, marker, length >> 8, length & 0xff, ...payload]
}

/**
 * A JPEG-shaped header of `width` x `height` (one grey component, baseline unless `progressive`),
 * with `comment` in a COM segment: what this fake returns, and a cheap input of any size for it.
 */
export const fakeJpeg = (
  width: number,
  height: number,
  options: { readonly progressive?: boolean; readonly comment?: string } = {}
): Uint8Array => {
  const frame = Uint8Array.of(8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0)
  return Uint8Array.from([
    0xff, 0xd8,
    ...segment(0xfe, new TextEncoder().encode(options.comment ?? `fake ${width}x${height}`)),
    ...segment(options.progressive === true ? 0xc2 : 0xc0, frame),
    0xff, 0xd9
  ])
}

const ascii = (bytes: Uint8Array, start: number, end: number) => String.fromCharCode(...bytes.subarray(start, end))

/** Whether the file ends as a whole JPEG or PNG does. */
const isComplete = (format: "jpeg" | "png", bytes: Uint8Array) =>
  format === "jpeg"
    ? bytes.at(-2) === 0xff && bytes.at(-1) === 0xd9
    : bytes.byteLength >= 12 && ascii(bytes, bytes.byteLength - 8, bytes.byteLength - 4) === "IEND"

export const make = (limits: ImageLimits): Effect.Effect<Image["Service"]> =>
  Effect.sync(() =>
    Image.of({
      limits,
      thumbnail: Effect.fn("Image.thumbnail")(function*(input: Uint8Array, width: number) {
        const type = sniffImageType(input.subarray(0, SNIFF_BYTES))
        if (type === undefined) return yield* new UnsupportedImage({ message: NOT_AN_IMAGE })
        if (type.format !== "jpeg" && type.format !== "png") {
          return yield* new UnsupportedImage({ message: `the test image service reads only JPEG and PNG, not ${type.format}` })
        }
        const header = readImageHeader(input)
        if (header === undefined) {
          return yield* new CorruptImage({ message: `corrupt or truncated image: no readable ${type.format} header (test image service)` })
        }
        const refused = checkPixels(header, limits)
        if (refused !== undefined) return yield* refused
        if (!isComplete(header.format, input)) {
          return yield* new CorruptImage({ message: `corrupt or truncated image: premature end of ${header.format} (test image service)` })
        }
        const outWidth = Math.min(width, header.width)
        const outHeight = Math.max(1, Math.round((outWidth * header.height) / header.width))
        const comment = `fake thumbnail ${outWidth}x${outHeight} of a ${header.width}x${header.height} ${header.format}`
        return { data: fakeJpeg(outWidth, outHeight, { comment }), width: outWidth, height: outHeight }
      })
    })
  )
