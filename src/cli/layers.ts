/**
 * The backends a command runs on. Each service's `layer` chooses from the environment: SQS when
 * `PIPELINE_QUEUE_URL` is set, S3 when `PIPELINE_BUCKET` is, the embedded ones otherwise.
 */
import { Effect, Layer, Option } from "effect"
import { EngineSettings } from "../services/EngineSettings.ts"
import { MessageMoveTasks } from "../services/MessageMoveTasks.ts"
import { MessageQueue, QueueUrlConfig } from "../services/MessageQueue.ts"
import { ObjectStore } from "../services/ObjectStore.ts"
import { TransitionLedger } from "../services/TransitionLedger.ts"

/** What `agent` and `produce` run on. */
export const backendsLayer = Layer.mergeAll(MessageQueue.layer, TransitionLedger.layer, ObjectStore.layer, EngineSettings.layer)

/** The embedded queue and bucket whatever the environment says (`npm start`). */
export const localBackendsLayer = Layer.mergeAll(
  MessageQueue.layerLocalConfig,
  TransitionLedger.layerLocalConfig,
  ObjectStore.layerLocalConfig,
  EngineSettings.layerLocal
)

/**
 * For operating a pipeline (`status`, `dlq`): the queue and the settings, and SQS's own move
 * tasks on SQS. No bucket and no ledger (so no warning about a missing one).
 */
export const queueBackendsLayer = Layer.mergeAll(
  MessageQueue.layer,
  EngineSettings.layer,
  Layer.unwrap(Effect.map(QueueUrlConfig, (url) => Option.isSome(url) ? MessageMoveTasks.layerSqs : Layer.empty))
)
