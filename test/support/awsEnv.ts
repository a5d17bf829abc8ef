/**
 * Points the AWS SDK at this run's moto server with dummy credentials. Use it as a vitest
 * `setupFiles` entry, or import it first thing in a test file (`import "../support/awsEnv.ts"`).
 */
import { inject } from "vitest"

process.env["AWS_ENDPOINT_URL"] = inject("motoEndpoint")
process.env["AWS_REGION"] = "us-east-1"
process.env["AWS_ACCESS_KEY_ID"] = "testing"
process.env["AWS_SECRET_ACCESS_KEY"] = "testing"
// settings from the developer's shell would win over the ones above, or point at a real account
for (const name of [
  "AWS_ENDPOINT_URL_SQS",
  "AWS_ENDPOINT_URL_S3",
  "AWS_ENDPOINT_URL_DYNAMODB",
  "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_DEFAULT_REGION"
]) {
  delete process.env[name]
}
