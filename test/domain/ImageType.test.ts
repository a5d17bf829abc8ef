/** Image types by magic bytes, and JPEG/PNG headers read without decoding. */
import { assert, describe, it } from "@effect/vitest"
import { IMAGE_TYPES, readImageHeader, SNIFF_BYTES, sniffImageType } from "../../src/domain/ImageType.ts"

const bytes = (...parts: ReadonlyArray<ReadonlyArray<number> | string>) =>
  new Uint8Array(parts.flatMap((part) => typeof part === "string" ? [...part].map((c) => c.charCodeAt(0)) : [...part]))
const be16 = (n: number) => [n >> 8, n & 0xff]
const be32 = (n: number) => [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]
const padded = (body: Uint8Array) => {
  const out = new Uint8Array(Math.max(body.length, 40))
  out.set(body)
  return out
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
const png = (width: number, height: number, interlace: number, chunk = "IHDR") =>
  bytes(PNG_SIGNATURE, be32(13), chunk, be32(width), be32(height), [8, 2, 0, 0, interlace], be32(0))
/** SOI, an APP0 segment, a fill byte, then the given segments. */
const jpeg = (...segments: ReadonlyArray<ReadonlyArray<number>>) =>
  bytes([0xff, 0xd8], [0xff, 0xe0], be16(16), "JFIF\0", new Array(9).fill(0), [0xff], ...segments)
const frame = (marker: number, width: number, height: number) => [0xff, marker, ...be16(17), 8, ...be16(height), ...be16(width), 3]

describe("sniffImageType", () => {
  it("knows each accepted type by its first bytes, whatever follows", () => {
    const cases: ReadonlyArray<[Uint8Array, string]> = [
      [bytes([0xff, 0xd8, 0xff, 0xe0]), "jpeg"],
      [bytes(PNG_SIGNATURE), "png"],
      [bytes("GIF87a"), "gif"],
      [bytes("GIF89a"), "gif"],
      [bytes("RIFF", [0, 0, 0, 0], "WEBPVP8 "), "webp"],
      [bytes([0x49, 0x49, 0x2a, 0x00]), "tiff"],
      [bytes([0x4d, 0x4d, 0x00, 0x2a]), "tiff"],
      [bytes(be32(24), "ftyp", "avif", be32(0), "mif1", "miaf"), "avif"],
      [bytes(be32(28), "ftyp", "mif1", be32(0), "miaf", "MA1B", "avis"), "avif"]
    ]
    for (const [input, format] of cases) assert.strictEqual(sniffImageType(padded(input))?.format, format, format)
  })

  it("refuses what is not one of them, or only nearly", () => {
    for (
      const input of [
        bytes("<svg xmlns"),
        bytes("%PDF-1.7"),
        bytes([0xff, 0xd8, 0x00]),
        bytes(PNG_SIGNATURE.slice(0, 7), [0]),
        bytes("GIF88a"),
        bytes("RIFF", [0, 0, 0, 0], "WAVE"),
        bytes([0x49, 0x49, 0x2b, 0x00]),
        bytes(be32(24), "ftyp", "heic", be32(0), "mif1", "heic"),
        bytes(be32(16), "ftyp", "mif1", be32(0), "avif"), // avif past the box's own size
        bytes([0, 0, 0, 8], "ftyp")
      ]
    ) assert.isUndefined(sniffImageType(input), JSON.stringify([...input.slice(0, 12)]))
  })

  it("needs no more than SNIFF_BYTES, and each type has its extension and content type", () => {
    assert.strictEqual(SNIFF_BYTES, 32)
    assert.deepStrictEqual(IMAGE_TYPES.map((type) => [type.format, type.extension, type.contentType]), [
      ["jpeg", "jpg", "image/jpeg"],
      ["png", "png", "image/png"],
      ["gif", "gif", "image/gif"],
      ["webp", "webp", "image/webp"],
      ["tiff", "tif", "image/tiff"],
      ["avif", "avif", "image/avif"]
    ])
  })
})

describe("readImageHeader", () => {
  it("reads a PNG's size from IHDR, interlaced or not", () => {
    assert.deepStrictEqual(readImageHeader(png(6000, 4000, 0)), { format: "png", width: 6000, height: 4000, progressive: false })
    assert.deepStrictEqual(readImageHeader(png(70_000, 3, 1)), { format: "png", width: 70_000, height: 3, progressive: true })
    assert.isUndefined(readImageHeader(png(1, 1, 0, "IDAT")), "no IHDR first")
    assert.isUndefined(readImageHeader(png(1, 1, 0).subarray(0, 28)), "cut before the interlace byte")
  })

  it("reads a JPEG's size from its frame header, past other segments, fill bytes and markers without a length", () => {
    const dht = [0xff, 0xc4, ...be16(4), 0, 0]
    const restart = [0xff, 0xd0]
    assert.deepStrictEqual(readImageHeader(jpeg(dht, restart, frame(0xc0, 640, 480))), { format: "jpeg", width: 640, height: 480, progressive: false })
    assert.deepStrictEqual(readImageHeader(jpeg(frame(0xc2, 6000, 4000))), { format: "jpeg", width: 6000, height: 4000, progressive: true })
    for (const marker of [0xc1, 0xc3, 0xc5, 0xc9, 0xcd]) assert.isFalse(readImageHeader(jpeg(frame(marker, 2, 1)))!.progressive, marker.toString(16))
    for (const marker of [0xc6, 0xca, 0xce]) assert.isTrue(readImageHeader(jpeg(frame(marker, 2, 1)))!.progressive, marker.toString(16))
  })

  it("gives up rather than guess: scan data or the end before a frame, a broken segment, a frame cut short, other formats", () => {
    assert.isUndefined(readImageHeader(jpeg([0xff, 0xda, ...be16(2)], frame(0xc0, 1, 1))))
    assert.isUndefined(readImageHeader(jpeg([0xff, 0xd9], frame(0xc0, 1, 1))))
    assert.isUndefined(readImageHeader(jpeg([0x00, 0xc0], frame(0xc0, 1, 1))))
    assert.isUndefined(readImageHeader(jpeg(frame(0xc0, 640, 480)).subarray(0, 27)))
    assert.isUndefined(readImageHeader(padded(bytes("GIF89a"))))
    assert.isUndefined(readImageHeader(bytes([0xff, 0xd8, 0xff])))
  })
})
