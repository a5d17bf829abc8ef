/**
 * A bucket of objects by key. Implemented by S3 (`S3ObjectStore.ts`), a local folder
 * (`LocalObjectStore.ts`) and memory for unit tests (`MemoryObjectStore.ts`).
 */
import { Context, type Effect, type Option, Schema, type Stream } from "effect"

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
}>()("pipeline/services/ObjectStore") {}
