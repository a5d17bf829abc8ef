import { DynamoDBServiceException, ProvisionedThroughputExceededException, ReplicatedWriteConflictException } from "@aws-sdk/client-dynamodb"
import { NoSuchBucket, NoSuchKey, S3ServiceException } from "@aws-sdk/client-s3"
import { KmsThrottled, QueueDoesNotExist, ReceiptHandleIsInvalid, RequestThrottled, SQSServiceException } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { awsErrorMessage, hasConfiguredEndpoint, isRetryableAwsError } from "../../src/services/awsSdk.ts"

const answered = (httpStatusCode: number) => ({ $metadata: { httpStatusCode }, message: "m" })

/** A service error as the SDK builds it from an answer it has no class for. */
const serviceError = (name: string, httpStatusCode: number, fault: "client" | "server" = "client") =>
  new S3ServiceException({ name, $fault: fault, ...answered(httpStatusCode) })

/** A Node network error, as the SDK's http handler passes it on (no HTTP answer). */
const networkError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code })

describe("isRetryableAwsError", () => {
  it("sender faults are permanent", () => {
    const permanent = [
      new ReceiptHandleIsInvalid(answered(400)),
      new QueueDoesNotExist(answered(400)),
      new NoSuchBucket(answered(404)),
      new NoSuchKey(answered(404)),
      serviceError("AccessDenied", 403),
      serviceError("AccessDeniedException", 400),
      serviceError("ValidationException", 400),
      new SQSServiceException({ name: "InvalidParameterValue", $fault: "client", ...answered(400) })
    ]
    for (const error of permanent) assert.isFalse(isRetryableAwsError(error), error.name)
  })

  it("throttling is retryable, whatever status it comes with", () => {
    const throttled = [
      new RequestThrottled(answered(403)),
      new ProvisionedThroughputExceededException(answered(400)),
      serviceError("ThrottlingException", 400),
      serviceError("SlowDown", 503),
      serviceError("LimitExceededException", 400),
      serviceError("SomethingNew", 429),
      // SQS's KMS throttling, missing from the SDK's lists
      new KmsThrottled(answered(400)),
      serviceError("KMS.ThrottlingException", 400)
    ]
    for (const error of throttled) assert.isTrue(isRetryableAwsError(error), error.name)
  })

  it("5xx, timeouts and errors the service marks retryable are retryable", () => {
    const transient = [
      serviceError("InternalError", 500, "server"),
      serviceError("ServiceUnavailable", 503, "server"),
      serviceError("BadGateway", 502, "server"),
      serviceError("SomethingOdd", 599, "server"),
      serviceError("RequestTimeout", 400),
      new ReplicatedWriteConflictException(answered(400)),
      // the modeled retryable trait (DynamoDB's ReplicatedWriteConflictException above has it)
      Object.assign(new DynamoDBServiceException({ name: "SomethingNew", $fault: "client", ...answered(400) }), { $retryable: {} })
    ]
    for (const error of transient) assert.isTrue(isRetryableAwsError(error), error.name)
  })

  it("an answer the SDK had to correct its clock for is retryable (the SDK's own rule)", () => {
    const skewed = Object.assign(serviceError("InvalidSignatureException", 403), {
      $metadata: { httpStatusCode: 403, clockSkewCorrected: true }
    })
    assert.isTrue(isRetryableAwsError(skewed))
    assert.isFalse(isRetryableAwsError(serviceError("InvalidSignatureException", 403)))
  })

  it("a failure without an HTTP answer is retryable: network errors, timeouts, anything unknown", () => {
    for (const code of ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN"]) {
      assert.isTrue(isRetryableAwsError(networkError(code)), code)
    }
    assert.isTrue(isRetryableAwsError(Object.assign(new Error("socket"), { name: "TimeoutError" })))
    assert.isTrue(isRetryableAwsError(new Error("no code, no status")))
    assert.isTrue(isRetryableAwsError(new Error("a null cause", { cause: null })))
    assert.isTrue(isRetryableAwsError("a string"))
    assert.isTrue(isRetryableAwsError(undefined))
  })
})

describe("awsErrorMessage", () => {
  it("is the error's name and message", () => {
    assert.strictEqual(awsErrorMessage(new NoSuchBucket({ ...answered(404), message: "gone" })), "NoSuchBucket: gone")
    assert.strictEqual(awsErrorMessage(serviceError("AccessDenied", 403, "client")), "AccessDenied: m")
    assert.strictEqual(awsErrorMessage({ name: "Bare" }), "Bare")
    assert.strictEqual(awsErrorMessage(42), "42")
  })
})

describe("hasConfiguredEndpoint", () => {
  it("reads the service's variable, then the general one, unless configured endpoints are ignored", () => {
    assert.isFalse(hasConfiguredEndpoint("SQS", {}))
    assert.isTrue(hasConfiguredEndpoint("SQS", { AWS_ENDPOINT_URL_SQS: "http://127.0.0.1:5000" }))
    assert.isFalse(hasConfiguredEndpoint("S3", { AWS_ENDPOINT_URL_SQS: "http://127.0.0.1:5000" }))
    assert.isTrue(hasConfiguredEndpoint("S3", { AWS_ENDPOINT_URL_S3: "http://127.0.0.1:5000" }))
    assert.isTrue(hasConfiguredEndpoint("S3", { AWS_ENDPOINT_URL: "http://127.0.0.1:5000" }))
    assert.isFalse(
      hasConfiguredEndpoint("SQS", { AWS_ENDPOINT_URL: "http://127.0.0.1:5000", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: "TRUE" })
    )
  })
})
