/**
 * A sample image set made on the spot (no downloads) and a tiny HTTP server for it, so the
 * thumbnail pipeline can run its real download path on a machine with no network.
 *
 * The set is deterministic (same bytes on every run) and cached: a folder that already holds the
 * set, per its `manifest.json`, is reused as it is. Its images, by stock number:
 * - `STK000001`: a 24 MP photo-like JPEG (6000x4000);
 * - `STK000002`: a JPEG stored sideways with EXIF orientation 6 (upright it is 1800x1200);
 * - `STK000003`: a PNG;
 * - `STK000004`: a broken JPEG (cut off after its header), which must end in the dead-letter queue;
 * - then photo-like JPEGs of several sizes, from 150x100 to 12 MP, portrait and landscape.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { extname, join } from "node:path"
import { Effect, Schema, type Scope } from "effect"
import type { Sharp } from "sharp"

export class SampleImageError extends Schema.TaggedError<SampleImageError>()("SampleImageError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

export type SampleKind = "photo" | "exif-rotated" | "png" | "broken"

export interface SampleImage {
  readonly stockNo: string
  /** The file's name in the folder. */
  readonly file: string
  readonly kind: SampleKind
  /** Upright size (after EXIF orientation); what a decoder would see for the broken file. */
  readonly width: number
  readonly height: number
  /** True for the broken file: the pipeline must dead-letter it. */
  readonly broken: boolean
}

export interface SampleSet {
  readonly folder: string
  readonly images: ReadonlyArray<SampleImage>
}

const VERSION = 2
const PHOTO_SIZES: ReadonlyArray<readonly [number, number]> = [
  [640, 480],
  [1024, 768],
  [1600, 1200],
  [2048, 1536],
  [3000, 2000],
  [800, 1200],
  [4000, 3000],
  [150, 100],
  [2400, 1600],
  [1200, 1600]
]

export const stockNumber = (index: number) => `STK${String(index + 1).padStart(6, "0")}`

/** What `makeSampleImages` writes for `count` images (at least 1); pure and deterministic. */
export const samplePlan = (count: number): ReadonlyArray<SampleImage> =>
  Array.from({ length: Math.max(1, Math.floor(count)) }, (_, index): SampleImage => {
    const stockNo = stockNumber(index)
    switch (index) {
      case 0:
        return { stockNo, file: `${stockNo}.jpg`, kind: "photo", width: 6000, height: 4000, broken: false }
      case 1:
        return { stockNo, file: `${stockNo}.jpg`, kind: "exif-rotated", width: 1800, height: 1200, broken: false }
      case 2:
        return { stockNo, file: `${stockNo}.png`, kind: "png", width: 1024, height: 768, broken: false }
      case 3:
        return { stockNo, file: `${stockNo}.jpg`, kind: "broken", width: 800, height: 600, broken: true }
      default: {
        const [width, height] = PHOTO_SIZES[(index - 4) % PHOTO_SIZES.length]!
        return { stockNo, file: `${stockNo}.jpg`, kind: "photo", width, height, broken: false }
      }
    }
  })

/** sharp, imported when images are made rather than with this file, which every CLI command loads. */
const loadSharp = async () => (await import("sharp")).default

