/**
 * Sorting AWS SDK failures into retryable and permanent, the way the SDK's own retry strategy does.
 */
const retryableNames = new Set([
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "SlowDown",
  "RequestTimeout",
  "RequestTimeoutException",
  "InternalError",
  "InternalFailure",
  "ServiceUnavailable",
  "KMS.ThrottlingException",
  "TimeoutError"
])

interface SdkErrorLike {
  readonly name?: unknown
  readonly message?: unknown
  readonly $retryable?: unknown
  readonly $metadata?: { readonly httpStatusCode?: number | undefined } | undefined
}

export const isRetryableAwsError = (cause: unknown): boolean => {
  if (cause === null || typeof cause !== "object") return true
  const error = cause as SdkErrorLike
  if (error.$retryable !== undefined && error.$retryable !== false) return true
  if (typeof error.name === "string" && retryableNames.has(error.name)) return true
  const status = error.$metadata?.httpStatusCode
  // no HTTP status at all: the request never got an answer (network, DNS, connection reset)
  if (status === undefined) return true
  return status >= 500 || status === 429
}

export const awsErrorMessage = (cause: unknown): string => {
  if (cause !== null && typeof cause === "object") {
    const error = cause as SdkErrorLike
    const name = typeof error.name === "string" ? error.name : "Error"
    const message = typeof error.message === "string" ? error.message : ""
    return message === "" ? name : `${name}: ${message}`
  }
  return String(cause)
}
