import { mkdir, mkdtemp, readFile, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { isRetryable } from "../../src/domain/errors.ts"
import { ImageSource, parseTemplate } from "../../src/services/ImageSource.ts"
import { sniffImageType } from "../../src/domain/ImageType.ts"
import { serveImages } from "../../src/pipelines/thumbnails/sampleImages.ts"
import { configLayer, sampleSet, scriptedServer, sendBytes } from "./support.ts"

const sourceLayer = (config: Record<string, string>) => ImageSource.layer.pipe(Layer.provide(configLayer(config)))

/** Runs `f` with an ImageSource built from `config`, inside the current scope. */
const withSource = <A, E>(config: Record<string, string>, f: (source: ImageSource["Service"]) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const source = yield* ImageSource
    return yield* f(source)
  }).pipe(Effect.provide(sourceLayer(config)))

const failure = <A, E>(effect: Effect.Effect<A, E>) => Effect.flip(effect)

const bytesOf = (path: string) => Effect.promise(() => readFile(path))

describe("sniffImageType", () => {
  it("knows images by their first bytes, not by name", () => {
    assert.strictEqual(sniffImageType(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0]))?.format, "jpeg")
    assert.strictEqual(sniffImageType(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0]))?.format, "png")
    assert.strictEqual(sniffImageType(Buffer.from("GIF89a......"))?.format, "gif")
    assert.strictEqual(sniffImageType(Buffer.from("RIFF\u0000\u0000\u0000\u0000WEBPVP8 "))?.format, "webp")
    assert.strictEqual(sniffImageType(Buffer.from("\u0000\u0000\u0000\u001cftypavif\u0000\u0000\u0000\u0000avifmif1"))?.format, "avif")
    assert.strictEqual(sniffImageType(Buffer.from("\u0000\u0000\u0000\u0018ftypheic\u0000\u0000\u0000\u0000mif1heic")), undefined)
    assert.strictEqual(sniffImageType(Buffer.from("<!doctype html><html>")), undefined)
    assert.strictEqual(sniffImageType(new Uint8Array(0)), undefined)
  })

  it("accepts only usable IMAGE_SOURCE templates", () => {
    assert.deepInclude(parseTemplate("https://img.example.com/raw/{stock_no}.jpg"), { _tag: "Http", host: "img.example.com" })
    assert.deepInclude(parseTemplate("file:///srv/images/{stock_no}.jpg"), { _tag: "File", baseDirectory: "/srv/images" })
    assert.deepInclude(parseTemplate("file:///srv/images/raw-{stock_no}.jpg"), { _tag: "File", baseDirectory: "/srv/images" })
    assert.include(parseTemplate("https://img.example.com/raw/x.jpg") as string, "{stock_no}")
    assert.include(parseTemplate("https://{stock_no}.example.com/x.jpg") as string, "fixed host")
    assert.include(parseTemplate("ftp://example.com/{stock_no}") as string, "http://, https:// or file://")
    assert.include(parseTemplate("file:///{stock_no}.jpg") as string, "root directory")
  })
})

