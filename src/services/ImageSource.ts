/**
 * Where raw images come from: `IMAGE_SOURCE`, a template with `{stock_no}`, either an
 * `http(s)://` URL or a `file://` path.
 *
 * - Only the template's own host (plus `IMAGE_ALLOWED_HOSTS`) or its base directory is ever read:
 *   a redirect elsewhere, a downgrade from https to http, or a path that resolves outside the base
 *   directory (`..`, a symlink) is refused.
 * - HTTP goes through Effect's HTTP client (node:http), with one timeout for the whole download,
 *   redirects followed by hand (at most 5), the status checked and the body read up to a byte limit.
 * - The body must be an image by its magic bytes; the `Content-Type` header is not trusted.
 *
 * Failures are typed: `SourceUnavailable` (timeouts, network errors, 408/429/5xx) is retryable;
 * every other error is permanent.
 */
import { open, realpath } from "node:fs/promises"
import { dirname, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { ByteSize, Config, Context, Duration, Effect, Layer, Schema, Stream } from "effect"
import { HttpClient, type HttpClientError, HttpClientRequest, type HttpClientResponse } from "effect/http"
import { type ImageType, SNIFF_BYTES, sniffImageType } from "../domain/ImageType.ts"
import { STOCK_NO, STOCK_NO_RULE } from "../domain/stockNo.ts"

/** 404/410 over HTTP, or no such file. Permanent. */
export class ImageNotFound extends Schema.TaggedError<ImageNotFound>()("ImageNotFound", {
  message: Schema.String,
  location: Schema.String
}) {}

/** The body is not an image this pipeline reads (by its magic bytes). Permanent. */
export class NotAnImage extends Schema.TaggedError<NotAnImage>()("NotAnImage", {
  message: Schema.String,
  location: Schema.String
}) {}

/** The body is larger than `IMAGE_MAX_BYTES`. Permanent. */
export class SourceTooLarge extends Schema.TaggedError<SourceTooLarge>()("SourceTooLarge", {
  message: Schema.String,
  location: Schema.String,
  limit: Schema.Number
}) {}

/** Outside the allowed host or base directory, a bad redirect, a bad id. Permanent. */
export class SourceRefused extends Schema.TaggedError<SourceRefused>()("SourceRefused", {
  message: Schema.String,
  location: Schema.String
}) {}

/** The source answered, and will keep answering, no (403, 400, a file that cannot be read). Permanent. */
export class SourceFailed extends Schema.TaggedError<SourceFailed>()("SourceFailed", {
  message: Schema.String,
  location: Schema.String
}) {}

/** A timeout, a network error, 408, 429 or 5xx: worth another attempt. */
export class SourceUnavailable extends Schema.TaggedError<SourceUnavailable>()("SourceUnavailable", {
  message: Schema.String,
  location: Schema.String
}) {
  readonly retryable = true
}

export type ImageSourceError = ImageNotFound | NotAnImage | SourceTooLarge | SourceRefused | SourceFailed | SourceUnavailable

// ---------------------------------------------------------------------------------------------
// the template

const PLACEHOLDER = "{stock_no}"

export type SourceTemplate =
  | { readonly _tag: "Http"; readonly template: string; readonly host: string; readonly protocol: string }
  | { readonly _tag: "File"; readonly template: string; readonly baseDirectory: string }

/** Checks an `IMAGE_SOURCE` template; returns a reason when it is not usable. */
export const parseTemplate = (template: string): SourceTemplate | string => {
  if (!template.includes(PLACEHOLDER)) return `IMAGE_SOURCE must contain ${PLACEHOLDER}: ${template}`
  let a: URL, b: URL
  try {
    a = new URL(template.replaceAll(PLACEHOLDER, "a"))
    b = new URL(template.replaceAll(PLACEHOLDER, "b-2"))
  } catch {
    return `IMAGE_SOURCE is not a URL (http://, https:// or file://): ${template}`
  }
  if (a.protocol === "http:" || a.protocol === "https:") {
    if (a.host !== b.host || a.username !== "" || a.password !== "") {
      return `IMAGE_SOURCE must name a fixed host, without credentials, with ${PLACEHOLDER} in the path or query: ${template}`
    }
    return { _tag: "Http", template, host: a.host, protocol: a.protocol }
  }
  if (a.protocol === "file:") {
    if (a.host !== "") return `IMAGE_SOURCE file URLs must be local (file:///path/...): ${template}`
    const marker = "__stock_no_placeholder__"
    const path = fileURLToPath(new URL(template.replaceAll(PLACEHOLDER, marker)))
    const prefix = path.slice(0, path.indexOf(marker))
    const baseDirectory = prefix.endsWith(sep) ? prefix.slice(0, -1) : dirname(prefix)
    if (baseDirectory === "" || resolve(baseDirectory) === resolve("/")) {
      return `IMAGE_SOURCE must not read from the root directory: ${template}`
    }
    return { _tag: "File", template, baseDirectory: resolve(baseDirectory) }
  }
  return `IMAGE_SOURCE must be http://, https:// or file://, not ${a.protocol}: ${template}`
}

/** A URL for messages (which end up in the dead-letter queue): without its query, which may hold a token. */
const shown = (url: URL) => (url.search === "" ? url.href : `${url.origin}${url.pathname}?…`)

const isInside = (directory: string, path: string) => path.startsWith(directory.endsWith(sep) ? directory : directory + sep)

// ---------------------------------------------------------------------------------------------
// settings

export interface ImageSourceSettings {
  /** `IMAGE_SOURCE`, checked by `parseTemplate`. */
  readonly template: string
  /** The whole download: every redirect and the body. */
  readonly timeout: Duration.Duration
  readonly maxBytes: number
  /** Hosts (`host` or `host:port`) redirects may go to, besides the template's own. */
  readonly allowedHosts: ReadonlyArray<string>
  readonly maxRedirects: number
}

const Template = Schema.String.check(Schema.makeFilter((template: string) => {
  const parsed = parseTemplate(template)
  return typeof parsed === "string" ? parsed : true
}))

const byteSizeOrBytes = (name: string) =>
  Config.ByteSize(name).pipe(
    Config.map((size) => Number(ByteSize.toBigInt(size))),
    Config.orElse(() => Config.Int(name))
  )

export const ImageSourceConfig: Config.Config<ImageSourceSettings> = Config.all({
  template: Config.schema(Template, "IMAGE_SOURCE"),
  timeout: Config.Duration("IMAGE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  maxBytes: byteSizeOrBytes("IMAGE_MAX_BYTES").pipe(Config.withDefault(25_000_000)),
  allowedHosts: Config.Array(Schema.NonEmptyString, "IMAGE_ALLOWED_HOSTS").pipe(Config.withDefault([])),
  maxRedirects: Config.succeed(5)
})

// ---------------------------------------------------------------------------------------------
// the service

export interface SourceImage {
  readonly bytes: Uint8Array
  readonly type: ImageType
  /** Where the bytes finally came from (after redirects; an URL without its query). */
  readonly location: string
}

const errnoCode = (cause: unknown) => {
  const code = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}
const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const isSourceError = (u: unknown): u is ImageSourceError =>
  u instanceof ImageNotFound || u instanceof NotAnImage || u instanceof SourceTooLarge || u instanceof SourceRefused ||
  u instanceof SourceFailed || u instanceof SourceUnavailable

const notAnImage = (bytes: Uint8Array, location: string) => {
  const preview = bytes.length === 0 ? "an empty body" : `first bytes ${Buffer.from(bytes.subarray(0, 8)).toString("hex")}`
  return new NotAnImage({ message: `not a JPEG, PNG, GIF, WebP, TIFF or AVIF image (${preview}): ${location}`, location })
}

const checkImage = (bytes: Uint8Array, location: string) => {
  const type = sniffImageType(bytes)
  return type === undefined ? Effect.fail(notAnImage(bytes, location)) : Effect.succeed(type)
}

const tooLarge = (location: string, limit: number, size: string) =>
  new SourceTooLarge({ message: `${location} is ${size}, over the limit of ${limit} bytes (IMAGE_MAX_BYTES)`, location, limit })

export const makeImageSource = (settings: ImageSourceSettings, client: HttpClient.HttpClient): ImageSource["Service"] => {
  const parsed = parseTemplate(settings.template)
  if (typeof parsed === "string") throw new Error(parsed)
  const template = parsed
  const allowedHosts = new Set([
    ...(template._tag === "Http" ? [template.host.toLowerCase()] : []),
    ...settings.allowedHosts.map((host) => host.toLowerCase())
  ])
  const scoped = HttpClient.withScope(client)

  const transportFailure = (location: string) => (error: HttpClientError.HttpClientError) =>
    error.reason._tag === "InvalidUrlError"
      ? new SourceRefused({ message: `invalid URL ${location}: ${error.message}`, location })
      : new SourceUnavailable({ message: `network error for ${location}: ${describe(error.reason.cause ?? error)}`, location })

  /** Reads a 2xx body up to the byte limit, stopping early when its first bytes are not an image. */
  const readBody = (response: HttpClientResponse.HttpClientResponse, location: string) =>
    Effect.gen(function*() {
      const declared = response.headers["content-length"] === undefined ? undefined : Number(response.headers["content-length"])
      if (declared !== undefined && declared > settings.maxBytes) {
        return yield* tooLarge(location, settings.maxBytes, `${declared} bytes (Content-Length)`)
      }
      // with a declared length, one buffer and no copy; otherwise chunks joined at the end
      const preallocated = declared !== undefined && Number.isSafeInteger(declared) ? new Uint8Array(declared) : undefined
      const chunks: Array<Uint8Array> = []
      let size = 0
      let sniffed = false
      const head = () => (preallocated ?? Buffer.concat(chunks)).subarray(0, Math.min(size, SNIFF_BYTES))
      // whole arrays of chunks at a time: one effect per read, not per chunk
      yield* Stream.runForEachArray(response.stream, (array) =>
        Effect.suspend((): Effect.Effect<void, SourceTooLarge | SourceFailed | NotAnImage> => {
          for (const chunk of array) {
            if (size + chunk.byteLength > settings.maxBytes) {
              return Effect.fail(tooLarge(location, settings.maxBytes, `more than ${settings.maxBytes} bytes`))
            }
            if (preallocated !== undefined) {
              if (size + chunk.byteLength > preallocated.byteLength) {
                return Effect.fail(new SourceFailed({ message: `${location} sent more bytes than its Content-Length`, location }))
              }
              preallocated.set(chunk, size)
            } else chunks.push(chunk)
            size += chunk.byteLength
          }
          if (!sniffed && size >= SNIFF_BYTES) {
            sniffed = true
            return Effect.asVoid(checkImage(head(), location))
          }
          return Effect.void
        })).pipe(
          Effect.catchTag("HttpClientError", (error) =>
            Effect.fail(
              new SourceUnavailable({ message: `download of ${location} broke off: ${describe(error.reason.cause ?? error)}`, location })
            ))
        )
      if (preallocated !== undefined && size !== preallocated.byteLength) {
        return yield* new SourceUnavailable({
          message: `download of ${location} ended after ${size} of ${preallocated.byteLength} bytes`,
          location
        })
      }
      return preallocated ?? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
    })

  type Hop = { readonly _tag: "Body"; readonly bytes: Uint8Array } | { readonly _tag: "Redirect"; readonly to: URL }

  const hop = (url: URL) =>
    Effect.scoped(Effect.gen(function*() {
      const location = shown(url)
      const response = yield* scoped.execute(HttpClientRequest.get(url, { headers: { accept: "image/*" } })).pipe(
        Effect.mapError(transportFailure(location))
      )
      const status = response.status
      if (status >= 200 && status < 300) {
        return { _tag: "Body", bytes: yield* readBody(response, location) } satisfies Hop
      }
      if (status >= 300 && status < 400) {
        const header = response.headers["location"]
        if (header === undefined) {
          return yield* new SourceFailed({ message: `${location} answered ${status} without a Location`, location })
        }
        let to: URL
        try {
          to = new URL(header, url)
        } catch {
          return yield* new SourceRefused({ message: `${location} redirects to an invalid URL: ${header}`, location })
        }
        return { _tag: "Redirect", to } satisfies Hop
      }
      if (status === 404 || status === 410) {
        return yield* new ImageNotFound({ message: `${location} answered ${status}: no such image`, location })
      }
      if (status === 408 || status === 425 || status === 429 || status >= 500) {
        return yield* new SourceUnavailable({ message: `${location} answered ${status}`, location })
      }
      return yield* new SourceFailed({ message: `${location} answered ${status}`, location })
    }))

  const checkRedirect = (from: URL, to: URL) => {
    const location = shown(to)
    if (to.protocol !== "http:" && to.protocol !== "https:") {
      return new SourceRefused({ message: `redirect from ${shown(from)} to a ${to.protocol} URL refused: ${location}`, location })
    }
    if (from.protocol === "https:" && to.protocol === "http:") {
      return new SourceRefused({ message: `redirect from https to http refused: ${shown(from)} -> ${location}`, location })
    }
    if (!allowedHosts.has(to.host.toLowerCase())) {
      return new SourceRefused({
        message: `redirect to another host refused: ${shown(from)} -> ${location} (allowed: ${[...allowedHosts].join(", ")})`,
        location
      })
    }
    return undefined
  }

  const fetchHttp = (start: URL) =>
    Effect.gen(function*() {
      let url = start
      for (let redirects = 0;; redirects++) {
        const result = yield* hop(url)
        if (result._tag === "Body") {
          const type = yield* checkImage(result.bytes.subarray(0, SNIFF_BYTES), shown(url))
          return { bytes: result.bytes, type, location: shown(url) } satisfies SourceImage
        }
        if (redirects >= settings.maxRedirects) {
          return yield* new SourceRefused({
            message: `more than ${settings.maxRedirects} redirects from ${shown(start)}`,
            location: shown(url)
          })
        }
        const refused = checkRedirect(url, result.to)
        if (refused !== undefined) return yield* refused
        url = result.to
      }
    }).pipe(
      Effect.timeoutOrElse({
        duration: settings.timeout,
        orElse: () =>
          Effect.fail(
            new SourceUnavailable({
              message: `download of ${shown(start)} timed out after ${Duration.format(settings.timeout)}`,
              location: shown(start)
            })
          )
      })
    )

  const fetchFile = (path: string, baseDirectory: string) =>
    Effect.tryPromise({
      try: async (): Promise<SourceImage> => {
        const location = path
        if (!isInside(baseDirectory, resolve(path))) {
          throw new SourceRefused({ message: `${path} is outside ${baseDirectory}`, location })
        }
        let real: string
        try {
          real = await realpath(path)
        } catch (cause) {
          const code = errnoCode(cause)
          if (code === "ENOENT" || code === "ENOTDIR") {
            throw new ImageNotFound({ message: `no such file: ${path}`, location })
          }
          throw cause
        }
        const realBase = await realpath(baseDirectory)
        if (!isInside(realBase, real)) {
          throw new SourceRefused({ message: `${path} resolves to ${real}, outside ${realBase}`, location })
        }
        const handle = await open(real, "r")
        try {
          const stat = await handle.stat()
          if (!stat.isFile()) throw new ImageNotFound({ message: `not a regular file: ${path}`, location })
          if (stat.size > settings.maxBytes) throw tooLarge(location, settings.maxBytes, `${stat.size} bytes`)
          const bytes = new Uint8Array(stat.size)
          let size = 0
          while (size < bytes.byteLength) {
            const { bytesRead } = await handle.read(bytes, size, bytes.byteLength - size, size)
            if (bytesRead === 0) break
            size += bytesRead
          }
          const body = bytes.subarray(0, size)
          const type = sniffImageType(body.subarray(0, SNIFF_BYTES))
          if (type === undefined) throw notAnImage(body, location)
          return { bytes: body, type, location }
        } finally {
          await handle.close()
        }
      },
      catch: (cause): ImageSourceError => {
        if (isSourceError(cause)) return cause
        const code = errnoCode(cause)
        if (code === "EACCES" || code === "EPERM" || code === "EISDIR" || code === "ELOOP") {
          return new SourceFailed({ message: `cannot read ${path}: ${describe(cause)}`, location: path })
        }
        return new SourceUnavailable({ message: `cannot read ${path}: ${describe(cause)}`, location: path })
      }
    })

  const fetch = Effect.fn("ImageSource.fetch")(function*(stockNo: string) {
    if (!STOCK_NO.test(stockNo)) {
      return yield* new SourceRefused({
        message: `stock_no ${JSON.stringify(stockNo)} is not ${STOCK_NO_RULE}`,
        location: stockNo
      })
    }
    const location = template.template.replaceAll(PLACEHOLDER, stockNo)
    if (template._tag === "File") return yield* fetchFile(fileURLToPath(new URL(location)), template.baseDirectory)
    const url = new URL(location)
    if (!allowedHosts.has(url.host.toLowerCase())) {
      return yield* new SourceRefused({ message: `${shown(url)} is not on an allowed host`, location: shown(url) })
    }
    return yield* fetchHttp(url)
  })

  return ImageSource.of({ template: settings.template, fetch })
}

export class ImageSource extends Context.Service<ImageSource, {
  /** `IMAGE_SOURCE`, for people. */
  readonly template: string
  /** The raw image of one stock number. */
  fetch(stockNo: string): Effect.Effect<SourceImage, ImageSourceError>
}>()("pipeline/services/ImageSource") {
  /** Settings from the environment; needs an `HttpClient`. */
  static readonly layerNoDeps: Layer.Layer<ImageSource, Config.ConfigError, HttpClient.HttpClient> = Layer.effect(
    ImageSource,
    Effect.gen(function*() {
      return makeImageSource(yield* ImageSourceConfig, yield* HttpClient.HttpClient)
    })
  )

  /** Settings from the environment, HTTP over node:http with keep-alive connections. */
  static readonly layer: Layer.Layer<ImageSource, Config.ConfigError> = ImageSource.layerNoDeps.pipe(
    Layer.provide(NodeHttpClient.layerNodeHttpOptions({ keepAlive: true }))
  )
}
