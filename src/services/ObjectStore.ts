/**
 * A bucket of objects by key. Implemented by S3 (`objectStore/s3.ts`), a local folder
 * (`objectStore/local.ts`) and memory for unit tests (`objectStore/memory.ts`).
 */
import { join } from "node:path"
import { Config, Context, Effect, Layer, Option, Schema, type Stream } from "effect"
import { DataDirConfig } from "./DataDir.ts"
import { byteSizeSetting } from "./settings.ts"
import type { MemoryObjectStoreControl } from "./objectStore/memory.ts"
import type { S3ObjectStoreOptions } from "./objectStore/s3.ts"

/** `PIPELINE_BUCKET`: the S3 bucket; unset means the local bucket. */
const BucketConfig = Config.option(Config.NonEmptyString("PIPELINE_BUCKET"))

/** `PIPELINE_OBJECT_CACHE`: bytes of just-written objects kept for reading back in this process; 0 (the default) keeps none. */
const ObjectCacheConfig = byteSizeSetting("PIPELINE_OBJECT_CACHE").pipe(Config.withDefault(0))

export interface ObjectInfo {
  readonly key: string
  readonly size: number
  readonly contentType: string
}

export interface StoredObject extends ObjectInfo {
  readonly body: Stream.Stream<Uint8Array, ObjectStoreError>
}

export class ObjectStoreError extends Schema.TaggedError<ObjectStoreError>()("ObjectStoreError", {
  operation: Schema.String,
  key: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
  cause: Schema.Defect()
}) {}

/** A key that does not exist: permanent for whoever expected it. */
export class ObjectNotFound extends Schema.TaggedError<ObjectNotFound>()("ObjectNotFound", {
  key: Schema.String,
  message: Schema.String
}) {}

/** Keys are relative, `/`-separated, with no empty, `.` or `..` segment. */
export const isSafeKey = (key: string): boolean =>
  key.length > 0 &&
  key.length <= 1024 &&
  !key.startsWith("/") &&
  !key.includes("\\") &&
  !key.includes("\u0000") &&
  key.split("/").every((segment) => segment !== "" && segment !== "." && segment !== "..")

export class ObjectStore extends Context.Service<ObjectStore, {
  /** Where objects end up, for people: `s3://bucket` or a folder. */
  readonly location: string
  put(key: string, body: Uint8Array, contentType: string): Effect.Effect<void, ObjectStoreError>
  get(key: string): Effect.Effect<StoredObject, ObjectStoreError | ObjectNotFound>
  head(key: string): Effect.Effect<Option.Option<ObjectInfo>, ObjectStoreError>
  list(prefix: string): Effect.Effect<ReadonlyArray<ObjectInfo>, ObjectStoreError>
}>()("pipeline/services/ObjectStore") {
  /** An S3 bucket; region, endpoint and credentials from the SDK's own conventions. */
  static readonly layerS3 = (bucket: string, options?: S3ObjectStoreOptions): Layer.Layer<ObjectStore> =>
    Layer.effect(ObjectStore, Effect.flatMap(Effect.promise(() => import("./objectStore/s3.ts")), (s3) => s3.make(bucket, options)))

  /** A folder of files (a local bucket). */
  static readonly layerLocal = (folder: string): Layer.Layer<ObjectStore, ObjectStoreError> =>
    Layer.effect(ObjectStore, Effect.flatMap(Effect.promise(() => import("./objectStore/local.ts")), (local) => local.make(folder)))

  /** The local bucket in `<PIPELINE_DATA_DIR>/bucket`. */
  static readonly layerLocalConfig: Layer.Layer<ObjectStore, ObjectStoreError | Config.ConfigError> = Layer.unwrap(
    Effect.map(DataDirConfig, (directory) => ObjectStore.layerLocal(join(directory, "bucket")))
  )

  /** In memory, for unit tests; `MemoryObjectStoreControl` shows its contents. */
  static readonly layerMemory: Layer.Layer<ObjectStore | MemoryObjectStoreControl> = Layer.effectContext(
    Effect.flatMap(Effect.promise(() => import("./objectStore/memory.ts")), (memory) =>
      Effect.map(memory.make, ({ control, store }) =>
        Context.make(ObjectStore, store).pipe(Context.add(memory.MemoryObjectStoreControl, control))))
  )

  /** `store` keeping the objects this process writes, up to `maxBytes`, to read back without fetching them. */
  static readonly withRecentObjects = <E, R>(store: Layer.Layer<ObjectStore, E, R>, maxBytes: number): Layer.Layer<ObjectStore, E, R> =>
    maxBytes <= 0 ? store : Layer.effect(
      ObjectStore,
      Effect.gen(function*() {
        const recent = yield* Effect.promise(() => import("./objectStore/recent.ts"))
        return recent.make(yield* ObjectStore, maxBytes)
      })
    ).pipe(Layer.provide(store))

  /** `store`, with the objects this process writes kept up to `PIPELINE_OBJECT_CACHE` bytes. */
  private static readonly withCacheConfig = <E, R>(store: Layer.Layer<ObjectStore, E, R>) =>
    Layer.unwrap(Effect.map(ObjectCacheConfig, (maxBytes) => ObjectStore.withRecentObjects(store, maxBytes)))

  /** The bucket `PIPELINE_BUCKET` names when set, otherwise the local bucket. */
  static readonly layer: Layer.Layer<ObjectStore, ObjectStoreError | Config.ConfigError> = ObjectStore.withCacheConfig(Layer.unwrap(
    Effect.map(BucketConfig, (bucket) => Option.isSome(bucket) ? ObjectStore.layerS3(bucket.value) : ObjectStore.layerLocalConfig)
  ))

  /** An S3 bucket, required: `PIPELINE_BUCKET` (the Lambda function). */
  static readonly layerS3Config: Layer.Layer<ObjectStore, Config.ConfigError> = ObjectStore.withCacheConfig(Layer.unwrap(
    Effect.map(Config.NonEmptyString("PIPELINE_BUCKET"), (bucket) => ObjectStore.layerS3(bucket))
  ))
}

// every runtime provides the object store to a pipeline's own layer
declare module "../domain/Pipeline.ts" {
  interface RuntimeProvided {
    readonly objectStore: ObjectStore
  }
}
