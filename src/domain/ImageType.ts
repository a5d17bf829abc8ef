/**
 * Image types by their magic bytes: what the thumbnail pipeline accepts as an image, whatever a
 * file name or a Content-Type header says.
 */

export interface ImageType {
  readonly format: "jpeg" | "png" | "gif" | "webp" | "tiff" | "avif"
  readonly extension: string
  readonly contentType: string
}

export const IMAGE_TYPES: ReadonlyArray<ImageType> = [
  { format: "jpeg", extension: "jpg", contentType: "image/jpeg" },
  { format: "png", extension: "png", contentType: "image/png" },
  { format: "gif", extension: "gif", contentType: "image/gif" },
  { format: "webp", extension: "webp", contentType: "image/webp" },
  { format: "tiff", extension: "tif", contentType: "image/tiff" },
  { format: "avif", extension: "avif", contentType: "image/avif" }
]
const byFormat = (format: ImageType["format"]) => IMAGE_TYPES.find((type) => type.format === format)!

const ascii = (bytes: Uint8Array, start: number, end: number) => String.fromCharCode(...bytes.subarray(start, end))
const startsWith = (bytes: Uint8Array, prefix: ReadonlyArray<number>) => prefix.every((byte, i) => bytes[i] === byte)

/** Bytes needed to tell every accepted type apart. */
export const SNIFF_BYTES = 32

/** The image type of a body by its first bytes, or undefined if it is not one this pipeline reads. */
export const sniffImageType = (bytes: Uint8Array): ImageType | undefined => {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return byFormat("jpeg")
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return byFormat("png")
  if (ascii(bytes, 0, 6) === "GIF87a" || ascii(bytes, 0, 6) === "GIF89a") return byFormat("gif")
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP") return byFormat("webp")
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) return byFormat("tiff")
  if (bytes.length >= 12 && ascii(bytes, 4, 8) === "ftyp") {
    const boxSize = Math.min(((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0, bytes.length)
    const brands = [ascii(bytes, 8, 12)]
    for (let at = 16; at + 4 <= boxSize; at += 4) brands.push(ascii(bytes, at, at + 4))
    if (brands.includes("avif") || brands.includes("avis")) return byFormat("avif")
  }
  return undefined
}

export interface ImageHeader {
  readonly format: "jpeg" | "png"
  readonly width: number
  readonly height: number
  /** Progressive JPEG or interlaced PNG: no decoding at reduced size. */
  readonly progressive: boolean
}

const uint16 = (bytes: Uint8Array, at: number) => (bytes[at]! << 8) | bytes[at + 1]!
const uint32 = (bytes: Uint8Array, at: number) => ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0

/** JPEG start-of-frame markers (not DHT C4, JPG C8, DAC CC), and the progressive ones among them. */
const SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf])
const PROGRESSIVE_SOF = new Set([0xc2, 0xc6, 0xca, 0xce])

/**
 * Dimensions and progressiveness of a JPEG (from its frame header) or a PNG (from IHDR), read in
 * JavaScript without decoding; undefined for other formats or a header that cannot be read.
 */
export const readImageHeader = (bytes: Uint8Array): ImageHeader | undefined => {
  const type = sniffImageType(bytes.subarray(0, SNIFF_BYTES))
  if (type?.format === "png") {
    if (bytes.length < 29 || ascii(bytes, 12, 16) !== "IHDR") return undefined
    return { format: "png", width: uint32(bytes, 16), height: uint32(bytes, 20), progressive: bytes[28] === 1 }
  }
  if (type?.format !== "jpeg") return undefined
  let at = 2
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return undefined
    const marker = bytes[at + 1]!
    if (marker === 0xff) {
      at += 1 // fill byte
      continue
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      at += 2 // markers without a length
      continue
    }
    if (marker === 0xda || marker === 0xd9) return undefined // scan data or end before any frame header
    if (SOF.has(marker)) {
      if (at + 9 > bytes.length) return undefined
      return { format: "jpeg", width: uint16(bytes, at + 7), height: uint16(bytes, at + 5), progressive: PROGRESSIVE_SOF.has(marker) }
    }
    at += 2 + uint16(bytes, at + 2)
  }
  return undefined
}
