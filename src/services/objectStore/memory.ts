/**
 * An in-memory `ObjectStore` for unit tests; `MemoryObjectStoreControl` exposes its contents.
 */
import { Context, Effect, Option, Stream } from "effect"
import { isSafeKey, ObjectNotFound, type ObjectInfo, ObjectStore, ObjectStoreError } from "../ObjectStore.ts"

interface StoredBytes {
  readonly bytes: Uint8Array
  readonly contentType: string
}

export class MemoryObjectStoreControl extends Context.Service<MemoryObjectStoreControl, {
  readonly objects: Map<string, StoredBytes>
}>()("pipeline/services/MemoryObjectStoreControl") {}

const info = (key: string, stored: StoredBytes): ObjectInfo => ({
  key,
  size: stored.bytes.byteLength,
  contentType: stored.contentType
})

/** A memory store and its control, sharing one map. */
export const make = Effect.sync(() => {
  const objects = new Map<string, StoredBytes>()
  const store = ObjectStore.of({
    location: "memory://",
    put: (key, body, contentType) =>
      isSafeKey(key)
        ? Effect.sync(() => void objects.set(key, { bytes: body.slice(), contentType }))
        : Effect.fail(
          new ObjectStoreError({ operation: "put", key, message: `unsafe key: ${key}`, retryable: false, cause: null })
        ),
    get: (key) =>
      Effect.suspend(() => {
        const stored = objects.get(key)
        return stored === undefined
          ? Effect.fail(new ObjectNotFound({ key, message: `no object at ${key}` }))
          : Effect.succeed({ ...info(key, stored), body: Stream.succeed(stored.bytes) })
      }),
    head: (key) => Effect.sync(() => Option.map(Option.fromUndefinedOr(objects.get(key)), (stored) => info(key, stored))),
    list: (prefix) =>
      Effect.sync(() =>
        [...objects.entries()].filter(([key]) => key.startsWith(prefix)).map(([key, stored]) => info(key, stored))
          .sort((a, b) => (a.key < b.key ? -1 : 1))
      )
  })
  return { store, control: MemoryObjectStoreControl.of({ objects }) }
})