describe("ImageSource over HTTP", () => {
  it.live("downloads an image from the sample server, typed by its bytes", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* serveImages(set.folder)
      const [jpeg, png] = yield* withSource({ IMAGE_SOURCE: server.imageSource }, (source) =>
        Effect.all([source.fetch("STK000001"), source.fetch("STK000003")]))
      assert.deepStrictEqual(jpeg.type, { format: "jpeg", extension: "jpg", contentType: "image/jpeg" })
      assert.deepStrictEqual(Buffer.from(jpeg.bytes), yield* bytesOf(join(set.folder, "STK000001.jpg")))
      assert.strictEqual(jpeg.location, server.imageSource.replace("{stock_no}", "STK000001"))
      assert.strictEqual(png.type.format, "png")
    }))

  it.live("trusts the bytes, not the Content-Type header", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* scriptedServer
      const png = yield* bytesOf(join(set.folder, "STK000003.png"))
      server.route("/a", sendBytes(png, "application/octet-stream"))
      server.route("/b", sendBytes(Buffer.from("<html><body>not found, really</body></html>"), "image/jpeg"))
      const config = { IMAGE_SOURCE: `${server.baseUrl}/{stock_no}` }
      const fetched = yield* withSource(config, (source) => source.fetch("a"))
      assert.strictEqual(fetched.type.contentType, "image/png")
      const error = yield* failure(withSource(config, (source) => source.fetch("b")))
      assert.strictEqual(error._tag, "NotAnImage")
      assert.include(error.message, "not a JPEG, PNG")
      assert.isFalse(isRetryable(error))
    }))

  it.live("404 is a permanent ImageNotFound, whose message keeps the URL's query (a token) out", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer
      const error = yield* failure(
        withSource({ IMAGE_SOURCE: `${server.baseUrl}/img/{stock_no}?token=s3cret` }, (s) => s.fetch("STK1"))
      )
      assert.strictEqual(error._tag, "ImageNotFound")
      assert.include(error.message, "404")
      assert.include(error.message, `${server.baseUrl}/img/STK1?…`)
      assert.notInclude(error.message, "s3cret")
      assert.isFalse(isRetryable(error))
      assert.deepStrictEqual(server.hits.map((hit) => hit.path), ["/img/STK1"])
    }))

  it.live("5xx is retryable, and the next attempt succeeds", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* scriptedServer
      const jpeg = yield* bytesOf(join(set.folder, "STK000005.jpg"))
      let calls = 0
      server.route("/img/STK5", (request, response) => {
        calls++
        if (calls === 1) response.writeHead(503).end("busy")
        else sendBytes(jpeg)(request, response)
      })
      const [first, second] = yield* withSource({ IMAGE_SOURCE: `${server.baseUrl}/img/{stock_no}` }, (source) =>
        Effect.all([Effect.flip(source.fetch("STK5")), source.fetch("STK5")]))
      assert.strictEqual(first._tag, "SourceUnavailable")
      assert.isTrue(isRetryable(first))
      assert.strictEqual(second.bytes.byteLength, jpeg.byteLength)
      assert.strictEqual(calls, 2)
    }))

  it.live("403 is permanent; 429 is retryable", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer
      server.route("/forbidden", (_q, response) => void response.writeHead(403).end())
      server.route("/slow-down", (_q, response) => void response.writeHead(429).end())
      const [forbidden, throttled] = yield* withSource({ IMAGE_SOURCE: `${server.baseUrl}/{stock_no}` }, (source) =>
        Effect.all([Effect.flip(source.fetch("forbidden")), Effect.flip(source.fetch("slow-down"))]))
      assert.strictEqual(forbidden._tag, "SourceFailed")
      assert.isFalse(isRetryable(forbidden))
      assert.strictEqual(throttled._tag, "SourceUnavailable")
      assert.isTrue(isRetryable(throttled))
    }))

  it.live("follows a redirect on the same host, refuses one to another host without calling it", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const server = yield* scriptedServer
      const jpeg = yield* bytesOf(join(set.folder, "STK000005.jpg"))
      server.route("/img/moved", (_q, response) => void response.writeHead(301, { location: "/files/moved.jpg" }).end())
      server.route("/files/moved.jpg", sendBytes(jpeg))
      server.route("/img/elsewhere", (_q, response) =>
        void response.writeHead(302, { location: `${server.otherHostUrl}/files/elsewhere.jpg` }).end())
      server.route("/files/elsewhere.jpg", sendBytes(jpeg))
      server.route("/img/loop", (_q, response) => void response.writeHead(302, { location: "/img/loop" }).end())
      const config = { IMAGE_SOURCE: `${server.baseUrl}/img/{stock_no}` }

      const moved = yield* withSource(config, (source) => source.fetch("moved"))
      assert.strictEqual(moved.location, `${server.baseUrl}/files/moved.jpg`)

      const refused = yield* failure(withSource(config, (source) => source.fetch("elsewhere")))
      assert.strictEqual(refused._tag, "SourceRefused")
      assert.include(refused.message, "another host")
      assert.isFalse(isRetryable(refused))
      assert.deepStrictEqual(server.hits.filter((hit) => hit.path === "/files/elsewhere.jpg"), [])

      const looped = yield* failure(withSource(config, (source) => source.fetch("loop")))
      assert.strictEqual(looped._tag, "SourceRefused")
      assert.include(looped.message, "more than 5 redirects")

      // the other host becomes acceptable once it is allowed explicitly
      const allowed = yield* withSource({ ...config, IMAGE_ALLOWED_HOSTS: `localhost:${server.port}` }, (source) =>
        source.fetch("elsewhere"))
      assert.strictEqual(allowed.location, `${server.otherHostUrl}/files/elsewhere.jpg`)
    }))

  it.live("a body over the byte limit is refused, with or without Content-Length", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer
      const big = Buffer.alloc(300_000)
      Buffer.from([0xff, 0xd8, 0xff, 0xe0]).copy(big)
      server.route("/declared", sendBytes(big))
      let streamed = 0
      server.route("/chunked", (_q, response) => {
        response.writeHead(200, { "content-type": "image/jpeg" })
        const write = () => {
          // far more than the limit if nobody stops reading
          while (streamed < 50_000_000) {
            streamed += 16_384
            if (!response.write(big.subarray(0, 16_384))) return void response.once("drain", write)
          }
          response.end()
        }
        write()
      })
      const config = { IMAGE_SOURCE: `${server.baseUrl}/{stock_no}`, IMAGE_MAX_BYTES: "100kB" }
      const declared = yield* failure(withSource(config, (source) => source.fetch("declared")))
      assert.strictEqual(declared._tag, "SourceTooLarge")
      assert.include(declared.message, "Content-Length")
      const chunked = yield* failure(withSource(config, (source) => source.fetch("chunked")))
      assert.strictEqual(chunked._tag, "SourceTooLarge")
      assert.isFalse(isRetryable(chunked))
      assert.isBelow(streamed, 10_000_000, "the download stopped early")
    }))

  it.live("a body that does not start like an image is abandoned after its first bytes", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer
      let written = 0
      server.route("/page", (_q, response) => {
        response.writeHead(200, { "content-type": "text/html" })
        const chunk = Buffer.from("<html>".padEnd(16_384, " "))
        const write = () => {
          while (written < 20_000_000) {
            written += chunk.length
            if (!response.write(chunk)) return void response.once("drain", write)
          }
          response.end()
        }
        write()
      })
      const error = yield* failure(withSource({ IMAGE_SOURCE: `${server.baseUrl}/{stock_no}` }, (s) => s.fetch("page")))
      assert.strictEqual(error._tag, "NotAnImage")
      assert.isBelow(written, 10_000_000)
    }))

  it.live("a server that does not answer in time is a retryable timeout", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer
      server.route("/hang", () => {})
      const started = Date.now()
      const error = yield* failure(
        withSource({ IMAGE_SOURCE: `${server.baseUrl}/{stock_no}`, IMAGE_TIMEOUT: "300 millis" }, (s) => s.fetch("hang"))
      )
      assert.strictEqual(error._tag, "SourceUnavailable")
      assert.include(error.message, "timed out")
      assert.isTrue(isRetryable(error))
      assert.isBelow(Date.now() - started, 5_000)
    }))

  it.live("a refused connection is a retryable network error", () =>
    Effect.gen(function*() {
      const port = yield* Effect.scoped(Effect.map(scriptedServer, (server) => server.port)) // closed again
      const error = yield* failure(withSource({ IMAGE_SOURCE: `http://127.0.0.1:${port}/{stock_no}` }, (s) => s.fetch("x")))
      assert.strictEqual(error._tag, "SourceUnavailable")
      assert.include(error.message, "network error")
      assert.isTrue(isRetryable(error))
    }))

  it.live("a stock number that could leave the path is refused before any request", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer
      const config = { IMAGE_SOURCE: `${server.baseUrl}/img/{stock_no}` }
      for (const id of ["../admin", "..", "a/b", "a%2Fb", "", "x".repeat(65), "a?b", "a b"]) {
        const error = yield* failure(withSource(config, (source) => source.fetch(id)))
        assert.strictEqual(error._tag, "SourceRefused", id)
      }
      assert.deepStrictEqual(server.hits, [])
    }))

  it.live("an IMAGE_SOURCE without {stock_no} fails when the layer is built", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(sourceLayer({ IMAGE_SOURCE: "http://127.0.0.1:1/fixed.jpg" })))
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, "{stock_no}")
      const missing = yield* Effect.flip(Layer.build(sourceLayer({})))
      assert.include(missing.message, "IMAGE_SOURCE")
    }))
})

