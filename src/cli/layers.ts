/**
 * The backends a command runs on. Each service's `layer` chooses from the environment: SQS when
 * `PIPELINE_QUEUE_URL` is set, S3 when `PIPELINE_BUCKET` is, the embedded ones otherwise.
 */
import { Effect, Layer, Option } from "effect"
import { EngineSettings, localQueueFor } from "../services/EngineSettings.ts"
import { MessageMoveTasks } from "../services/MessageMoveTasks.ts"
import { MessageQueue, QueueUrlConfig } from "../services/MessageQueue.ts"
import { ObjectStore } from "../services/ObjectStore.ts"
import { TransitionLedger } from "../services/TransitionLedger.ts"

/** What `agent` and `produce` run a pipeline on; locally, on the pipeline's own queue. */
export const backendsFor = (pipelineName: string) =>
  Layer.mergeAll(MessageQueue.layer, TransitionLedger.layer, ObjectStore.layer, EngineSettings.layerFor(localQueueFor(pipelineName)))

/** The embedded queue and bucket whatever the environment says (`npm start`). */
export const localBackendsFor = (pipelineName: string) =>
  Layer.mergeAll(
    MessageQueue.layerLocalConfig,
    TransitionLedger.layerLocalConfig,
    ObjectStore.layerLocalConfig,
    EngineSettings.layerLocal(localQueueFor(pipelineName))
  )

/**
 * For operating a pipeline (`status`, `dlq`): the queue and the settings, and SQS's own move
 * tasks on SQS. No bucket and no ledger (so no warning about a missing one).
 */
export const queueBackendsFor = (pipelineName: string) =>
  Layer.mergeAll(
    MessageQueue.layer,
    EngineSettings.layerFor(localQueueFor(pipelineName)),
    Layer.unwrap(Effect.map(QueueUrlConfig, (url) => Option.isSome(url) ? MessageMoveTasks.layerSqs : Layer.empty))
  )
