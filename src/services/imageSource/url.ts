/**
 * `ImageSource` by the `IMAGE_SOURCE` template: an `http(s)://` URL through Effect's HTTP client,
 * or a `file://` path; see `../ImageSource.ts` for the rules it keeps.
 */
import { open, realpath } from "node:fs/promises"
import { resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"
import { Duration, Effect, Stream } from "effect"
import { HttpClient, type HttpClientError, HttpClientRequest, type HttpClientResponse } from "effect/http"
import { SNIFF_BYTES, sniffImageType } from "../../domain/ImageType.ts"
import { STOCK_NO, STOCK_NO_RULE } from "../../domain/stockNo.ts"
import {
  ImageNotFound,
  ImageSource,
  type ImageSourceError,
  type ImageSourceSettings,
  NotAnImage,
  parseTemplate,
  PLACEHOLDER,
  SourceFailed,
  type SourceImage,
  SourceRefused,
  type SourceTemplate,
  SourceTooLarge,
  SourceUnavailable
} from "../ImageSource.ts"

/** A URL for messages (which end up in the dead-letter queue): without its query, which may hold a token. */
const shown = (url: URL) => (url.search === "" ? url.href : `${url.origin}${url.pathname}?…`)

const isInside = (directory: string, path: string) => path.startsWith(directory.endsWith(sep) ? directory : directory + sep)

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

/** The source `settings.template` names, over the `HttpClient` in context for http(s). */
export const make = (settings: ImageSourceSettings): Effect.Effect<ImageSource["Service"], never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const parsed = parseTemplate(settings.template)
    // ImageSourceConfig checked it already: a bad template here is a bug
    if (typeof parsed === "string") return yield* Effect.die(new Error(parsed))
    return makeWith(settings, parsed, yield* HttpClient.HttpClient)
  })

const makeWith = (settings: ImageSourceSettings, template: SourceTemplate, client: HttpClient.HttpClient): ImageSource["Service"] => {
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