describe("ImageSource over file://", () => {
  it.live("reads files under the base directory only", () =>
    Effect.gen(function*() {
      const set = yield* sampleSet()
      const root = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "image-source-")))
      const base = join(root, "images")
      yield* Effect.promise(async () => {
        await mkdir(base)
        await writeFile(join(base, "STK1.jpg"), await readFile(join(set.folder, "STK000005.jpg")))
        await writeFile(join(root, "secret.jpg"), await readFile(join(set.folder, "STK000005.jpg")))
        await symlink(join(root, "secret.jpg"), join(base, "LINK.jpg"))
        await writeFile(join(base, "TEXT.jpg"), "hello")
        await writeFile(join(base, "BIG.jpg"), Buffer.alloc(200_000, 0xff))
      })
      const config = { IMAGE_SOURCE: `${pathToFileURL(base).href}/{stock_no}.jpg`, IMAGE_MAX_BYTES: "100kB" }
      const image = yield* withSource(config, (source) => source.fetch("STK1"))
      assert.strictEqual(image.type.format, "jpeg")
      assert.strictEqual(image.location, join(base, "STK1.jpg"))

      const outcome = (id: string) => withSource(config, (source) => Effect.flip(source.fetch(id))).pipe(Effect.map((e) => e._tag))
      assert.strictEqual(yield* outcome("MISSING"), "ImageNotFound")
      assert.strictEqual(yield* outcome("LINK"), "SourceRefused")
      assert.strictEqual(yield* outcome("TEXT"), "NotAnImage")
      assert.strictEqual(yield* outcome("BIG"), "SourceTooLarge")
      assert.strictEqual(yield* outcome("../secret"), "SourceRefused")
    }))
})

describe("ImageSource.layerMemory", () => {
  const jpeg = Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 0, 0xff, 0xd9)

  it.effect("serves images by stock number with the same checks and errors", () =>
    Effect.gen(function*() {
      const source = yield* ImageSource
      const image = yield* source.fetch("STK1")
      assert.deepStrictEqual([image.bytes, image.type.format, image.location], [jpeg, "jpeg", "memory:STK1"])
      const outcome = (id: string) => Effect.map(Effect.flip(source.fetch(id)), (error) => error._tag)
      assert.strictEqual(yield* outcome("MISSING"), "ImageNotFound")
      assert.strictEqual(yield* outcome("TEXT"), "NotAnImage")
      assert.strictEqual(yield* outcome("../STK1"), "SourceRefused")
      assert.strictEqual(yield* outcome("toString"), "ImageNotFound")
    }).pipe(Effect.provide(ImageSource.layerMemory({ STK1: jpeg, TEXT: Buffer.from("hello") }))))
})
