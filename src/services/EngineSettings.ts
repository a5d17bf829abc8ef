/**
 * How the engine runs: which queue, which dead-letter queue, and its limits. Every setting is
 * read here, once, with its default.
 */
import { Config, Context, Duration, Effect, Layer, Option } from "effect"
import { QueueUrlConfig, QueueUrlSetting } from "./MessageQueue.ts"
import { durationSetting, intSetting } from "./settings.ts"

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
  /**
   * How long a message may go on running the steps after its own in the same pass, instead of a
   * queue round trip per step (zero: one step per pass). A Lambda's remaining time bounds it too.
   */
  readonly runAhead: Duration.Duration
}

/** The embedded queue's name when no pipeline names it (its dead-letter queue is `pipeline-dlq`). */
export const LOCAL_QUEUE = "pipeline"

/**
 * A pipeline's embedded queue: named after the pipeline (dead letters in `<name>-dlq`), so that
 * two pipelines on one machine cannot take each other's records.
 */
export const localQueueFor = (pipelineName: string): string => pipelineName.replace(/[^A-Za-z0-9_-]/g, "-") || LOCAL_QUEUE

const defaults = {
  deadLetterQueueUrl: Option.none<string>(),
  maxSteps: 100,
  retryFor: Duration.seconds(10),
  concurrency: 10,
  runAhead: Duration.zero
}

/** Everything but the queue URL, from the environment. */
const SettingsConfig = Config.all({
  deadLetterQueueUrl: Config.option(Config.NonEmptyString("PIPELINE_DLQ_URL")),
  // at least 1: 0 steps would dead-letter every record, 0 at once would run nothing
  maxSteps: intSetting("PIPELINE_MAX_STEPS", 1).pipe(Config.withDefault(defaults.maxSteps)),
  retryFor: durationSetting("PIPELINE_RETRY_FOR").pipe(Config.withDefault(defaults.retryFor)),
  concurrency: intSetting("PIPELINE_CONCURRENCY", 1).pipe(Config.withDefault(defaults.concurrency)),
  runAhead: durationSetting("PIPELINE_RUN_AHEAD").pipe(Config.withDefault(defaults.runAhead))
})

const settingsFor = (queueUrl: Config.Config<string>) =>
  Effect.gen(function*() {
    return { queueUrl: yield* queueUrl, ...(yield* SettingsConfig) } satisfies Settings
  })

// Stryker disable next-line StringLiteral: a service key; no other service has the mutant's key
export class EngineSettings extends Context.Service<EngineSettings, Settings>()("pipeline/services/EngineSettings") {
  /** From the environment: the queue `PIPELINE_QUEUE_URL` names, or the embedded queue `localQueue`. */
  static readonly layerFor = (localQueue: string): Layer.Layer<EngineSettings, Config.ConfigError> =>
    Layer.effect(EngineSettings, settingsFor(Config.map(QueueUrlConfig, Option.getOrElse(() => localQueue))))

  /** From the environment: the queue `PIPELINE_QUEUE_URL` names, or the embedded queue `pipeline`. */
  static readonly layer: Layer.Layer<EngineSettings, Config.ConfigError> = EngineSettings.layerFor(LOCAL_QUEUE)

  /** From the environment, on SQS: `PIPELINE_QUEUE_URL` is required (the Lambda function). */
  static readonly layerSqs: Layer.Layer<EngineSettings, Config.ConfigError> = Layer.effect(
    EngineSettings,
    settingsFor(QueueUrlSetting)
  )

  /** From the environment, on the embedded queue `localQueue` whatever `PIPELINE_QUEUE_URL` says (`npm start`). */
  static readonly layerLocal = (localQueue: string = LOCAL_QUEUE): Layer.Layer<EngineSettings, Config.ConfigError> =>
    Layer.effect(EngineSettings, settingsFor(Config.succeed(localQueue)))

  /** Explicit settings, defaults for the rest (tests, embedding). */
  static readonly layerWith = (settings: Partial<Settings> & Pick<Settings, "queueUrl">): Layer.Layer<EngineSettings> =>
    Layer.succeed(EngineSettings, EngineSettings.of({ ...defaults, ...settings }))
}
