import { execFile } from "node:child_process"
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import sharp from "sharp"
import { isRetryable } from "../../src/domain/errors.ts"
import { Image, type ImageLimits } from "../../src/services/Image.ts"
import { readImageHeader } from "../../src/domain/ImageType.ts"
import { fakeJpeg } from "../../src/services/image/fake.ts"
import { configLayer, decompressionBomb, sampleSet } from "./support.ts"

const limits: ImageLimits = { maxPixels: 40_000_000, maxProgressivePixels: 12_000_000 }
/** A thumbnail by the sharp service (`Image.layerSharp`) with these limits. */
const thumbnail = (input: Uint8Array, width: number, withLimits = limits) =>
  Image.use((image) => image.thumbnail(input, width)).pipe(Effect.provide(Image.layerSharp(withLimits)))
const file = (name: string) => Effect.flatMap(sampleSet(), (set) => Effect.promise(() => readFile(join(set.folder, name))))
const metadata = (bytes: Uint8Array) => Effect.promise(() => sharp(bytes).metadata())

describe("readImageHeader", () => {
  it.live("reads JPEG and PNG dimensions and progressiveness as sharp does, without decoding", () =>
    Effect.gen(function*() {
      const inputs = [
        yield* file("STK000001.jpg"),
        yield* file("STK000002.jpg"), // EXIF before the frame header
        yield* file("STK000003.png")
      ]
      const base = yield* file("STK000007.jpg")
      inputs.push(yield* Effect.promise(() => sharp(base).jpeg({ progressive: true }).toBuffer()))
      inputs.push(yield* Effect.promise(() => sharp(base).png({ progressive: true }).toBuffer()))
      for (const input of inputs) {
        const expected = yield* metadata(input)
        assert.deepStrictEqual(readImageHeader(input), {
          format: expected.format as "jpeg" | "png",
          width: expected.width,
          height: expected.height,
          progressive: expected.isProgressive
        })
      }
      assert.isTrue(readImageHeader(inputs[3]!)!.progressive)
      assert.isTrue(readImageHeader(inputs[4]!)!.progressive)
    }))

  it("gives up on anything else", () => {
    assert.isUndefined(readImageHeader(Buffer.from("GIF89a.........")))
    assert.isUndefined(readImageHeader(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10])))
    assert.isUndefined(readImageHeader(Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x02, 0x00, 0x00])))
    assert.isUndefined(readImageHeader(new Uint8Array(0)))
  })
})

