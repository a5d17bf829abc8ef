/**
 * The `ObjectStore` service on Amazon S3, through @aws-sdk/client-s3.
 *
 * Region, endpoint and credentials come from the SDK's own conventions (AWS_REGION,
 * AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, the default credential chain).
 */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client
} from "@aws-sdk/client-s3"
import { Array as Arr, Effect, Option, Stream } from "effect"
import {
  isSafeKey,
  type ObjectInfo,
  ObjectNotFound,
  ObjectStore,
  ObjectStoreError,
  type StoredObject
} from "../ObjectStore.ts"
import { awsErrorMessage, hasConfiguredEndpoint, isRetryableAwsError } from "../awsSdk.ts"

export interface S3ObjectStoreOptions {
  /** Keys per ListObjectsV2 request, 1 to 1000; default 1000 (S3's own maximum). */
  readonly listPageSize?: number | undefined
  /** HeadObject requests in flight at once while `list` looks up content types; default 8. */
  readonly headConcurrency?: number | undefined
}

interface SdkErrorShape {
  readonly name?: unknown
  readonly $metadata?: { readonly httpStatusCode?: number | undefined } | undefined
}

const isNotFound = (cause: unknown): boolean => {
  if (cause === null || typeof cause !== "object") return false
  const error = cause as SdkErrorShape
  return error.name === "NoSuchKey" || error.name === "NotFound" || error.$metadata?.httpStatusCode === 404
}

const storeError = (operation: string, key: string, cause: unknown): ObjectStoreError =>
  new ObjectStoreError({
    operation,
    key,
    message: awsErrorMessage(cause),
    retryable: isRetryableAwsError(cause),
    cause
  })

const unsafeKey = (operation: string, key: string): ObjectStoreError =>
  new ObjectStoreError({
    operation,
    key,
    message: `Refusing unsafe key ${JSON.stringify(key)}: keys are relative, /-separated, without empty, . or .. segments`,
    retryable: false,
    cause: undefined
  })

/** Bytes read between two collections of the young generation (`scavenging`). */
export const SCAVENGE_EVERY_BYTES = 2 * 1024 * 1024

/**
 * `chunks`, with the young generation collected every `SCAVENGE_EVERY_BYTES` and once at the end
 * when the process has `--expose-gc` (the stack sets it). A body arrives in chunks of up to 64 KB,
 * each garbage once the reader has copied it; V8 does not count Buffers in its heap and collects
 * them only after 64 MB of them: reading a 17.9 MB image under RIE left 38 MB of chunks, the peak
 * of the whole chain (131 MB). A scavenge takes about a millisecond.
 */
export async function* scavenging(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const gc = (globalThis as { gc?: (options: { type: "minor" }) => void }).gc
  let read = 0
  for await (const chunk of chunks) {
    read += chunk.byteLength
    if (gc !== undefined && read >= SCAVENGE_EVERY_BYTES) {
      read = 0
      gc({ type: "minor" })
    }
    yield chunk
  }
  // the last chunks are garbage too once the reader asks for more
  if (gc !== undefined && read > 0) gc({ type: "minor" })
}

/** The SDK's body in Node is an `IncomingMessage` (async-iterable); elsewhere a web stream. */
const bodyStream = (body: unknown, key: string): Stream.Stream<Uint8Array, ObjectStoreError> => {
  const onError = (cause: unknown) => storeError("GetObject.body", key, cause)
  if (body === undefined || body === null) return Stream.empty
  if (typeof body === "object" && Symbol.asyncIterator in body) {
    return Stream.fromAsyncIterable(scavenging(body as AsyncIterable<Uint8Array>), onError)
  }
  if (typeof body === "object" && "transformToWebStream" in body && typeof body.transformToWebStream === "function") {
    const web = body as { transformToWebStream: () => ReadableStream<Uint8Array> }
    return Stream.fromReadableStream({ evaluate: () => web.transformToWebStream(), onError })
  }
  return Stream.fail(onError(new Error("GetObject returned a body that is not a stream")))
}

