/**
 * Which backends a command runs on, from the environment: `PIPELINE_QUEUE_URL` set → SQS,
 * otherwise the embedded queue in `PIPELINE_DATA_DIR`; `PIPELINE_BUCKET` set → S3, otherwise the
 * local bucket there. Same programs, same handler: only these layers differ.
 */
import { Config, Effect, Layer, Option, Schema } from "effect"
import { EngineSettings, SettingsConfig } from "./EngineSettings.ts"
import * as DynamoLedger from "./ledger/dynamo.ts"
import { LocalLedger } from "./ledger/local.ts"
import { LocalObjectStore } from "./objectStore/local.ts"
import { DataDirConfig } from "./DataDir.ts"
import { LocalQueue } from "./queue/local.ts"
import { MessageMoveTasks } from "./MessageMoveTasks.ts"
import * as S3ObjectStore from "./objectStore/s3.ts"
import * as SqsQueue from "./queue/sqs.ts"
import { TransitionLedger } from "./TransitionLedger.ts"

/** The embedded queue's name (its dead-letter queue is `pipeline-dlq`). */
export const LOCAL_QUEUE = "pipeline"

const QueueUrlConfig = Config.option(Config.NonEmptyString("PIPELINE_QUEUE_URL"))
const BucketConfig = Config.option(Config.NonEmptyString("PIPELINE_BUCKET"))

/** The embedded queue's settings; on SQS these are the queue's own attributes. */
/** An integer in SQS's range; anything else fails naming the variable (not the queue's option). */
const IntBetween = (name: string, minimum: number, maximum: number) =>
  Config.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })), name)

const LocalQueueConfig = Config.all({
  directory: DataDirConfig,
  visibilityTimeout: IntBetween("PIPELINE_VISIBILITY_TIMEOUT", 0, 43_200).pipe(Config.withDefault(30)),
  maxReceiveCount: IntBetween("PIPELINE_MAX_RECEIVE_COUNT", 1, 1000).pipe(Config.withDefault(5))
})

const localQueueLayer = Layer.unwrap(Effect.map(LocalQueueConfig, LocalQueue.layerAt))

const settingsFor = (queueUrl: Option.Option<string>) =>
  Layer.effect(
    EngineSettings,
    Effect.map(SettingsConfig, (settings) => EngineSettings.of({ queueUrl: Option.getOrElse(queueUrl, () => LOCAL_QUEUE), ...settings }))
  )

/** `PIPELINE_LEDGER=off` runs without the transition ledger anywhere (to measure what it saves). */
const LedgerSwitch = Config.Literals(["on", "off"], "PIPELINE_LEDGER").pipe(Config.withDefault("on"))
const LedgerTableConfig = Config.option(Config.NonEmptyString("PIPELINE_LEDGER_TABLE"))

const noLedger = (why: string) =>
  Layer.merge(TransitionLedger.layerNone, Layer.effectDiscard(Effect.logWarning(`no transition ledger (${why}): a chain can fork when a worker dies between sending a successor and deleting its message`)))

/** On SQS: the DynamoDB table `PIPELINE_LEDGER_TABLE` names, or none (said once, at start). */
export const sqsLedgerLayer = Layer.unwrap(
  Effect.gen(function*() {
    if ((yield* LedgerSwitch) === "off") return noLedger("PIPELINE_LEDGER=off")
    const table = yield* LedgerTableConfig
    return Option.isSome(table) ? DynamoLedger.layer(table.value) : noLedger("PIPELINE_LEDGER_TABLE is not set")
  })
)

/** On the local queue: a table in the queue's own file. */
const localLedgerLayer = Layer.unwrap(
  Effect.gen(function*() {
    if ((yield* LedgerSwitch) === "off") return noLedger("PIPELINE_LEDGER=off")
    return LocalLedger.layerAt(yield* DataDirConfig)
  })
)

/** SQS or the local queue, S3 or the local bucket, as the environment says. */
export const backendsLayer = Layer.unwrap(
  Effect.gen(function*() {
    const queueUrl = yield* QueueUrlConfig
    const bucket = yield* BucketConfig
    return Layer.mergeAll(
      Option.isSome(queueUrl) ? SqsQueue.layer : localQueueLayer,
      Option.isSome(queueUrl) ? sqsLedgerLayer : localLedgerLayer,
      Option.isSome(bucket) ? S3ObjectStore.layer : LocalObjectStore.layer,
      settingsFor(queueUrl)
    )
  })
)

/** The embedded queue and bucket whatever the environment says (`npm start`). */
export const localBackendsLayer = Layer.mergeAll(localQueueLayer, localLedgerLayer, LocalObjectStore.layer, settingsFor(Option.none()))

/**
 * For operating a pipeline (`status`, `dlq`): the queue and the settings as the environment says,
 * and SQS's own move tasks on SQS. No bucket and no ledger (so no warning about a missing one).
 */
export const queueBackendsLayer = Layer.unwrap(
  Effect.gen(function*() {
    const queueUrl = yield* QueueUrlConfig
    return Layer.mergeAll(
      Option.isSome(queueUrl) ? Layer.merge(SqsQueue.layer, MessageMoveTasks.layerSqs) : localQueueLayer,
      settingsFor(queueUrl)
    )
  })
)
