/**
 * `npm run deploy` and `npm run publish:code` against moto's server, run as a user runs them (child
 * processes of the CLI's `deploy` and `publish`, configured only by AWS_* variables), then
 * checked resource by resource through the services' own APIs.
 *
 * What moto's CloudFormation does not apply, and so is checked on the template instead
 * (template.test.ts): the bucket's PublicAccessBlockConfiguration and OwnershipControls, the
 * function's Architectures and LoggingConfig, and stack Outputs for stacks made by change sets.
 * Nor does it apply the ledger table's TimeToLiveSpecification: `deploy` turns TTL on when a stack
 * left it off, and the test below checks the result.
 */
import "../support/awsEnv.ts"
import {
  CloudFormationClient,
  DescribeStackResourcesCommand,
  DescribeStacksCommand,
  type DescribeStacksCommandOutput,
  type ResourceStatus,
  type Stack,
  type StackEvent
} from "@aws-sdk/client-cloudformation"
import { DescribeTableCommand, DescribeTimeToLiveCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { GetFunctionConfigurationCommand, type GetFunctionConfigurationCommandOutput, LambdaClient, ListEventSourceMappingsCommand, UpdateFunctionCodeCommand } from "@aws-sdk/client-lambda"
import { GetBucketEncryptionCommand, GetObjectCommand, GetPublicAccessBlockCommand, HeadBucketCommand, S3Client } from "@aws-sdk/client-s3"
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, inject } from "vitest"
import { isArchitecture, root, writeZip, zipPath } from "../../src/deploy/build.ts"
import { deploy, s3Client } from "../../src/deploy/deploy.ts"
import { uniqueName } from "../support/aws.ts"

const execFileAsync = promisify(execFile)

/** Runs the CLI's `<name>` as `npm run <name> -- ...args` would; returns what it printed. */
const runScript = async (name: "deploy" | "publish", args: ReadonlyArray<string>): Promise<string> => {
  try {
    const { stdout } = await execFileAsync(process.execPath, [join(root, "src", "bin", "cli.ts"), name, ...args], { cwd: root, maxBuffer: 1 << 20 })
    return stdout
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    throw new Error(`npm run ${name} -- ${args.join(" ")} failed:\n${stdout ?? ""}${stderr ?? String(error)}`)
  }
}

// IAM and CloudWatch Logs have no SDK client in this project: ask moto directly (it checks no signature)
const authorization = (service: string) =>
  `AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=0`

const iamQuery = async (params: Record<string, string>): Promise<string> => {
  const response = await fetch(`${inject("motoEndpoint")}/`, {
    method: "POST",
    body: new URLSearchParams({ Version: "2010-05-08", ...params }),
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: authorization("iam") }
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`IAM ${params["Action"]}: ${response.status} ${text}`)
  return text
}

const logsCall = async (target: string, body: object): Promise<any> => {
  const response = await fetch(`${inject("motoEndpoint")}/`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/x-amz-json-1.1", "x-amz-target": `Logs_20140328.${target}`, authorization: authorization("logs") }
  })
  if (!response.ok) throw new Error(`Logs ${target}: ${response.status} ${await response.text()}`)
  return response.json()
}

const unescapeXml = (text: string) =>
  text.replace(/&quot;/g, "\"").replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&")

