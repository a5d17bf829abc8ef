/**
 * `ImageSource` by the `IMAGE_SOURCE` template: an `http(s)://` URL through Node's fetch, or a
 * `file://` path; see `../ImageSource.ts` for the rules it keeps.
 */
import { open, realpath } from "node:fs/promises"
import { resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"
import { Duration, Effect } from "effect"
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
/** fetch's own errors ("fetch failed", "terminated") say why in their cause (ECONNREFUSED, a reset socket). */
const causeOf = (error: unknown) => (error instanceof TypeError && error.cause !== undefined ? error.cause : error)

const isSourceError = (u: unknown): u is ImageSourceError =>
  u instanceof ImageNotFound || u instanceof NotAnImage || u instanceof SourceTooLarge || u instanceof SourceRefused ||
  u instanceof SourceFailed || u instanceof SourceUnavailable

const notAnImage = (bytes: Uint8Array, location: string) => {
  const preview = bytes.length === 0 ? "an empty body" : `first bytes ${Buffer.from(bytes.subarray(0, 8)).toString("hex")}`
  return new NotAnImage({ message: `not a JPEG, PNG, GIF, WebP, TIFF or AVIF image (${preview}): ${location}`, location })
}

const tooLarge = (location: string, limit: number, size: string) =>
  new SourceTooLarge({ message: `${location} is ${size}, over the limit of ${limit} bytes (IMAGE_MAX_BYTES)`, location, limit })

/** The source `settings.template` names. */
export const make = (settings: ImageSourceSettings): Effect.Effect<ImageSource["Service"]> =>
  Effect.suspend(() => {
    const parsed = parseTemplate(settings.template)
    // ImageSourceConfig checked it already: a bad template here is a bug
    return typeof parsed === "string" ? Effect.die(new Error(parsed)) : Effect.succeed(makeWith(settings, parsed))
  })

/** Why a download stopped: the timeout, or a typed error from reading its body. */
type Stop = { readonly _tag: "Timeout" } | { readonly _tag: "Failed"; readonly error: ImageSourceError }

/** The status of an answer as the error it is, or undefined for 2xx and 3xx. */
const statusError = (status: number, location: string): ImageSourceError | undefined => {
  if (status >= 200 && status < 400) return undefined
  if (status === 404 || status === 410) return new ImageNotFound({ message: `${location} answered ${status}: no such image`, location })
  if (status === 408 || status === 425 || status === 429 || status >= 500) {
    return new SourceUnavailable({ message: `${location} answered ${status}`, location })
  }
  return new SourceFailed({ message: `${location} answered ${status}`, location })
}

const makeWith = (settings: ImageSourceSettings, template: SourceTemplate): ImageSource["Service"] => {
  const allowedHosts = new Set([
    ...(template._tag === "Http" ? [template.host.toLowerCase()] : []),
    ...settings.allowedHosts.map((host) => host.toLowerCase())
  ])
  const timeoutMillis = Duration.toMillis(settings.timeout)

  /**
   * Reads a 2xx body up to the byte limit, stopping early when its first bytes are not an image.
   * Throws an `ImageSourceError`; `stop` aborts the download when it ends early.
   */
  const readBody = async (response: Response, location: string, stop: AbortController): Promise<Uint8Array> => {
    const fail = (error: ImageSourceError): never => {
      stop.abort({ _tag: "Failed", error } satisfies Stop)
      throw error
    }
    const header = response.headers.get("content-length")
    const declared = header === null ? undefined : Number(header)
    if (declared !== undefined && declared > settings.maxBytes) {
      return fail(tooLarge(location, settings.maxBytes, `${declared} bytes (Content-Length)`))
    }
    // with a declared length, one buffer and no copy; otherwise chunks joined at the end
    const preallocated = declared !== undefined && Number.isSafeInteger(declared) ? new Uint8Array(declared) : undefined
    const chunks: Array<Uint8Array> = []
    let size = 0
    let sniffed = false
    const head = () => (preallocated ?? Buffer.concat(chunks)).subarray(0, Math.min(size, SNIFF_BYTES))
    if (response.body !== null) {
      const reader = response.body.getReader()
      while (true) {
        let read: Awaited<ReturnType<typeof reader.read>>
        try {
          read = await reader.read()
        } catch (cause) {
          if (stop.signal.aborted) throw cause
          return fail(new SourceUnavailable({ message: `download of ${location} broke off: ${describe(causeOf(cause))}`, location }))
        }
        if (read.done) break
        const chunk = read.value
        if (size + chunk.byteLength > settings.maxBytes) {
          return fail(tooLarge(location, settings.maxBytes, `more than ${settings.maxBytes} bytes`))
        }
        if (preallocated !== undefined) {
          if (size + chunk.byteLength > preallocated.byteLength) {
            return fail(new SourceFailed({ message: `${location} sent more bytes than its Content-Length`, location }))
          }
          preallocated.set(chunk, size)
        } else chunks.push(chunk)
        size += chunk.byteLength
        if (!sniffed && size >= SNIFF_BYTES) {
          sniffed = true
          if (sniffImageType(head()) === undefined) return fail(notAnImage(head(), location))
        }
      }
    }
    if (preallocated !== undefined && size !== preallocated.byteLength) {
      return fail(new SourceUnavailable({ message: `download of ${location} ended after ${size} of ${preallocated.byteLength} bytes`, location }))
    }
    return preallocated ?? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
  }

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

  /**
   * One download over Node's fetch (no HTTP client stack to load): every hop and the body under
   * one timeout, redirects followed by hand. Throws an `ImageSourceError`.
   */
  const download = async (start: URL, interrupted: AbortSignal): Promise<SourceImage> => {
    const stop = new AbortController()
    const timer = setTimeout(() => stop.abort({ _tag: "Timeout" } satisfies Stop), timeoutMillis)
    const signal = AbortSignal.any([stop.signal, interrupted])
    const timedOut = () =>
      new SourceUnavailable({
        message: `download of ${shown(start)} timed out after ${Duration.format(settings.timeout)}`,
        location: shown(start)
      })
    try {
      let url = start
      for (let redirects = 0;; redirects++) {
        const location = shown(url)
        // fetch refuses these outright: a permanent refusal, as any other unusable URL
        if (url.username !== "" || url.password !== "") {
          throw new SourceRefused({ message: `invalid URL ${location}: it holds credentials`, location })
        }
        let response: Response
        try {
          response = await globalThis.fetch(url, { headers: { accept: "image/*" }, redirect: "manual", signal })
        } catch (cause) {
          if (stop.signal.aborted) throw cause
          throw new SourceUnavailable({ message: `network error for ${location}: ${describe(causeOf(cause))}`, location })
        }
        const refused = statusError(response.status, location)
        if (refused !== undefined) {
          void response.body?.cancel().catch(() => undefined)
          throw refused
        }
        if (response.status < 300) {
          const bytes = await readBody(response, location, stop)
          const type = sniffImageType(bytes.subarray(0, SNIFF_BYTES))
          if (type === undefined) throw notAnImage(bytes, location)
          return { bytes, type, location }
        }
        void response.body?.cancel().catch(() => undefined)
        const header = response.headers.get("location")
        if (header === null) throw new SourceFailed({ message: `${location} answered ${response.status} without a Location`, location })
        let to: URL
        try {
          to = new URL(header, url)
        } catch {
          throw new SourceRefused({ message: `${location} redirects to an invalid URL: ${header}`, location })
        }
        if (redirects >= settings.maxRedirects) {
          throw new SourceRefused({ message: `more than ${settings.maxRedirects} redirects from ${shown(start)}`, location })
        }
        const elsewhere = checkRedirect(url, to)
        if (elsewhere !== undefined) throw elsewhere
        url = to
      }
    } catch (cause) {
      const reason = stop.signal.reason as Stop | undefined
      if (reason?._tag === "Timeout") throw timedOut()
      if (reason?._tag === "Failed") throw reason.error
      throw cause
    } finally {
      clearTimeout(timer)
    }
  }

  const fetchHttp = (start: URL) =>
    Effect.tryPromise({
      try: (signal) => download(start, signal),
      catch: (cause): ImageSourceError =>
        isSourceError(cause)
          ? cause
          : new SourceUnavailable({ message: `network error for ${shown(start)}: ${describe(causeOf(cause))}`, location: shown(start) })
    })

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

