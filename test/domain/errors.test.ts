/**
 * Which failures the engine retries: an error is retryable only when it says `retryable: true`.
 */
import { assert, describe, it } from "vitest"
import {
  isRetryable,
  MalformedBody,
  PermanentError,
  RetryableError,
  SchemaViolation,
  StepLimitReached,
  UnknownState
} from "../../src/domain/errors.ts"

describe("errors", () => {
  it("a mutation's RetryableError is retryable; every built-in permanent error is not", () => {
    assert.isTrue(isRetryable(new RetryableError({ message: "busy" })))
    for (const error of [
      new PermanentError({ message: "gone" }),
      new MalformedBody({ message: "x" }),
      new SchemaViolation({ message: "x" }),
      new UnknownState({ message: "x" }),
      new StepLimitReached({ message: "x", step: 3, maxSteps: 3 })
    ]) {
      assert.isFalse(isRetryable(error), error._tag)
    }
  })

  it("an author's own error is retryable only with retryable: true", () => {
    assert.isTrue(isRetryable({ _tag: "Throttled", message: "slow down", retryable: true }))
    assert.isFalse(isRetryable({ _tag: "Gone", message: "404", retryable: false }))
    assert.isFalse(isRetryable({ _tag: "Gone", message: "404" }))
    assert.isFalse(isRetryable({ _tag: "Gone", message: "404", retryable: undefined }))
  })

  it("errors carry their tag and message", () => {
    const error = new StepLimitReached({ message: "step 3 reached the limit of 3 steps", step: 3, maxSteps: 3 })
    assert.strictEqual(error._tag, "StepLimitReached")
    assert.strictEqual(error.message, "step 3 reached the limit of 3 steps")
    assert.strictEqual(new RetryableError({ message: "busy" })._tag, "RetryableError")
  })
})
