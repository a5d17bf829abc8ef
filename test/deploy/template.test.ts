/**
 * infra/template.yaml: cfn-lint (informational checks included) finds nothing, and the template
 * says what the issue asks, including what moto's CloudFormation does not apply (the bucket's
 * public access block and ownership controls, the function's architecture and log group).
 * cfn-lint is installed by the test run's global setup (`test/support/cfnLint.ts`), like moto.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { beforeAll } from "vitest"
import { templatePath } from "../../src/deploy/deploy.ts"
import { cfnLint, python } from "../support/cfnLint.ts"

const execFileAsync = promisify(execFile)

/** A parsed template: its shape is what the tests check. */
type Json = any

let template: Json

beforeAll(async () => {
  // cfn-lint's own YAML reader turns !Ref/!GetAtt/... into their long forms
  const script = "import json, sys\nfrom cfnlint.decode import decode\ntemplate, errors = decode(sys.argv[1])\nassert not errors, errors\nprint(json.dumps(template))"
  template = JSON.parse((await execFileAsync(python, ["-c", script, templatePath])).stdout)
})

const resource = (name: string) => template.Resources[name]
const properties = (name: string) => resource(name).Properties

describe("infra/template.yaml", () => {
  it("passes cfn-lint, informational checks included", async () => {
    const result = await execFileAsync(cfnLint, ["--include-checks", "I", "--", templatePath]).catch(
      (error: { code: number; stdout: string }) => ({ stdout: `exit ${error.code}\n${error.stdout}` })
    )
    assert.strictEqual(result.stdout, "")
  }, 120_000) // ~12 s on an idle machine, over 30 s when the cores are shared

  it("gives the state queue six times the function's timeout, whatever timeout is chosen", () => {
    const timeout = template.Parameters.FunctionTimeout
    assert.deepStrictEqual(properties("StateQueue").VisibilityTimeout, { "Fn::FindInMap": ["VisibilityTimeouts", { Ref: "FunctionTimeout" }, "Seconds"] })
    assert.deepStrictEqual(properties("Function").Timeout, { Ref: "FunctionTimeout" })
    assert.include(timeout.AllowedValues, timeout.Default)
    for (const seconds of timeout.AllowedValues as Array<string>) {
      assert.strictEqual(template.Mappings.VisibilityTimeouts[seconds].Seconds, 6 * Number(seconds), seconds)
    }
  })

  it("redrives to the dead-letter queue after MaxReceiveCount receives, 5 by default", () => {
    assert.deepStrictEqual(properties("StateQueue").RedrivePolicy, {
      deadLetterTargetArn: { "Fn::GetAtt": ["DeadLetterQueue", "Arn"] },
      maxReceiveCount: { Ref: "MaxReceiveCount" }
    })
    assert.strictEqual(template.Parameters.MaxReceiveCount.Default, 5)
  })

  it("makes the bucket private: ACLs disabled, public access blocked, encrypted", () => {
    const bucket = properties("Bucket")
    assert.deepStrictEqual(bucket.OwnershipControls, { Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] })
    assert.deepStrictEqual(bucket.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true
    })
    assert.strictEqual(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, "AES256")
  })

  it("runs the function on nodejs24.x, arm64 and 128 MB by default, logging JSON lines to its own group with a retention and a level", () => {
    const fn = properties("Function")
    assert.strictEqual(fn.Runtime, "nodejs24.x")
    assert.strictEqual(fn.Handler, "dist/lambda/handler.handler")
    assert.deepStrictEqual(fn.Architectures, [{ Ref: "Architecture" }])
    assert.strictEqual(template.Parameters.Architecture.Default, "arm64")
    assert.deepStrictEqual(fn.MemorySize, { Ref: "MemorySize" })
    assert.strictEqual(template.Parameters.MemorySize.Default, 128)
    assert.deepStrictEqual(fn.LoggingConfig, { LogGroup: { Ref: "LogGroup" }, LogFormat: "JSON", ApplicationLogLevel: { Ref: "ApplicationLogLevel" } })
    assert.strictEqual(template.Parameters.ApplicationLogLevel.Default, "INFO")
    assert.deepStrictEqual(fn.Environment.Variables.PIPELINE_METRICS_NAMESPACE, { Ref: "MetricsNamespace" })
    assert.strictEqual(template.Parameters.MetricsNamespace.Default, "sqs-state-pipeline")
    assert.deepStrictEqual(template.Parameters.ApplicationLogLevel.AllowedValues, ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"])
    assert.deepStrictEqual(properties("LogGroup").RetentionInDays, { Ref: "LogRetentionDays" })
    assert.deepStrictEqual(fn.Code, { S3Bucket: { Ref: "CodeBucket" }, S3Key: { Ref: "CodeKey" } })
    const variables = fn.Environment.Variables
    assert.deepStrictEqual(variables.PIPELINE_QUEUE_URL, { Ref: "StateQueue" })
    assert.deepStrictEqual(variables.PIPELINE_BUCKET, { Ref: "Bucket" })
    assert.deepStrictEqual(variables.PIPELINE_LEDGER_TABLE, { Ref: "LedgerTable" })
    assert.deepStrictEqual(variables.THUMBNAIL_SIZES, { Ref: "ThumbnailSizes" })
    // run-ahead on where it pays: the thumbnail steps are quick next to a queue round trip each
    assert.deepStrictEqual(variables.PIPELINE_RUN_AHEAD, { Ref: "RunAhead" })
    assert.strictEqual(template.Parameters.RunAhead.Default, "30 seconds")
    assert.strictEqual(variables.NODE_OPTIONS, "--expose-gc --max-semi-space-size=2")
    assert.strictEqual(variables.MALLOC_ARENA_MAX, "2")
    assert.strictEqual(variables.MALLOC_MMAP_THRESHOLD_, "32768")
    assert.deepStrictEqual(variables.IMAGE_SOURCE, { "Fn::If": ["HasImageSource", { Ref: "ImageSource" }, { Ref: "AWS::NoValue" }] })
  })

  it("maps the queue to the function with ReportBatchItemFailures, a batch size and a maximum concurrency", () => {
    const mapping = properties("QueueMapping")
    assert.deepStrictEqual(mapping.EventSourceArn, { "Fn::GetAtt": ["StateQueue", "Arn"] })
    assert.deepStrictEqual(mapping.FunctionResponseTypes, ["ReportBatchItemFailures"])
    assert.deepStrictEqual(mapping.BatchSize, { Ref: "BatchSize" })
    assert.deepStrictEqual(mapping.ScalingConfig, { MaximumConcurrency: { Ref: "MaximumConcurrency" } })
  })

  it("grants the role exactly the listed actions, each on its own resource, and nothing with a wildcard", () => {
    const role = properties("FunctionRole")
    assert.deepStrictEqual(role.AssumeRolePolicyDocument.Statement, [
      { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" }
    ])
    assert.isUndefined(role.ManagedPolicyArns)
    assert.lengthOf(role.Policies, 1)
    const granted = (role.Policies[0].PolicyDocument.Statement as Array<Json>).map((statement) => {
      assert.strictEqual(statement.Effect, "Allow")
      return { actions: [statement.Action].flat().sort(), resource: statement.Resource }
    })
    assert.deepStrictEqual(granted, [
      {
        actions: ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"],
        resource: { "Fn::GetAtt": ["StateQueue", "Arn"] }
      },
      { actions: ["sqs:SendMessage"], resource: { "Fn::GetAtt": ["DeadLetterQueue", "Arn"] } },
      { actions: ["dynamodb:PutItem", "dynamodb:UpdateItem"], resource: { "Fn::GetAtt": ["LedgerTable", "Arn"] } },
      { actions: ["s3:GetObject", "s3:PutObject"], resource: { "Fn::Sub": "${Bucket.Arn}/*" } },
      { actions: ["s3:ListBucket"], resource: { "Fn::GetAtt": ["Bucket", "Arn"] } },
      { actions: ["logs:CreateLogStream", "logs:PutLogEvents"], resource: { "Fn::GetAtt": ["LogGroup", "Arn"] } }
    ])
    const listing = (role.Policies[0].PolicyDocument.Statement as Array<Json>).find((statement) => statement.Action === "s3:ListBucket")
    assert.deepStrictEqual(listing?.Condition, { StringLike: { "s3:prefix": "raw/*" } }, "listing only the raw images")
  })

  it("makes the ledger table on demand, keyed by trace id and step, indexed by record id, its claims expiring by TTL on expiresAt", () => {
    const table = resource("LedgerTable")
    assert.strictEqual(table.Type, "AWS::DynamoDB::Table")
    assert.deepStrictEqual([table.DeletionPolicy, table.UpdateReplacePolicy], ["Delete", "Delete"], "goes with the queues")
    assert.strictEqual(table.Properties.BillingMode, "PAY_PER_REQUEST")
    assert.isUndefined(table.Properties.ProvisionedThroughput)
    assert.deepStrictEqual(table.Properties.KeySchema, [
      { AttributeName: "traceId", KeyType: "HASH" },
      { AttributeName: "step", KeyType: "RANGE" }
    ])
    assert.deepStrictEqual(table.Properties.AttributeDefinitions, [
      { AttributeName: "traceId", AttributeType: "S" },
      { AttributeName: "step", AttributeType: "N" },
      { AttributeName: "recordId", AttributeType: "S" }
    ])
    // chains by record id (trace RECORD_ID), keys only: the history is read from the table
    assert.deepStrictEqual(table.Properties.GlobalSecondaryIndexes, [
      { IndexName: "byRecordId", KeySchema: [{ AttributeName: "recordId", KeyType: "HASH" }], Projection: { ProjectionType: "KEYS_ONLY" } }
    ])
    assert.deepStrictEqual(table.Properties.TimeToLiveSpecification, { AttributeName: "expiresAt", Enabled: true })
    // no fixed name: a key change replaces the table, which needs a new name
    assert.isUndefined(table.Properties.TableName)
  })

  it("outputs the queue URLs, the bucket, the ledger table and the function name", () => {
    assert.deepStrictEqual(Object.keys(template.Outputs).sort(), ["BucketName", "DeadLetterQueueUrl", "FunctionName", "LedgerTableName", "QueueUrl"])
    assert.deepStrictEqual(template.Outputs.LedgerTableName.Value, { Ref: "LedgerTable" })
  })
})
