/**
 * Log lines the way Lambda reads them. Lambda's runtime client gives every `console` method its
 * own level (console.error is ERROR, console.warn WARN, ...), which its advanced logging controls
 * filter by (`AWS_LAMBDA_LOG_LEVEL`) and, with `AWS_LAMBDA_LOG_FORMAT=JSON`, write as
 * `{"timestamp","level","requestId","message"}`. So each Effect level goes to its own method, with
 * the line as an object under JSON (the client encodes it once) and as one JSON text otherwise.
 *
 * Never in a line: a receipt handle (SQS's error texts quote it), nor long texts (a record body,
 * an event): every text is cut to an excerpt.
 */
import { Cause, Config, Effect, Layer, Logger, LogLevel, Option, References } from "effect"
import { LogLevelConfig } from "../services/settings.ts"

/** The longest text a line carries, per field. */
export const MAX_LOGGED_TEXT = 500

/** SQS quotes the receipt handle in its errors: `The input receipt handle "AQEB…" is not a valid receipt handle.` */
const receiptHandle = /(receipt handle\s+)(["'])[^"'\s]+\2/gi
const receiptHandleField = /("?receipt_?handle"?\s*[:=]\s*)"[^"]*"/gi

/** `text` without receipt handles, cut to `MAX_LOGGED_TEXT` characters. */
export const scrub = (text: string, max = MAX_LOGGED_TEXT): string => {
  const clean = text.replace(receiptHandle, "$1$2(redacted)$2").replace(receiptHandleField, `$1"(redacted)"`)
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean
}

const scrubValue = (value: unknown): unknown =>
  typeof value === "string" ? scrub(value) : typeof value === "object" && value !== null ? scrub(JSON.stringify(value)) : value

const methods: Record<LogLevel.LogLevel, "error" | "warn" | "info" | "debug" | "trace" | undefined> = {
  All: "trace",
  Fatal: "error",
  Error: "error",
  Warn: "warn",
  Info: "info",
  Debug: "debug",
  Trace: "trace",
  None: undefined
}

const text = (message: unknown): string =>
  Array.isArray(message) ? message.map((part) => (typeof part === "string" ? part : JSON.stringify(part))).join(" ") : String(message)

/** The object a log line carries: its message and annotations, scrubbed and cut; the cause's text if any. */
export const lineOf = (options: Logger.Options<unknown>): Record<string, unknown> => {
  const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
  const line: Record<string, unknown> = { message: scrub(text(options.message)) }
  for (const [key, value] of Object.entries(annotations)) if (key !== "message") line[key] = scrubValue(value)
  if (options.cause.reasons.length > 0) line["cause"] = scrub(Cause.pretty(options.cause), 2 * MAX_LOGGED_TEXT)
  return line
}

/** Lambda's logger: each level to its console method; an object under the JSON log format, one JSON text otherwise. */
export const lambdaLogger = Logger.make((options: Logger.Options<unknown>) => {
  const method = methods[options.logLevel]
  if (method === undefined) return
  const line = lineOf(options)
  if (process.env["AWS_LAMBDA_LOG_FORMAT"]?.toUpperCase() === "JSON") {
    console[method](line)
  } else {
    console[method](JSON.stringify({ level: options.logLevel.toUpperCase(), ...line }))
  }
})

/** Lambda's application log levels, as Effect's. */
const lambdaLevels: Record<string, LogLevel.LogLevel> = {
  TRACE: "Trace",
  DEBUG: "Debug",
  INFO: "Info",
  WARN: "Warn",
  ERROR: "Error",
  FATAL: "Fatal"
}

/**
 * The least severe level logged: `PIPELINE_LOG_LEVEL` when set, else the function's application
 * log level (`AWS_LAMBDA_LOG_LEVEL`, from its LoggingConfig), else Info. Lines below it cost nothing.
 */
export const lambdaLogLevelLayer: Layer.Layer<never, Config.ConfigError> = Layer.unwrap(Effect.gen(function*() {
  const own = yield* Config.option(Config.String("PIPELINE_LOG_LEVEL"))
  const lambda = lambdaLevels[(yield* Config.option(Config.String("AWS_LAMBDA_LOG_LEVEL"))).pipe(Option.getOrElse(() => "")).toUpperCase()]
  const level = Option.isNone(own) && lambda !== undefined ? lambda : yield* LogLevelConfig
  return Layer.succeed(References.MinimumLogLevel, level)
}))

/** Lambda's logger in place of the default one, from its level up. */
export const lambdaLoggingLayer: Layer.Layer<never, Config.ConfigError> = Layer.mergeAll(
  Logger.layer([lambdaLogger]),
  lambdaLogLevelLayer
)