describe("Image.thumbnail", () => {
  it.live("is exactly N px wide, keeps the aspect ratio, and is a plain JPEG at quality 80", () =>
    Effect.gen(function*() {
      const input = yield* file("STK000001.jpg") // 6000x4000
      for (const width of [200, 100, 333]) {
        const made = yield* thumbnail(input, width)
        const info = yield* metadata(made.data)
        assert.strictEqual(info.format, "jpeg")
        assert.strictEqual(info.width, width)
        assert.strictEqual(info.height, Math.round((width * 4000) / 6000))
        assert.deepStrictEqual([made.width, made.height], [info.width, info.height])
        assert.isUndefined(info.exif)
        assert.isUndefined(info.icc)
        assert.isFalse(info.isProgressive)
      }
      // the same bytes as sharp's own quality-80 encoding of the same resize
      const expected = yield* Effect.promise(() => sharp(input).resize({ width: 200 }).jpeg({ quality: 80 }).toBuffer())
      assert.deepStrictEqual(Buffer.from((yield* thumbnail(input, 200)).data), expected)
    }))

  it.live("turns an EXIF-rotated photo upright and drops the orientation tag", () =>
    Effect.gen(function*() {
      const input = yield* file("STK000002.jpg") // stored 1200x1800, orientation 6, upright 1800x1200
      const stored = yield* metadata(input)
      assert.deepStrictEqual([stored.width, stored.height, stored.orientation], [1200, 1800, 6])
      const made = yield* thumbnail(input, 200)
      const info = yield* metadata(made.data)
      assert.deepStrictEqual([info.width, info.height], [200, 133])
      assert.isUndefined(info.orientation)
    }))

  it.live("never enlarges", () =>
    Effect.gen(function*() {
      const input = yield* file("STK000012.jpg") // 150x100
      const made = yield* thumbnail(input, 200)
      assert.deepStrictEqual([made.width, made.height], [150, 100])
    }))

  it.live("reads PNGs", () =>
    Effect.gen(function*() {
      const made = yield* thumbnail(yield* file("STK000003.png"), 100)
      assert.deepStrictEqual([made.width, made.height], [100, 75])
      assert.strictEqual((yield* metadata(made.data)).format, "jpeg")
    }))

  it.live("a truncated JPEG is a permanent CorruptImage with the decoder's reason", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(thumbnail(yield* file("STK000004.jpg"), 200))
      assert.strictEqual(error._tag, "CorruptImage")
      assert.match(error.message, /^corrupt or truncated image: .*premature end/i)
      assert.isFalse(isRetryable(error))
    }))

  it.live("a decompression bomb is refused from its header, before decoding", () =>
    Effect.gen(function*() {
      const bomb = decompressionBomb(10_000)
      assert.isBelow(bomb.byteLength, 1_000_000)
      const started = Date.now()
      const error = yield* Effect.flip(thumbnail(bomb, 200))
      assert.strictEqual(error._tag, "ImagePixelLimit")
      assert.include(error.message, "10000x10000 (100.0 MP)")
      assert.include(error.message, "THUMBNAIL_MAX_PIXELS")
      assert.isFalse(isRetryable(error))
      assert.isBelow(Date.now() - started, 1_000)
    }))

  it.live("progressive JPEGs have their own, lower pixel budget", () =>
    Effect.gen(function*() {
      const input = yield* file("STK000007.jpg") // 1600x1200
      const progressive = yield* Effect.promise(() => sharp(input).jpeg({ quality: 88, progressive: true }).toBuffer())
      assert.isTrue((yield* metadata(progressive)).isProgressive)
      const error = yield* Effect.flip(thumbnail(progressive, 200, { maxPixels: 40_000_000, maxProgressivePixels: 1_000_000 }))
      assert.strictEqual(error._tag, "ImagePixelLimit")
      assert.include(error.message, "progressive jpeg of 1600x1200")
      assert.include(error.message, "THUMBNAIL_MAX_PROGRESSIVE_PIXELS")
      // within the budget it is an ordinary input
      const made = yield* thumbnail(progressive, 200)
      assert.deepStrictEqual([made.width, made.height], [200, 150])
    }))

  it.live("bytes that are not an image are UnsupportedImage", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(thumbnail(Buffer.from("<svg xmlns='http://www.w3.org/2000/svg'/>"), 100))
      assert.strictEqual(error._tag, "UnsupportedImage")
      const text = yield* Effect.flip(thumbnail(Buffer.from("hello world, not an image"), 100))
      assert.strictEqual(text._tag, "UnsupportedImage")
    }))

  it.live("the layer reads its limits from the environment", () =>
    Effect.gen(function*() {
      const limits = yield* Image.useSync((service) => service.limits).pipe(
        Effect.provide(Image.layer.pipe(Layer.provide(configLayer({ THUMBNAIL_MAX_PIXELS: "1000" }))))
      )
      assert.deepStrictEqual(limits, { maxPixels: 1000, maxProgressivePixels: 6_000_000 })
    }))

  it.live("runs one sharp pipeline at a time, however many fibers ask", () =>
    Effect.gen(function*() {
      const input = yield* file("STK000009.jpg")
      const queued = sharp.counters
      let peak = 0
      const watch = setInterval(() => (peak = Math.max(peak, queued().process + queued().queue)), 1)
      // one service, many fibers (the permit is per process, so separate layers would share it too)
      const results = yield* Image.use((image) =>
        Effect.all(Array.from({ length: 6 }, () => image.thumbnail(input, 100)), { concurrency: "unbounded" })
      ).pipe(Effect.provide(Image.layerSharp(limits)))
      clearInterval(watch)
      assert.strictEqual(results.length, 6)
      assert.isAtMost(peak, 1)
      assert.strictEqual(sharp.concurrency(), 1)
    }))
})

