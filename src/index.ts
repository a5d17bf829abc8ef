/**
 * What an author writes a pipeline with: `import { definePipeline, mutation, done } from "sqs-state-pipeline"`.
 * The test kit is `sqs-state-pipeline/testing`; the command line is the `sqs-state-pipeline` bin.
 */
export {
  type AnyPipeline,
  definePipeline,
  done,
  type Done,
  type ErrorsOf,
  isPipeline,
  mutation,
  type Mutation,
  type Pipeline,
  type PipelineDefinition,
  type Route,
  type RuntimeProvided,
  type RuntimeServices,
  type ServicesOf,
  unknownState
} from "./domain/Pipeline.ts"
// a mutation's own errors, and the engine's reasons a dead letter can carry
export {
  Defect,
  isRetryable,
  MalformedBody,
  PermanentError,
  RetryableError,
  SchemaViolation,
  type StepFailure,
  StepLimitReached,
  UnknownState
} from "./domain/errors.ts"
// the services every runtime gives a mutation: the bucket (S3, a local folder, or memory in tests)
export { type ObjectInfo, ObjectNotFound, ObjectStore, ObjectStoreError, type StoredObject } from "./services/ObjectStore.ts"