/** A small seeded generator (LCG): the same seed always gives the same picture. */
const random = (seed: number) => {
  let state = (seed * 2654435761) >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

/** A landscape: sky, sun, three mountain ridges, trees, and film grain; decodes like a photo. */
export const renderPhoto = async (width: number, height: number, seed: number): Promise<Sharp> => {
  const sharp = await loadSharp()
  const rnd = random(seed)
  const ridge = (from: number, amplitude: number, colour: string) => {
    let y = height * from
    const points = [`0,${height}`]
    for (let i = 0; i <= 60; i++) {
      y = Math.min(Math.max(y + (rnd() - 0.5) * height * amplitude, height * 0.2), height * 0.95)
      points.push(`${((i / 60) * width).toFixed(1)},${y.toFixed(1)}`)
    }
    points.push(`${width},${height}`)
    return `<polygon points="${points.join(" ")}" fill="${colour}"/>`
  }
  const hue = Math.floor(rnd() * 360)
  let trees = ""
  for (let i = 0; i < 80; i++) {
    const x = rnd() * width
    const y = height * (0.7 + rnd() * 0.3)
    const h = height * (0.03 + rnd() * 0.08)
    trees += `<polygon points="${x},${y - h} ${x - h * 0.3},${y} ${x + h * 0.3},${y}" fill="hsl(${100 + rnd() * 40},${
      30 + rnd() * 30
    }%,${10 + rnd() * 20}%)"/>`
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="hsl(${hue},45%,35%)"/>` +
    `<stop offset="0.6" stop-color="hsl(${(hue + 40) % 360},55%,80%)"/></linearGradient>
<radialGradient id="sun"><stop offset="0" stop-color="#fff8e0"/><stop offset="1" stop-color="#fff8e0" stop-opacity="0"/></radialGradient></defs>
<rect width="${width}" height="${height}" fill="url(#sky)"/>
<circle cx="${width * (0.2 + rnd() * 0.6)}" cy="${height * 0.3}" r="${Math.min(width, height) * 0.25}" fill="url(#sun)"/>
${ridge(0.45, 0.06, "hsl(220,20%,45%)")}${ridge(0.58, 0.05, "hsl(200,25%,30%)")}${ridge(0.7, 0.04, "hsl(120,25%,22%)")}${trees}
</svg>`
  const tileSize = Math.min(256, width, height)
  const grain = Buffer.alloc(tileSize * tileSize * 3)
  for (let i = 0; i < grain.length; i += 3) {
    const value = 128 + Math.floor((rnd() - 0.5) * 50)
    grain[i] = value + Math.floor((rnd() - 0.5) * 10)
    grain[i + 1] = value
    grain[i + 2] = value + Math.floor((rnd() - 0.5) * 10)
  }
  const grainPng = await sharp(grain, { raw: { width: tileSize, height: tileSize, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer()
  const scene = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true })
  return sharp(scene.data, { raw: { width: scene.info.width, height: scene.info.height, channels: 3 } })
    .composite([{ input: grainPng, tile: true, blend: "soft-light" }])
}

const renderSample = async (image: SampleImage, seed: number): Promise<Buffer> => {
  switch (image.kind) {
    case "photo":
      return (await renderPhoto(image.width, image.height, seed)).jpeg({ quality: 88 }).toBuffer()
    case "png":
      return (await renderPhoto(image.width, image.height, seed)).png({ compressionLevel: 6 }).toBuffer()
    case "exif-rotated": {
      const sharp = await loadSharp()
      // stored turned a quarter to the left; orientation 6 tells viewers to turn it back
      const upright = await (await renderPhoto(image.width, image.height, seed)).raw().toBuffer({ resolveWithObject: true })
      return sharp(upright.data, { raw: upright.info })
        .rotate(-90)
        .withMetadata({ orientation: 6 })
        .jpeg({ quality: 88 })
        .toBuffer()
    }
    case "broken": {
      const whole = await (await renderPhoto(image.width, image.height, seed)).jpeg({ quality: 88 }).toBuffer()
      return whole.subarray(0, Math.floor(whole.length * 0.4))
    }
  }
}

const exists = (path: string) => fs.access(path).then(() => true, () => false)

/** Writes the sample set into `folder` (created if missing), or reuses it if it is already there. */
export const makeSampleImages = Effect.fn("makeSampleImages")(function*(folder: string, options?: { readonly count?: number }) {
  const images = samplePlan(options?.count ?? 20)
  const manifestPath = join(folder, "manifest.json")
  const manifest = JSON.stringify({ version: VERSION, images }, null, 2)
  return yield* Effect.tryPromise({
    try: async (): Promise<SampleSet> => {
      await fs.mkdir(folder, { recursive: true })
      const previous = await fs.readFile(manifestPath, "utf8").catch(() => "")
      const complete = previous === manifest &&
        (await Promise.all(images.map((image) => exists(join(folder, image.file))))).every(Boolean)
      if (!complete) {
        const sharp = await loadSharp()
        sharp.cache(false)
        for (const [index, image] of images.entries()) {
          const bytes = await renderSample(image, index + 1)
          const temporary = join(folder, `.${image.file}.${randomUUID()}.tmp`)
          await fs.writeFile(temporary, bytes)
          await fs.rename(temporary, join(folder, image.file))
        }
        const temporary = join(folder, `.manifest.${randomUUID()}.tmp`)
        await fs.writeFile(temporary, manifest)
        await fs.rename(temporary, manifestPath)
      }
      return { folder, images }
    },
    catch: (cause) => new SampleImageError({ message: `cannot make the sample images in ${folder}: ${String(cause)}`, cause })
  })
})

export interface ImageServer {
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string
  /** The `IMAGE_SOURCE` to use: `<baseUrl>/images/{stock_no}`. */
  readonly imageSource: string
  readonly port: number
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".jpg": "image/jpeg",
  ".png": "image/png",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".tif": "image/tiff",
  ".avif": "image/avif"
}

/**
 * Serves `folder` on 127.0.0.1 (a free port) until the scope closes: `GET /images/<name>` answers
 * the file `<name>`, or `<name>.<ext>` for an image extension; anything else is a 404.
 *
 * A scoped fixture rather than a service: no program asks for it from the context; the demo and
 * the tests only hand its `imageSource` to `ImageSource` as `IMAGE_SOURCE`, so the real download
 * path runs.
 */
export const serveImages = (folder: string): Effect.Effect<ImageServer, SampleImageError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        new Promise<Server>((resolvePromise, reject) => {
          const server = createServer((request, response) => {
            const notFound = () => {
              response.writeHead(404, { "content-type": "text/plain" }).end("not found\n")
            }
            const match = /^\/images\/([A-Za-z0-9_-][A-Za-z0-9_.-]*)$/.exec(new URL(request.url ?? "/", "http://x").pathname)
            if ((request.method !== "GET" && request.method !== "HEAD") || match === null) return notFound()
            const name = match[1]!
            const candidates = extname(name) in CONTENT_TYPES ? [name] : Object.keys(CONTENT_TYPES).map((ext) => name + ext)
            void (async () => {
              for (const candidate of candidates) {
                const path = join(folder, candidate)
                const stat = await fs.stat(path).catch(() => undefined)
                if (stat === undefined || !stat.isFile()) continue
                response.writeHead(200, { "content-type": CONTENT_TYPES[extname(candidate)]!, "content-length": stat.size })
                if (request.method === "HEAD") return response.end()
                // whole files: the images are a few MB, and one write is far cheaper than 64 KB chunks
                response.end(await fs.readFile(path))
                return
              }
              notFound()
            })()
          })
          server.once("error", reject)
          server.listen(0, "127.0.0.1", () => resolvePromise(server))
        }),
      catch: (cause) => new SampleImageError({ message: `cannot start the image server: ${String(cause)}`, cause })
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  ).pipe(
    Effect.map((server): ImageServer => {
      const { port } = server.address() as AddressInfo
      const baseUrl = `http://127.0.0.1:${port}`
      return { baseUrl, imageSource: `${baseUrl}/images/{stock_no}`, port }
    })
  )