/** The store for `bucket`: one client, destroyed with the layer's scope. */
export const make = (bucket: string, options: S3ObjectStoreOptions = {}) => Effect.gen(function*() {
  const pageSize = options.listPageSize ?? 1000
  const headConcurrency = options.headConcurrency ?? 8
  // a configured endpoint (moto, minio on 127.0.0.1) cannot serve virtual-host buckets: path style
  const client = yield* Effect.acquireRelease(
    Effect.sync(() => new S3Client(hasConfiguredEndpoint("S3") ? { forcePathStyle: true } : {})),
    (client) => Effect.sync(() => client.destroy())
  )

  const call = <A>(
    operation: string,
    key: string,
    request: (signal: AbortSignal) => Promise<A>
  ): Effect.Effect<A, ObjectStoreError> =>
    Effect.tryPromise({ try: request, catch: (cause) => storeError(operation, key, cause) })

  const put = Effect.fn("S3ObjectStore.put")(function*(key: string, body: Uint8Array, contentType: string) {
    if (!isSafeKey(key)) return yield* unsafeKey("PutObject", key)
    yield* call("PutObject", key, (abortSignal) =>
      client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }),
        { abortSignal }
      ))
  })

  const get = Effect.fn("S3ObjectStore.get")(function*(key: string) {
    if (!isSafeKey(key)) return yield* unsafeKey("GetObject", key)
    const output = yield* Effect.tryPromise({
      try: (abortSignal) => client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }),
      catch: (cause): ObjectStoreError | ObjectNotFound =>
        isNotFound(cause)
          ? new ObjectNotFound({ key, message: `No object ${key} in s3://${bucket}` })
          : storeError("GetObject", key, cause)
    })
    return {
      key,
      size: output.ContentLength ?? 0,
      contentType: output.ContentType ?? "application/octet-stream",
      body: bodyStream(output.Body, key)
    } satisfies StoredObject
  })

  const headInfo = (key: string): Effect.Effect<Option.Option<ObjectInfo>, ObjectStoreError> =>
    Effect.tryPromise({
      try: (abortSignal) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }),
      catch: (cause) => ({ notFound: isNotFound(cause), cause })
    }).pipe(
      Effect.map((output) =>
        Option.some<ObjectInfo>({
          key,
          size: output.ContentLength ?? 0,
          contentType: output.ContentType ?? "application/octet-stream"
        })
      ),
      Effect.catch((failure) =>
        failure.notFound ? Effect.succeed(Option.none()) : Effect.fail(storeError("HeadObject", key, failure.cause))
      )
    )

  const head = Effect.fn("S3ObjectStore.head")(function*(key: string) {
    if (!isSafeKey(key)) return yield* unsafeKey("HeadObject", key)
    return yield* headInfo(key)
  })

  /** One page of keys under `prefix`, and the token of the next page if there is one. */
  const listPage = (prefix: string, token: string | undefined) =>
    call("ListObjectsV2", prefix, (abortSignal) =>
      client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          MaxKeys: pageSize,
          ...(token !== undefined ? { ContinuationToken: token } : {})
        }),
        { abortSignal }
      )).pipe(
        Effect.map((page) =>
          [
            (page.Contents ?? []).flatMap((object) => object.Key === undefined ? [] : [object.Key]),
            page.IsTruncated === true ? Option.fromUndefinedOr(page.NextContinuationToken) : Option.none()
          ] as const
        )
      )

  const list = Effect.fn("S3ObjectStore.list")(function*(prefix: string) {
    const infos = yield* Stream.paginate(undefined as string | undefined, (token) => listPage(prefix, token)).pipe(
      // ListObjectsV2 has no content types: one HeadObject per key, in the keys' order. An object
      // deleted in between is left out.
      Stream.mapEffect(headInfo, { concurrency: headConcurrency }),
      Stream.runCollect
    )
    return Arr.getSomes(infos)
  })

  return ObjectStore.of({ location: `s3://${bucket}`, put, get, head, list })
})