/** IAM returns the document URL-encoded JSON; moto returns it as a Python dict's repr. */
const parsePolicyDocument = (text: string): any => {
  const raw = unescapeXml(text)
  try {
    return JSON.parse(decodeURIComponent(raw))
  } catch {
    return JSON.parse(raw.replace(/'/g, "\"").replace(/\bTrue\b/g, "true").replace(/\bFalse\b/g, "false"))
  }
}

const base64Sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("base64")

const stackName = uniqueName("deploy")
const imageSource = "https://images.example.com/{stock_no}.jpg"

let cfn: CloudFormationClient
let lambda: LambdaClient
let sqs: SQSClient
let s3: S3Client
let dynamodb: DynamoDBClient
/** Physical ids by logical id. */
let resources: Record<string, string> = {}
let firstDeploy = ""

const describeStack = async (): Promise<Stack> =>
  (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks![0]!

const functionConfiguration = (): Promise<GetFunctionConfigurationCommandOutput> =>
  lambda.send(new GetFunctionConfigurationCommand({ FunctionName: resources["Function"] }))

const parameter = (stack: Stack, key: string) => stack.Parameters?.find((p) => p.ParameterKey === key)?.ParameterValue

/**
 * A CloudFormation client that runs the change set (or, with `execute: false`, only says it did)
 * and then shows the stack in each of `statuses` on the next DescribeStacks calls, the last one for
 * good, and `events` as its events.
 */
const cloudFormationSeeing = (script: { execute: boolean; statuses: ReadonlyArray<string>; events?: ReadonlyArray<StackEvent> }) => {
  const client = new CloudFormationClient({})
  let executed = false
  let polls = 0
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const answer = (output: object) => ({ output: { $metadata: {}, ...output }, response: {} }) as Awaited<ReturnType<typeof next>>
      if (context.commandName === "ExecuteChangeSetCommand") {
        executed = true
        if (!script.execute) return answer({})
      }
      if (executed && context.commandName === "DescribeStacksCommand") {
        const status = script.statuses[Math.min(polls++, script.statuses.length - 1)]
        const result = await next(args)
        const { Stacks = [] } = result.output as DescribeStacksCommandOutput
        return { ...result, output: { ...result.output, Stacks: Stacks.map((stack) => ({ ...stack, StackStatus: status })) } }
      }
      if (executed && script.events !== undefined && context.commandName === "DescribeStackEventsCommand") return answer({ StackEvents: script.events })
      return next(args)
    },
    { step: "initialize", name: "cloudFormationSeeing" }
  )
  return client
}

beforeAll(async () => {
  cfn = new CloudFormationClient({})
  lambda = new LambdaClient({})
  sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
  s3 = s3Client()
  dynamodb = new DynamoDBClient({})
  firstDeploy = await runScript("deploy", ["--stack", stackName, "--image-source", imageSource])
  const { StackResources = [] } = await cfn.send(new DescribeStackResourcesCommand({ StackName: stackName }))
  resources = Object.fromEntries(StackResources.map((r) => [r.LogicalResourceId!, r.PhysicalResourceId!]))
}, 180_000)

afterAll(() => {
  for (const client of [cfn, lambda, sqs, s3, dynamodb]) client?.destroy()
})

describe("npm run deploy on moto", () => {
  it("creates the stack through a change set, from the zip it built and uploaded to the artifacts bucket", async () => {
    assert.match(firstDeploy, new RegExp(`Creating stack ${stackName}`))
    assert.match(firstDeploy, /Add Function AWS::Lambda::Function/)
    const stack = await describeStack()
    assert.strictEqual(stack.StackStatus, "CREATE_COMPLETE")
    assert.deepStrictEqual(Object.keys(resources).sort(), ["Bucket", "DeadLetterQueue", "Function", "FunctionRole", "LedgerTable", "LogGroup", "QueueMapping", "StateQueue"])
    assert.strictEqual(parameter(stack, "Architecture"), "arm64")

    const bucket = parameter(stack, "CodeBucket")!
    const key = parameter(stack, "CodeKey")!
    const match = new RegExp(`^${stackName}/function-arm64-([0-9a-f]{64})\\.zip$`).exec(key)
    assert.isNotNull(match, key)
    const uploaded = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray()
    assert.strictEqual(createHash("sha256").update(uploaded).digest("hex"), match![1])
    assert.strictEqual((await functionConfiguration()).CodeSha256, base64Sha256(uploaded))
    const block = await s3.send(new GetPublicAccessBlockCommand({ Bucket: bucket }))
    assert.deepStrictEqual(block.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      IgnorePublicAcls: true,
      BlockPublicPolicy: true,
      RestrictPublicBuckets: true
    })
  })

  it("gives the state queue a redrive policy to the dead-letter queue and six times the function's timeout", async () => {
    const attributes = async (queueUrl: string) =>
      (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }))).Attributes ?? {}
    const queue = await attributes(resources["StateQueue"]!)
    const dlq = await attributes(resources["DeadLetterQueue"]!)
    const redrive = JSON.parse(queue["RedrivePolicy"]!) as { deadLetterTargetArn: string; maxReceiveCount: number | string }
    assert.strictEqual(redrive.deadLetterTargetArn, dlq["QueueArn"])
    assert.strictEqual(Number(redrive.maxReceiveCount), 5)
    const timeout = Number((await functionConfiguration()).Timeout)
    assert.strictEqual(timeout, 60)
    assert.strictEqual(Number(queue["VisibilityTimeout"]), 6 * timeout)
  })

  it("creates the bucket, encrypted (its public access block is checked on the template: moto ignores it)", async () => {
    await s3.send(new HeadBucketCommand({ Bucket: resources["Bucket"] }))
    const encryption = await s3.send(new GetBucketEncryptionCommand({ Bucket: resources["Bucket"] }))
    assert.strictEqual(encryption.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm, "AES256")
  })

  it("creates the ledger table on demand, keyed by trace id and step, with TTL on expiresAt", async () => {
    const table = resources["LedgerTable"]!
    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: table }))
    assert.deepStrictEqual(Table?.KeySchema, [{ AttributeName: "traceId", KeyType: "HASH" }, { AttributeName: "step", KeyType: "RANGE" }])
    assert.deepStrictEqual(Table?.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.KeySchema]), [["byRecordId", [{ AttributeName: "recordId", KeyType: "HASH" }]]])
    assert.strictEqual(Table?.BillingModeSummary?.BillingMode, "PAY_PER_REQUEST")
    const { TimeToLiveDescription } = await dynamodb.send(new DescribeTimeToLiveCommand({ TableName: table }))
    assert.deepStrictEqual(TimeToLiveDescription, { TimeToLiveStatus: "ENABLED", AttributeName: "expiresAt" })
    assert.match(firstDeploy, new RegExp(`Turned on TTL \\(expiresAt\\) of the ledger table ${table}`), "moto's CloudFormation ignores TimeToLiveSpecification; if it applies it now, this line and deploy's fallback can go")
  })

  it("gives the function's role exactly the listed actions, on this stack's queue, DLQ, ledger table, bucket objects and log group", async () => {
    const role = resources["FunctionRole"]!
    const attached = await iamQuery({ Action: "ListAttachedRolePolicies", RoleName: role })
    assert.notInclude(attached, "<PolicyArn>")
    const names = [...(await iamQuery({ Action: "ListRolePolicies", RoleName: role })).matchAll(/<member>([^<]+)<\/member>/g)].map((m) => m[1]!)
    assert.deepStrictEqual(names, ["pipeline"])
    const xml = await iamQuery({ Action: "GetRolePolicy", RoleName: role, PolicyName: "pipeline" })
    const document = parsePolicyDocument(/<PolicyDocument>([\s\S]*?)<\/PolicyDocument>/.exec(xml)![1]!)
    const grants = (document.Statement as Array<{ Effect: string; Action: string | Array<string>; Resource: string }>).map((statement) => {
      assert.strictEqual(statement.Effect, "Allow")
      return { actions: [statement.Action].flat().sort(), resource: statement.Resource }
    })
    const queueArn = `arn:aws:sqs:us-east-1:123456789012:${resources["StateQueue"]!.split("/").at(-1)}`
    const dlqArn = `arn:aws:sqs:us-east-1:123456789012:${resources["DeadLetterQueue"]!.split("/").at(-1)}`
    const tableArn = `arn:aws:dynamodb:us-east-1:123456789012:table/${resources["LedgerTable"]}`
    assert.deepStrictEqual(grants.slice(0, 5), [
      {
        actions: ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"],
        resource: queueArn
      },
      { actions: ["sqs:SendMessage"], resource: dlqArn },
      { actions: ["dynamodb:PutItem", "dynamodb:UpdateItem"], resource: tableArn },
      { actions: ["s3:GetObject", "s3:PutObject"], resource: `arn:aws:s3:::${resources["Bucket"]}/*` },
      { actions: ["s3:ListBucket"], resource: `arn:aws:s3:::${resources["Bucket"]}` }
    ])
    // moto's log group ARN lacks the ":*" that AWS's GetAtt adds
    assert.deepStrictEqual(grants[5]?.actions, ["logs:CreateLogStream", "logs:PutLogEvents"])
    assert.match(grants[5]!.resource, new RegExp(`^arn:aws:logs:us-east-1:123456789012:log-group:${resources["LogGroup"]}(:\\*)?$`))
    assert.lengthOf(grants, 6)
    for (const { actions } of grants) for (const action of actions) assert.notInclude(action, "*")
  })

  it("configures the function: nodejs24.x, the bundle's handler, 128 MB, the pipeline's environment", async () => {
    const fn = await functionConfiguration()
    assert.strictEqual(fn.Runtime, "nodejs24.x")
    assert.strictEqual(fn.Handler, "dist/lambda/handler.handler")
    assert.strictEqual(fn.MemorySize, 128)
    assert.strictEqual(fn.Role?.split("/").at(-1), resources["FunctionRole"])
    assert.deepStrictEqual(fn.Environment?.Variables, {
      PIPELINE_QUEUE_URL: resources["StateQueue"]!,
      PIPELINE_DLQ_URL: resources["DeadLetterQueue"]!,
      PIPELINE_BUCKET: resources["Bucket"]!,
      PIPELINE_LEDGER_TABLE: resources["LedgerTable"]!,
      IMAGE_SOURCE: imageSource,
      THUMBNAIL_SIZES: "100,200",
      PIPELINE_METRICS_NAMESPACE: "sqs-state-pipeline",
      PIPELINE_RUN_AHEAD: "30 seconds",
      NODE_OPTIONS: "--expose-gc --max-semi-space-size=2",
      MALLOC_ARENA_MAX: "2",
      MALLOC_MMAP_THRESHOLD_: "32768"
    })
  })

  it("maps the queue to the function with ReportBatchItemFailures, batch size 10 and maximum concurrency 5", async () => {
    const { EventSourceMappings = [] } = await lambda.send(new ListEventSourceMappingsCommand({ FunctionName: resources["Function"] }))
    assert.lengthOf(EventSourceMappings, 1)
    const mapping = EventSourceMappings[0]!
    assert.strictEqual(mapping.UUID, resources["QueueMapping"])
    assert.strictEqual(mapping.EventSourceArn?.split(":").at(-1), resources["StateQueue"]!.split("/").at(-1))
    assert.deepStrictEqual(mapping.FunctionResponseTypes, ["ReportBatchItemFailures"])
    assert.strictEqual(mapping.BatchSize, 10)
    assert.deepStrictEqual(mapping.ScalingConfig, { MaximumConcurrency: 5 })
  })

  it("creates the log group with a 14-day retention", async () => {
    const { logGroups } = await logsCall("DescribeLogGroups", { logGroupNamePrefix: resources["LogGroup"] }) as {
      logGroups: Array<{ logGroupName: string; retentionInDays?: number }>
    }
    assert.deepStrictEqual(logGroups.map((g) => [g.logGroupName, g.retentionInDays]), [[resources["LogGroup"], 14]])
  })

  it("does nothing on a second deploy with no change", async () => {
    const before = await functionConfiguration()
    const output = await runScript("deploy", ["--stack", stackName])
    assert.match(output, /No changes: stack .* is up to date/)
    assert.notMatch(output, /Uploaded/)
    const after = await functionConfiguration()
    assert.strictEqual(after.CodeSha256, before.CodeSha256)
    assert.strictEqual(after.LastModified, before.LastModified)
    assert.strictEqual((await describeStack()).StackStatus, "CREATE_COMPLETE")
  })

  it("on CloudFormation's answer to no change (a FAILED change set), deletes that change set and says no changes", async () => {
    // moto refuses such a change set outright; CloudFormation creates it and fails it. Emulate that.
    const client = new CloudFormationClient({})
    const fakeId = `arn:aws:cloudformation:us-east-1:123456789012:changeSet/no-change/${stackName}`
    const deleted: Array<string> = []
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { ChangeSetName?: string }
        const answer = (output: object) => ({ output: { $metadata: {}, ...output }, response: {} }) as Awaited<ReturnType<typeof next>>
        if (context.commandName === "CreateChangeSetCommand") {
          try {
            return await next(args)
          } catch (error) {
            if (/No updates are to be performed/.test(String(error))) return answer({ Id: fakeId })
            throw error
          }
        }
        if (context.commandName === "DescribeChangeSetCommand" && input.ChangeSetName === fakeId) {
          return answer({
            Status: "FAILED",
            StatusReason: "The submitted information didn't contain changes. Submit different information to create a change set."
          })
        }
        if (context.commandName === "DeleteChangeSetCommand" && input.ChangeSetName === fakeId) {
          deleted.push(fakeId)
          return answer({})
        }
        return next(args)
      },
      { step: "initialize", name: "cloudFormationNoChangeAnswer" }
    )
    try {
      const result = await deploy({ stackName, parameters: {} }, { cfn: client, s3 })
      assert.isFalse(result.changed)
      assert.deepStrictEqual(deleted, [fakeId])
    } finally {
      client.destroy()
    }
  })

  it("updates what a flag changes, and keeps it on later deploys that do not repeat the flag", async () => {
    const updated = await runScript("deploy", ["--stack", stackName, "--memory", "256"])
    assert.match(updated, new RegExp(`Stack ${stackName}: UPDATE_COMPLETE`))
    assert.strictEqual((await functionConfiguration()).MemorySize, 256)
    const again = await runScript("deploy", ["--stack", stackName])
    assert.match(again, /No changes/)
    const fn = await functionConfiguration()
    assert.strictEqual(fn.MemorySize, 256)
    assert.strictEqual(fn.Environment?.Variables?.["IMAGE_SOURCE"], imageSource)
  })

  it("waits while the stack is still updating, then reports it complete", async () => {
    // moto's stacks are complete as soon as the change set runs: show one poll of UPDATE_IN_PROGRESS first
    const client = cloudFormationSeeing({ execute: true, statuses: ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"] })
    try {
      const result = await deploy({ stackName, parameters: { MemorySize: "320" } }, { cfn: client, s3 })
      assert.isTrue(result.changed)
      assert.strictEqual((await describeStack()).StackStatus, "UPDATE_COMPLETE")
      assert.strictEqual((await functionConfiguration()).MemorySize, 320)
    } finally {
      client.destroy()
    }
  })

  // CloudFormation's answers for a deploy that fails and rolls back, which moto never gives
  for (const [change, failed] of [["create", "ROLLBACK"], ["update", "UPDATE_ROLLBACK"]] as const) {
    it(`on a failed ${change}, waits for the rollback and names each resource that failed, with its reason`, async () => {
      const name = change === "create" ? uniqueName("failed") : stackName
      const now = Date.now()
      const event = (secondsAgo: number, LogicalResourceId: string, ResourceStatus: ResourceStatus, ResourceStatusReason?: string): StackEvent => ({
        StackId: name, StackName: name, EventId: `${LogicalResourceId}-${secondsAgo}`, Timestamp: new Date(now - secondsAgo * 1000),
        LogicalResourceId, ResourceStatus, ResourceStatusReason
      })
      const action = change === "create" ? "CREATE" : "UPDATE"
      const client = cloudFormationSeeing({
        execute: false,
        statuses: [`${failed}_IN_PROGRESS`, `${failed}_COMPLETE`],
        events: [ // newest first, as CloudFormation lists them
          event(0, name, `${failed}_COMPLETE`),
          event(5, "Function", `${action}_FAILED`, "Resource handler returned message: \"MemorySize out of range\""),
          event(6, "LedgerTable", `${action}_FAILED`, `Resource ${change} cancelled`),
          event(10, name, `${action}_IN_PROGRESS`, "User Initiated"),
          event(3600, "Bucket", `${action}_FAILED`, "a failure of an earlier deploy")
        ]
      })
      try {
        const outcome = await deploy({ stackName: name, parameters: { MemorySize: "640" } }, { cfn: client, s3 }).then(
          () => "deployed",
          (error: unknown) => (error as Error).message
        )
        assert.strictEqual(
          outcome,
          `stack ${name} ended in ${failed}_COMPLETE:\n  LedgerTable: Resource ${change} cancelled\n  Function: Resource handler returned message: "MemorySize out of range"`
        )
      } finally {
        client.destroy()
      }
    })
  }
})

