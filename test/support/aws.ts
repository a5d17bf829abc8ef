/**
 * Test fixtures on moto made with the raw SDK clients (not the services under test).
 * They read the endpoint and credentials from the environment that `awsEnv.ts` sets.
 */
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3"
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { randomUUID } from "node:crypto"
import { Effect, type Scope } from "effect"

export interface QueueOptions {
  /** Create a FIFO queue (name ending in `.fifo`). */
  readonly fifo?: boolean | undefined
  /** FIFO only: deduplicate by body hash when no deduplication id is given. */
  readonly contentBasedDeduplication?: boolean | undefined
  /** The queue's default visibility timeout in seconds. */
  readonly visibilityTimeout?: number | undefined
  /** Also create a dead-letter queue (same type) and a RedrivePolicy with this maxReceiveCount. */
  readonly maxReceiveCount?: number | undefined
}

export interface TestQueue {
  readonly queueUrl: string
  readonly queueName: string
  /** Set when `maxReceiveCount` was given. */
  readonly dlqUrl?: string | undefined
}

/** A fresh name, lowercase letters, digits and dashes: `${prefix}-<random>`. */
export const uniqueName = (prefix = "test"): string => `${prefix}-${randomUUID().slice(0, 13)}`

const withSqs = async <A>(f: (client: SQSClient) => Promise<A>): Promise<A> => {
  const client = new SQSClient({ useQueueUrlAsEndpoint: false })
  try {
    return await f(client)
  } finally {
    client.destroy()
  }
}

/** Creates a uniquely named queue (plain, FIFO, optionally with a DLQ) and returns its URL(s). */
export const createQueue = (options: QueueOptions = {}): Promise<TestQueue> =>
  withSqs(async (client) => {
    const suffix = options.fifo === true ? ".fifo" : ""
    const base = uniqueName("q")
    const fifoAttributes: Record<string, string> = options.fifo === true
      ? { FifoQueue: "true", ContentBasedDeduplication: String(options.contentBasedDeduplication ?? false) }
      : {}
    let dlqUrl: string | undefined
    const attributes: Record<string, string> = { ...fifoAttributes }
    if (options.visibilityTimeout !== undefined) attributes["VisibilityTimeout"] = String(options.visibilityTimeout)
    if (options.maxReceiveCount !== undefined) {
      const dlq = await client.send(
        new CreateQueueCommand({ QueueName: `${base}-dlq${suffix}`, Attributes: fifoAttributes })
      )
      dlqUrl = dlq.QueueUrl!
      const dlqAttributes = await client.send(
        new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["QueueArn"] })
      )
      attributes["RedrivePolicy"] = JSON.stringify({
        deadLetterTargetArn: dlqAttributes.Attributes!["QueueArn"],
        maxReceiveCount: String(options.maxReceiveCount)
      })
    }
    const queueName = `${base}${suffix}`
    const created = await client.send(new CreateQueueCommand({ QueueName: queueName, Attributes: attributes }))
    return { queueUrl: created.QueueUrl!, queueName, dlqUrl }
  })

/** Creates a uniquely named, empty bucket and returns its name. */
export const createBucket = async (): Promise<string> => {
  const client = new S3Client({ forcePathStyle: true })
  try {
    const name = uniqueName("bucket")
    await client.send(new CreateBucketCommand({ Bucket: name }))
    return name
  } finally {
    client.destroy()
  }
}

/** Sets (string) or unsets (undefined) environment variables until the current scope closes. */
export const withEnv = (vars: Readonly<Record<string, string | undefined>>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]))
      for (const [name, value] of Object.entries(vars)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
      return saved
    }),
    (saved) =>
      Effect.sync(() => {
        for (const [name, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[name]
          else process.env[name] = value
        }
      })
  ).pipe(Effect.asVoid)

/** The transition ledger's table as the stack makes it (infra/template.yaml), under a fresh name. */
export const createLedgerTable = async (): Promise<string> => {
  const client = new DynamoDBClient({})
  try {
    const name = uniqueName("ledger")
    await client.send(new CreateTableCommand({
      TableName: name,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [
        { AttributeName: "traceId", AttributeType: "S" },
        { AttributeName: "step", AttributeType: "N" },
        { AttributeName: "recordId", AttributeType: "S" }
      ],
      KeySchema: [{ AttributeName: "traceId", KeyType: "HASH" }, { AttributeName: "step", KeyType: "RANGE" }],
      // as infra/template.yaml's LedgerTable: chains by record id, sparse (see src/services/ledger/dynamo.ts)
      GlobalSecondaryIndexes: [{
        IndexName: "byRecordId",
        KeySchema: [{ AttributeName: "recordId", KeyType: "HASH" }],
        Projection: { ProjectionType: "KEYS_ONLY" }
      }]
    }))
    return name
  } finally {
    client.destroy()
  }
}
