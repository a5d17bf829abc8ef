/**
 * Read-your-writes in one process: the objects this process just stored, kept in memory up to a
 * number of bytes (oldest dropped first), so that a step reading what the previous step wrote (the
 * thumbnail steps read the raw image the download stored) does not fetch it again. Reads of other
 * objects, heads and lists go to the store; a failed write keeps nothing.
 */
import { Effect, Option, Stream } from "effect"
import type { ObjectStore } from "../ObjectStore.ts"

interface Kept {
  readonly bytes: Uint8Array
  readonly contentType: string
}

export const make = (store: ObjectStore["Service"], maxBytes: number): ObjectStore["Service"] => {
  // a Map iterates in insertion order: re-inserting on use makes it least-recently-used first
  const kept = new Map<string, Kept>()
  let size = 0
  const forget = (key: string) => {
    const old = kept.get(key)
    if (old === undefined) return
    kept.delete(key)
    size -= old.bytes.byteLength
  }
  const keep = (key: string, bytes: Uint8Array, contentType: string) => {
    forget(key)
    if (bytes.byteLength > maxBytes) return
    for (const [oldest] of kept) {
      if (size + bytes.byteLength <= maxBytes) break
      forget(oldest)
    }
    kept.set(key, { bytes, contentType })
    size += bytes.byteLength
  }
  const recent = (key: string) => {
    const found = kept.get(key)
    if (found !== undefined) {
      kept.delete(key)
      kept.set(key, found)
    }
    return found
  }
  return {
    location: store.location,
    put: (key, body, contentType) =>
      Effect.tap(
        Effect.onError(store.put(key, body, contentType), () => Effect.sync(() => forget(key))),
        () => Effect.sync(() => keep(key, body, contentType))
      ),
    get: (key) =>
      Effect.suspend(() => {
        const found = recent(key)
        return found === undefined
          ? store.get(key)
          : Effect.succeed({ key, size: found.bytes.byteLength, contentType: found.contentType, body: Stream.make(found.bytes) })
      }),
    head: (key) =>
      Effect.suspend(() => {
        const found = recent(key)
        return found === undefined
          ? store.head(key)
          : Effect.succeed(Option.some({ key, size: found.bytes.byteLength, contentType: found.contentType }))
      }),
    list: (prefix) => store.list(prefix)
  }
}
