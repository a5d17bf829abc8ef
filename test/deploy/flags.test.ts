/**
 * `npm run deploy`'s flags reach the stack: `--arch`, `--pipeline` and `--param Key=Value`, in one
 * deploy on moto (a child process of the CLI's `deploy`, as a user runs it), checked through the
 * services' own APIs; then a deploy without them keeps them; and a wrong flag fails naming it.
 *
 * The x86_64 zip is built once here (about 10 s; sharp for linux-x64 is cached under .tools/).
 * moto reports every function as x86_64 whatever it was given, so the architecture is checked on
 * the stack's parameter and in the uploaded zip's sharp binaries.
 */
import "../support/awsEnv.ts"
import {
  CloudFormationClient,
  type CreateChangeSetCommandInput,
  DescribeStackResourcesCommand,
  DescribeStacksCommand,
  type Parameter,
  type Stack
} from "@aws-sdk/client-cloudformation"
import { GetFunctionConfigurationCommand, LambdaClient, ListEventSourceMappingsCommand } from "@aws-sdk/client-lambda"
import { GetObjectCommand } from "@aws-sdk/client-s3"
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { root } from "../../src/deploy/build.ts"
import { deploy, s3Client } from "../../src/deploy/deploy.ts"
import { uniqueName } from "../support/aws.ts"

const execFileAsync = promisify(execFile)

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** `npm run deploy -- ...args`, as a child process; its exit code and output. */
const runDeploy = async (args: ReadonlyArray<string>): Promise<Run> => {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [join(root, "src", "bin", "cli.ts"), "deploy", ...args], {
      cwd: root,
      maxBuffer: 1 << 20
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const { code, stdout = "", stderr = "" } = error as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof code === "number" ? code : -1, stdout, stderr }
  }
}

const succeeded = (run: Run): string => {
  assert.strictEqual(run.code, 0, `deploy failed:\n${run.stdout}${run.stderr}`)
  return run.stdout
}

const stackName = uniqueName("flags")
const cfn = new CloudFormationClient({})
const lambda = new LambdaClient({})
const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
const s3 = s3Client()
let resources: Record<string, string> = {}

