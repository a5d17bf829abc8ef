/**
 * The thumbnail pipeline's state record and the object keys it writes.
 *
 * `{"stock_no":"STK675849"}` → `{…,"has_raw":true}` → `{…,"size_200":true}` → `{…,"size_100":true}`.
 */
import { Config, Option, Schema } from "effect"
import { STOCK_NO, STOCK_NO_RULE } from "../../domain/stockNo.ts"
import { setting } from "../../services/settings.ts"

/** Stock numbers name files and object keys, so they keep to a safe alphabet. */
export const StockNo = Schema.String.check(
  Schema.isPattern(STOCK_NO, { message: `stock_no must be ${STOCK_NO_RULE} (it names files and object keys)` })
)

/** `size_N`, a positive width of at most five digits. */
const SizeFlag = Schema.TemplateLiteral(["size_", Schema.String.check(Schema.isPattern(/^[1-9][0-9]{0,4}$/))])

/**
 * `stock_no`, `has_raw` once the raw image is stored, and one `size_N` flag per thumbnail made.
 * Flags of sizes no longer configured are kept as they are; other keys are dropped.
 */
export const ThumbnailRecord = Schema.StructWithRest(
  Schema.Struct({
    stock_no: StockNo,
    has_raw: Schema.optionalKey(Schema.Boolean)
  }),
  [Schema.Record(SizeFlag, Schema.Boolean)]
)
export type ThumbnailRecord = typeof ThumbnailRecord.Type

export const sizeFlag = (size: number): `size_${number}` => `size_${size}`

export const hasSize = (record: ThumbnailRecord, size: number): boolean => record[sizeFlag(size)] === true

export const rawKeyPrefix = (stockNo: string) => `raw/${stockNo}.`
export const rawKey = (stockNo: string, extension: string) => `raw/${stockNo}.${extension}`
export const thumbnailKey = (size: number, stockNo: string) => `thumbnails/${size}/${stockNo}.jpg`

export const MAX_THUMBNAIL_WIDTH = 4096

/** Widths from text like `100,200`: positive integers up to 4096, largest first, no repeats; or why not. */
export const parseSizes = (text: string): ReadonlyArray<number> | string => {
  const parts = text.split(",").map((part) => part.trim()).filter((part) => part !== "")
  if (parts.length === 0) return "THUMBNAIL_SIZES must list at least one width, like 100,200"
  const sizes = new Set<number>()
  for (const part of parts) {
    const size = /^[0-9]+$/.test(part) ? Number(part) : Number.NaN
    if (!Number.isInteger(size) || size < 1 || size > MAX_THUMBNAIL_WIDTH) {
      return `THUMBNAIL_SIZES: "${part}" is not a width from 1 to ${MAX_THUMBNAIL_WIDTH}`
    }
    sizes.add(size)
  }
  return [...sizes].sort((a, b) => b - a)
}

export const normalizeSizes = (sizes: ReadonlyArray<number>): ReadonlyArray<number> => {
  const parsed = parseSizes(sizes.join(","))
  if (typeof parsed === "string") throw new Error(parsed)
  return parsed
}

/** `THUMBNAIL_SIZES`, default `100,200`, largest first. */
export const ThumbnailSizesConfig: Config.Config<ReadonlyArray<number>> = setting(
  "THUMBNAIL_SIZES",
  `widths from 1 to ${MAX_THUMBNAIL_WIDTH} separated by commas, such as "100,200"`,
  (text) => {
    const parsed = parseSizes(text)
    return typeof parsed === "string" ? Option.none() : Option.some(parsed)
  }
).pipe(Config.withDefault<ReadonlyArray<number>>([200, 100]))