describe("Image.layerTest, the fake without native code", () => {
  const fake = (input: Uint8Array, width: number, withLimits = limits) =>
    Image.use((image) => image.thumbnail(input, width)).pipe(Effect.provide(Image.layerTest(withLimits)))

  it.live("fails with the tag sharp fails with, for the same inputs", () =>
    Effect.gen(function*() {
      const progressive = yield* Effect.flatMap(file("STK000007.jpg"), (input) =>
        Effect.promise(() => sharp(input).jpeg({ progressive: true }).toBuffer()))
      const strict = { maxPixels: 40_000_000, maxProgressivePixels: 1_000_000 }
      const cases: ReadonlyArray<readonly [string, Uint8Array, ImageLimits, string]> = [
        ["a truncated JPEG", yield* file("STK000004.jpg"), limits, "CorruptImage"],
        ["a decompression bomb", decompressionBomb(10_000), limits, "ImagePixelLimit"],
        ["a progressive JPEG over its budget", progressive, strict, "ImagePixelLimit"],
        ["SVG", Buffer.from("<svg xmlns='http://www.w3.org/2000/svg'/>"), limits, "UnsupportedImage"]
      ]
      for (const [name, input, withLimits, tag] of cases) {
        const real = yield* Effect.flip(thumbnail(input, 200, withLimits))
        const faked = yield* Effect.flip(fake(input, 200, withLimits))
        assert.deepStrictEqual([real._tag, faked._tag], [tag, tag], name)
        if (tag === "ImagePixelLimit") assert.strictEqual(faked.message, real.message, name)
      }
    }))

  it.live("gives the sizes sharp gives, as a tiny JPEG header that can be made smaller again", () =>
    Effect.gen(function*() {
      for (const [name, width] of [["STK000001.jpg", 200], ["STK000012.jpg", 200], ["STK000003.png", 100]] as const) {
        const input = yield* file(name)
        const [real, faked] = [yield* thumbnail(input, width), yield* fake(input, width)]
        assert.deepStrictEqual([faked.width, faked.height], [real.width, real.height], name)
        assert.isBelow(faked.data.byteLength, 100)
        assert.deepInclude(readImageHeader(faked.data), { format: "jpeg", width: faked.width, height: faked.height })
        assert.deepStrictEqual(yield* fake(input, width), faked, "the same bytes every time")
      }
      const smaller = yield* fake((yield* fake(yield* file("STK000001.jpg"), 200)).data, 100)
      assert.deepStrictEqual([smaller.width, smaller.height], [100, 67])
      // cut short, even by its last byte or inside its header, its own output is corrupt too
      for (const end of [-1, 20]) {
        const cut = yield* Effect.flip(fake(fakeJpeg(300, 200).subarray(0, end), 100))
        assert.strictEqual(cut._tag, "CorruptImage", String(end))
      }
    }))

  it("importing Image.ts and using the fake loads no sharp, nor does building the sharp layer; its first thumbnail does", async () => {
    // a child process, so that no other test has loaded sharp already; a resolve hook sees every import
    const script = `
      import { registerHooks } from "node:module"
      let sharpImports = 0
      registerHooks({ resolve: (specifier, context, next) => { if (specifier === "sharp") sharpImports++; return next(specifier, context) } })
      const { Effect } = await import("effect")
      const { Image } = await import(${JSON.stringify(pathToFileURL(join(import.meta.dirname, "../../src/services/Image.ts")).href)})
      const { fakeJpeg } = await import(${JSON.stringify(pathToFileURL(join(import.meta.dirname, "../../src/services/image/fake.ts")).href)})
      const made = await Effect.runPromise(Image.use((image) => image.thumbnail(fakeJpeg(400, 300), 100)).pipe(Effect.provide(Image.layerTest())))
      const withFake = sharpImports
      const sharpLayer = Image.layerSharp({ maxPixels: 1, maxProgressivePixels: 1 })
      await Effect.runPromise(Image.use((image) => Effect.succeed(image.limits)).pipe(Effect.provide(sharpLayer)))
      const afterLayer = sharpImports
      // over the pixel limit: refused, but by sharp
      await Effect.runPromise(Image.use((image) => Effect.exit(image.thumbnail(fakeJpeg(400, 300), 100))).pipe(Effect.provide(sharpLayer)))
      console.log(JSON.stringify({ height: made.height, withFake, afterLayer, withSharp: sharpImports }))`
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: join(import.meta.dirname, "../..")
    })
    assert.deepStrictEqual(JSON.parse(stdout), { height: 75, withFake: 0, afterLayer: 0, withSharp: 1 })
  }, 30_000)
})
