/**
 * `status`, `dlq list` and `dlq redrive` on moto's SQS (see test/support/operate.ts); what only SQS
 * has is in operate.moto.sqs.test.ts, so the two files run in parallel.
 */
import "../support/awsEnv.ts"
import { afterAll } from "vitest"
import { cleanUpBackends } from "../support/backends.ts"
import { describeOperate } from "../support/operate.ts"

describeOperate("moto")
afterAll(cleanUpBackends)