// publish builds the zip when the source changed since the last build: minutes on a busy 2-core machine
describe("npm run publish:code on moto", { timeout: 120_000 }, () => {
  it("replaces the function's code with the local zip, and nothing else", async () => {
    // code that is not this build's, as after someone else's publish
    const stale = writeZip([{ name: "dist/lambda/handler.js", data: Buffer.from("export const handler = async () => ({})\n"), mode: 0o644 }])
    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: resources["Function"], ZipFile: stale }))
    const before = await functionConfiguration()
    assert.strictEqual(before.CodeSha256, base64Sha256(stale))

    const output = await runScript("publish", ["--stack", stackName])
    const after = await functionConfiguration()
    assert.include(output, `CodeSha256 ${after.CodeSha256}`)
    assert.notStrictEqual(after.CodeSha256, before.CodeSha256)
    // the zip for the architecture the function reports (moto always reports x86_64)
    const arch = after.Architectures?.[0] ?? ""
    assert.isTrue(isArchitecture(arch), arch)
    if (isArchitecture(arch)) assert.strictEqual(after.CodeSha256, base64Sha256(readFileSync(zipPath(arch))))
    assert.strictEqual(after.MemorySize, before.MemorySize)
    assert.deepStrictEqual(after.Environment, before.Environment)
    assert.strictEqual(after.Handler, before.Handler)
  })
})