const describeStack = async (): Promise<Stack> => (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks![0]!
const parameter = (stack: Stack, key: string) => stack.Parameters?.find((p) => p.ParameterKey === key)?.ParameterValue
const functionConfiguration = () => lambda.send(new GetFunctionConfigurationCommand({ FunctionName: resources["Function"] }))
const mapping = async () =>
  (await lambda.send(new ListEventSourceMappingsCommand({ FunctionName: resources["Function"] }))).EventSourceMappings?.[0]
const visibilityTimeout = async () =>
  Number((await sqs.send(new GetQueueAttributesCommand({ QueueUrl: resources["StateQueue"], AttributeNames: ["VisibilityTimeout"] })))
    .Attributes?.["VisibilityTimeout"])

beforeAll(async () => {
  succeeded(
    await runDeploy([
      "--stack", stackName,
      "--arch", "x86_64",
      "--pipeline", "greeting",
      "--param", "BatchSize=3",
      "--param", "FunctionTimeout=120",
      "--param", "MaximumConcurrency=7"
    ])
  )
  const { StackResources = [] } = await cfn.send(new DescribeStackResourcesCommand({ StackName: stackName }))
  resources = Object.fromEntries(StackResources.map((r) => [r.LogicalResourceId!, r.PhysicalResourceId!]))
}, 120_000)

afterAll(() => {
  for (const client of [cfn, lambda, sqs, s3]) client.destroy()
})

describe("npm run deploy's flags, on moto", () => {
  it("--arch x86_64: the stack's Architecture, and the function's zip is the x86_64 build (sharp for linux-x64)", async () => {
    const stack = await describeStack()
    assert.strictEqual(parameter(stack, "Architecture"), "x86_64")
    const key = parameter(stack, "CodeKey")!
    assert.match(key, new RegExp(`^${stackName}/function-x86_64-[0-9a-f]{64}\\.zip$`))
    const zip = Buffer.from(
      await (await s3.send(new GetObjectCommand({ Bucket: parameter(stack, "CodeBucket"), Key: key }))).Body!.transformToByteArray()
    )
    // entry names are stored as they are in a zip's headers
    assert.isTrue(zip.includes("node_modules/@img/sharp-linux-x64/"), "sharp's linux-x64 binary")
    assert.isFalse(zip.includes("node_modules/@img/sharp-linux-arm64/"), "no arm64 binary")
  })

  it("--pipeline greeting: the function's PIPELINE_NAME", async () => {
    assert.strictEqual((await functionConfiguration()).Environment?.Variables?.["PIPELINE_NAME"], "greeting")
  })

  it("--param: BatchSize and MaximumConcurrency on the queue's mapping, FunctionTimeout on the function and the queue", async () => {
    const queueMapping = await mapping()
    assert.strictEqual(queueMapping?.BatchSize, 3)
    assert.deepStrictEqual(queueMapping?.ScalingConfig, { MaximumConcurrency: 7 })
    assert.strictEqual(Number((await functionConfiguration()).Timeout), 120)
    assert.strictEqual(await visibilityTimeout(), 720, "six times the function's timeout")
  })

  it("a later deploy without the flags keeps them all, asking CloudFormation for each previous value", async () => {
    // moto keeps an omitted parameter's value where CloudFormation would take the template's default: check the request too
    const recording = new CloudFormationClient({})
    const sent: Array<Parameter> = []
    recording.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === "CreateChangeSetCommand") sent.push(...((args.input as CreateChangeSetCommandInput).Parameters ?? []))
        return next(args)
      },
      { step: "initialize", name: "recordChangeSetParameters" }
    )
    try {
      // in process: no flags to parse. "No changes", unless the sources changed since the first deploy
      await deploy({ stackName, parameters: {} }, { cfn: recording, s3 })
    } finally {
      recording.destroy()
    }
    const kept = sent.filter((p) => p.UsePreviousValue === true).map((p) => p.ParameterKey)
    assert.includeMembers(kept, ["PipelineName", "BatchSize", "FunctionTimeout", "MaximumConcurrency"])
    assert.deepStrictEqual(sent.find((p) => p.ParameterKey === "Architecture"), { ParameterKey: "Architecture", ParameterValue: "x86_64" })

    const stack = await describeStack()
    assert.strictEqual(parameter(stack, "Architecture"), "x86_64")
    assert.match(parameter(stack, "CodeKey")!, /function-x86_64-/)
    assert.strictEqual((await functionConfiguration()).Environment?.Variables?.["PIPELINE_NAME"], "greeting")
    assert.strictEqual((await mapping())?.BatchSize, 3)
    assert.strictEqual(Number((await functionConfiguration()).Timeout), 120)
  })

  it("a wrong flag fails naming it (a parameter the stack lacks: 1; bad usage: 2), and changes nothing", async () => {
    const before = await describeStack()
    const runs = await Promise.all([
      runDeploy(["--stack", stackName, "--param", "Nope=1"]),
      runDeploy(["--stack", stackName, "--param", "BatchSize"]),
      runDeploy(["--stack", stackName, "--arch", "sparc"])
    ])
    assert.deepStrictEqual(runs.map((run) => run.code), [1, 2, 2])
    assert.include(runs[0]!.stderr, "has no parameter Nope")
    assert.include(runs[1]!.stderr, `Invalid value for flag --param: "BatchSize"`)
    assert.include(runs[2]!.stderr, `Invalid value for flag --arch: "sparc". Expected: "arm64" | "x86_64"`)
    const after = await describeStack()
    assert.strictEqual(after.LastUpdatedTime?.getTime(), before.LastUpdatedTime?.getTime())
    assert.deepStrictEqual(after.Parameters, before.Parameters)
  })
})
