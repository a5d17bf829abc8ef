/**
 * Settings read from the environment, each failing on a value it refuses with what it accepts:
 * `the setting PIPELINE_RETRY_FOR is invalid: expected a duration such as "10 seconds", "500 millis"
 * or "2 minutes", got "10s"`. Unset (or empty) stays unset, so `Config.withDefault` and
 * `Config.option` work as for any Config.
 */
import { ByteSize, Config, Duration, Effect, Layer, LogLevel, Option, References, Schema, SchemaIssue } from "effect"

/** The error of a setting whose value is refused: names the setting, what it accepts and the value. */
export const invalidSetting = (name: string, accepted: string, value: string): Config.ConfigError =>
  new Config.ConfigError(
    new Schema.SchemaError(new SchemaIssue.Pointer([name], new SchemaIssue.InvalidValue({ message: `expected ${accepted}, got ${JSON.stringify(value)}` })))
  )

/** How the message of a required setting that is unset begins (`missing: expected …`). */
export const MISSING = "missing: "

/** `config`, which must be set: unset fails saying what it accepts (not only that it is missing). */
export const required = (name: string, accepted: string) => <A>(config: Config.Config<A>): Config.Config<A> =>
  Config.option(config).pipe(
    Config.mapEffect((value) =>
      Option.isSome(value)
        ? Effect.succeed(value.value)
        : Effect.fail(
          new Config.ConfigError(
            new Schema.SchemaError(new SchemaIssue.Pointer([name], new SchemaIssue.InvalidValue({ message: `${MISSING}expected ${accepted}` })))
          )
        )
    )
  )

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** A setting that is missing or wrong, for people: `the setting PIPELINE_BUCKET is missing`, `the setting X is invalid: expected …`. */
export const settingProblem = (error: Config.ConfigError): string => {
  if (error.cause._tag !== "SchemaError") return error.message
  return formatIssues(error.cause.issue).issues.map(({ message, path }) => {
    const name = path?.map(String).join(".") ?? "?"
    if (message === "Expected string") return `the setting ${name} is missing`
    if (message.startsWith(MISSING)) return `the setting ${name} is ${message}`
    return `the setting ${name} is invalid: ${message}`
  }).join("; ")
}

/** A setting `parse` reads from its text; `accepted` says, for people, what it accepts. */
export const setting = <A>(name: string, accepted: string, parse: (text: string) => Option.Option<A>): Config.Config<A> =>
  Config.String(name).pipe(
    Config.mapEffect((text) => {
      const value = parse(text.trim())
      return Option.isSome(value) ? Effect.succeed(value.value) : Effect.fail(invalidSetting(name, accepted, text))
    })
  )

const wholeNumber = (text: string): Option.Option<number> => (/^\d+$/.test(text) ? Option.some(Number(text)) : Option.none())

/** A whole number from `minimum` to `maximum` (no upper bound by default). */
export const intSetting = (name: string, minimum: number, maximum = Number.MAX_SAFE_INTEGER): Config.Config<number> =>
  setting(
    name,
    maximum === Number.MAX_SAFE_INTEGER ? `a whole number of at least ${minimum}` : `a whole number from ${minimum} to ${maximum}`,
    (text) => Option.filter(wholeNumber(text), (n) => n >= minimum && n <= maximum)
  )

/** A finite duration, at least zero (or more than zero when `positive`), in Effect's form: a number, a space, a unit. */
export const durationSetting = (name: string, options: { readonly positive?: boolean } = {}): Config.Config<Duration.Duration> =>
  setting(
    name,
    `${options.positive === true ? "a duration above zero" : "a duration"} such as "10 seconds", "500 millis" or "2 minutes" ` +
      "(a number, a space and a unit: nanos, micros, millis, seconds, minutes, hours, days or weeks)",
    (text) =>
      Option.filter(
        Duration.fromInput(text as Duration.Input),
        (duration) => Duration.isFinite(duration) && (options.positive === true ? Duration.isGreaterThan(duration, Duration.zero) : !Duration.isNegative(duration))
      )
  )

/** A number of bytes: a whole number, or a size such as "25 MB" (1,000,000 bytes) or "20 MiB" (1,048,576 bytes). */
export const byteSizeSetting = (name: string): Config.Config<number> =>
  setting(
    name,
    `a number of bytes such as 25000000, "25 MB" or "20 MiB"`,
    (text) => Option.orElse(wholeNumber(text), () => Option.map(ByteSize.fromString(text), (size) => Number(ByteSize.toBigInt(size))))
  )

/** An http(s) URL, such as an SQS queue's (`example` shows one). */
export const urlSetting = (name: string, example: string): Config.Config<string> =>
  setting(name, `an http:// or https:// URL such as ${example}`, (text) => {
    const url = URL.canParse(text) ? new URL(text) : undefined
    return url !== undefined && (url.protocol === "https:" || url.protocol === "http:") ? Option.some(text) : Option.none()
  })

/** One of `values`, as written. */
export const literalSetting = <const L extends string>(name: string, values: ReadonlyArray<L>): Config.Config<L> =>
  setting(
    name,
    values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(", ")}`,
    (text) => Option.fromNullishOr(values.find((value) => value === text))
  )

/** A list separated by commas, none of its items empty. */
export const listSetting = (name: string, example: string): Config.Config<ReadonlyArray<string>> =>
  setting(name, `names separated by commas, such as "${example}"`, (text) => {
    const items = text.split(",").map((item) => item.trim())
    return items.every((item) => item !== "") ? Option.some(items) : Option.none()
  })

/** `PIPELINE_LOG_LEVEL`: the least severe log lines shown, any case (Debug shows a line per step, retry and done). Default Info. */
export const LogLevelConfig: Config.Config<LogLevel.LogLevel> = setting(
  "PIPELINE_LOG_LEVEL",
  `one of ${LogLevel.values.join(", ")}`,
  (text) => Option.fromNullishOr(LogLevel.values.find((level) => level.toLowerCase() === text.toLowerCase()))
).pipe(Config.withDefault<LogLevel.LogLevel>("Info"))

/** The minimum log level `PIPELINE_LOG_LEVEL` sets, for a runtime's logs (the command line's, the Lambda handler's). */
export const logLevelLayer: Layer.Layer<never, Config.ConfigError> = Layer.unwrap(
  Effect.map(LogLevelConfig, (level) => Layer.succeed(References.MinimumLogLevel, level))
)
