/**
 * Where raw images come from: `IMAGE_SOURCE`, a template with `{stock_no}`, either an
 * `http(s)://` URL or a `file://` path.
 *
 * - Only the template's own host (plus `IMAGE_ALLOWED_HOSTS`) or its base directory is ever read:
 *   a redirect elsewhere, a downgrade from https to http, or a path that resolves outside the base
 *   directory (`..`, a symlink) is refused.
 * - HTTP goes through Node's fetch, with one timeout for the whole download,
 *   redirects followed by hand (at most 5), the status checked and the body read up to a byte limit.
 * - The body must be an image by its magic bytes; the `Content-Type` header is not trusted.
 *
 * Failures are typed: `SourceUnavailable` (timeouts, network errors, 408/429/5xx) is retryable;
 * every other error is permanent.
 *
 * The implementation is `imageSource/url.ts`, loaded when a layer is built; `layerMemory` serves
 * images from memory for unit tests.
 */
import { dirname, resolve, sep } from "node:path"
import { fileURLToPath } from "node:url"
import { Config, Context, Duration, Effect, Layer, Schema } from "effect"
import { type ImageType, SNIFF_BYTES, sniffImageType } from "../domain/ImageType.ts"
import { STOCK_NO, STOCK_NO_RULE } from "../domain/stockNo.ts"
import { byteSizeSetting, durationSetting, listSetting, required } from "./settings.ts"

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

export const PLACEHOLDER = "{stock_no}"

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

export const ImageSourceConfig: Config.Config<ImageSourceSettings> = Config.all({
  template: Config.schema(Template, "IMAGE_SOURCE").pipe(
    required(
      "IMAGE_SOURCE",
      `a template for where images are read, with ${PLACEHOLDER} in an http(s):// URL or a file:// path, such as ` +
        `https://images.example.com/${PLACEHOLDER}.jpg or file:///data/raw/${PLACEHOLDER}.jpg (npm start saves one for its samples)`
    )
  ),
  timeout: durationSetting("IMAGE_TIMEOUT", { positive: true }).pipe(Config.withDefault(Duration.seconds(30))),
  maxBytes: byteSizeSetting("IMAGE_MAX_BYTES").pipe(Config.withDefault(25_000_000)),
  allowedHosts: listSetting("IMAGE_ALLOWED_HOSTS", "images.example.com,cdn.example.com:8443").pipe(Config.withDefault([])),
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

export class ImageSource extends Context.Service<ImageSource, {
  /** `IMAGE_SOURCE`, for people. */
  readonly template: string
  /** The raw image of one stock number. */
  fetch(stockNo: string): Effect.Effect<SourceImage, ImageSourceError>
}>()("pipeline/services/ImageSource") {
  /** Settings from the environment; HTTP over Node's fetch (keep-alive connections). */
  static readonly layer: Layer.Layer<ImageSource, Config.ConfigError> = Layer.effect(
    ImageSource,
    Effect.gen(function*() {
      const settings = yield* ImageSourceConfig
      const url = yield* Effect.promise(() => import("./imageSource/url.ts"))
      return yield* url.make(settings)
    })
  )

  /**
   * Images from memory by stock number, for unit tests: the same stock number check, an unknown
   * one is `ImageNotFound` and bytes that are not an image are `NotAnImage`.
   */
  static readonly layerMemory = (images: Readonly<Record<string, Uint8Array>>): Layer.Layer<ImageSource> =>
    Layer.succeed(
      ImageSource,
      ImageSource.of({
        template: "memory:{stock_no}",
        fetch: (stockNo) =>
          Effect.suspend((): Effect.Effect<SourceImage, ImageSourceError> => {
            const location = `memory:${stockNo}`
            if (!STOCK_NO.test(stockNo)) {
              return Effect.fail(new SourceRefused({ message: `stock_no ${JSON.stringify(stockNo)} is not ${STOCK_NO_RULE}`, location }))
            }
            const bytes = Object.hasOwn(images, stockNo) ? images[stockNo] : undefined
            if (bytes === undefined) return Effect.fail(new ImageNotFound({ message: `no image for ${stockNo} in memory`, location }))
            const type = sniffImageType(bytes.subarray(0, SNIFF_BYTES))
            return type === undefined
              ? Effect.fail(new NotAnImage({ message: `not a JPEG, PNG, GIF, WebP, TIFF or AVIF image: ${location}`, location }))
              : Effect.succeed({ bytes, type, location })
          })
      })
    )
}
