/**
 * What the AWS-backed services share about the SDK: where their requests go, and which failures
 * are worth retrying.
 */
import { isServerError, isThrottlingError, isTransientError } from "@smithy/core/retry"

/**
 * True when the SDK will send `service`'s requests to a configured endpoint: the variables, in the
 * order, that @smithy/core's endpoint-from-config resolver reads (`AWS_ENDPOINT_URL_<SERVICE>`,
 * then `AWS_ENDPOINT_URL`, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`).
 */
export const hasConfiguredEndpoint = (service: "SQS" | "S3", env: NodeJS.ProcessEnv = process.env): boolean =>
  env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]?.toLowerCase() !== "true" &&
  Boolean(env[`AWS_ENDPOINT_URL_${service}`] || env["AWS_ENDPOINT_URL"])

type SdkError = Parameters<typeof isTransientError>[0]

/**
 * Throttling that the SDK's lists miss: SQS's KMS throttling answers 400 (the name this SDK gives
 * it, and the wire code of SQS's query protocol).
 */
const alsoThrottling = new Set(["KmsThrottled", "KMS.ThrottlingException"])

/** The SDK's own classification, as its retry strategy uses it: throttling, transient, 5xx. */
const sdkRetries = (error: SdkError): boolean => {
  try {
    return isThrottlingError(error) || isTransientError(error) || isServerError(error)
  } catch {
    // isTransientError follows `error.cause` and throws on a null one
    return false
  }
}

/**
 * True for failures that may pass with time: throttling, 5xx, timeouts, network errors (the
 * SDK's classification), and any failure without an HTTP answer at all (the request never got
 * one). Sender faults (AccessDenied, NoSuchBucket, ReceiptHandleIsInvalid, ...) are permanent.
 * The SDK has retried the transient ones already; this decides what happens after that: a
 * retryable error leaves the message for redelivery, a permanent one dead-letters it.
 */
export const isRetryableAwsError = (cause: unknown): boolean => {
  if (cause === null || typeof cause !== "object") return true
  const error = cause as SdkError
  return sdkRetries(error) ||
    alsoThrottling.has(error.name) ||
    error.$metadata?.httpStatusCode === undefined
}

export const awsErrorMessage = (cause: unknown): string => {
  if (cause !== null && typeof cause === "object") {
    const error = cause as { readonly name?: unknown; readonly message?: unknown }
    const name = typeof error.name === "string" ? error.name : "Error"
    const message = typeof error.message === "string" ? error.message : ""
    return message === "" ? name : `${name}: ${message}`
  }
  return String(cause)
}
