/**
 * How the engine runs: which queue, which dead-letter queue, and its limits.
 */
import { Config, Context, Duration, Effect, Layer, Option, Schema } from "effect"

export interface Settings {
  /** The queue successors are sent to (an SQS URL, or a local queue's name). */
  readonly queueUrl: string
  /** Where permanent failures go; none means the queue's redrive target. */
  readonly deadLetterQueueUrl: Option.Option<string>
  /** A chain longer than this is stopped (a router that never says done). */
  readonly maxSteps: number
  /** How long retryable failures are retried in process before SQS redelivery takes over. */
  readonly retryFor: Duration.Duration
  /** Messages of one batch worked on at once. */
  readonly concurrency: number
}

/** An integer of at least 1; anything else fails naming the variable (0 steps would dead-letter every record). */
const PositiveInt = (name: string) => Config.schema(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)), name)

/** Everything but the queue URL, from the environment, with defaults. */
export const SettingsConfig = Config.all({
  deadLetterQueueUrl: Config.option(Config.NonEmptyString("PIPELINE_DLQ_URL")),
  maxSteps: PositiveInt("PIPELINE_MAX_STEPS").pipe(Config.withDefault(100)),
  retryFor: Config.Duration("PIPELINE_RETRY_FOR").pipe(Config.withDefault(Duration.seconds(10))),
  concurrency: PositiveInt("PIPELINE_CONCURRENCY").pipe(Config.withDefault(10))
})

// Stryker disable next-line StringLiteral: a service key; no other service has the mutant's key
export class EngineSettings extends Context.Service<EngineSettings, Settings>()("pipeline/programs/EngineSettings") {
  /** For the Lambda handler and SQS: `PIPELINE_QUEUE_URL` is required. */
  static readonly layer = Layer.effect(
    EngineSettings,
    Effect.gen(function*() {
      const queueUrl = yield* Config.NonEmptyString("PIPELINE_QUEUE_URL")
      const rest = yield* SettingsConfig
      return EngineSettings.of({ queueUrl, ...rest })
    })
  )

  static readonly make = (settings: Partial<Settings> & Pick<Settings, "queueUrl">): Layer.Layer<EngineSettings> =>
    Layer.succeed(
      EngineSettings,
      EngineSettings.of({
        deadLetterQueueUrl: Option.none(),
        maxSteps: 100,
        retryFor: Duration.seconds(10),
        concurrency: 10,
        ...settings
      })
    )
}
