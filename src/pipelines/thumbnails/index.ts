/**
 * The thumbnail pipeline: for each stock number, download the raw image, then make one JPEG
 * thumbnail per configured width, largest first, each smaller one from the next larger.
 *
 * `{"stock_no":"STK675849"}` → download → `{…,"has_raw":true}` → thumbnail_200 →
 * `{…,"size_200":true}` → thumbnail_100 → `{…,"size_100":true}` → done.
 *
 * Configuration (environment):
 * - `THUMBNAIL_SIZES` (default `100,200`): widths, read when a runtime builds the pipeline
 *   (`thumbnailPipelineConfig`), since the router needs them.
 * - `IMAGE_SOURCE` (required), `IMAGE_TIMEOUT`, `IMAGE_MAX_BYTES`, `IMAGE_ALLOWED_HOSTS`: see
 *   `services/ImageSource.ts`.
 * - `THUMBNAIL_MAX_PIXELS`, `THUMBNAIL_MAX_PROGRESSIVE_PIXELS`: see `services/Image.ts`.
 */
import { type Config, Effect } from "effect"
import { definePipeline, done, mutation, type Pipeline } from "../../domain/Pipeline.ts"
import { hasSize, normalizeSizes, ThumbnailRecord, ThumbnailSizesConfig } from "./record.ts"
import { type DownloadError, type ThumbnailError, ThumbnailSteps } from "./steps.ts"

export * from "./record.ts"
export * from "./steps.ts"

export type ThumbnailPipeline = Pipeline<ThumbnailRecord, DownloadError | ThumbnailError, ThumbnailSteps>

/** The pipeline for explicit widths; its layer reads everything else from the environment. */
export const makeThumbnailPipeline = (widths: ReadonlyArray<number>): ThumbnailPipeline => {
  const sizes = normalizeSizes(widths)
  const download = mutation("download", (record: ThumbnailRecord) => ThumbnailSteps.use((steps) => steps.download(record)))
  const thumbnails = sizes.map((size) =>
    mutation(`thumbnail_${size}`, (record: ThumbnailRecord) => ThumbnailSteps.use((steps) => steps.thumbnail(record, size, sizes)))
  )
  return definePipeline({
    name: "thumbnails",
    schema: ThumbnailRecord,
    recordId: (record) => record.stock_no,
    router: (record) => {
      if (record.has_raw !== true) return download
      const next = sizes.findIndex((size) => !hasSize(record, size))
      return next === -1 ? done : thumbnails[next]!
    },
    initialRecord: (id) => ({ stock_no: id }),
    layer: ThumbnailSteps.layer
  })
}

/** The built-in pipeline, with the widths `THUMBNAIL_SIZES` configures. */
export const thumbnailPipelineConfig: Effect.Effect<ThumbnailPipeline, Config.ConfigError> = Effect.gen(function*() {
  return makeThumbnailPipeline(yield* ThumbnailSizesConfig)
})
