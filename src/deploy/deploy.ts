/**
 * `deploy --stack NAME [options]`: the whole pipeline on AWS, from infra/template.yaml.
 *
 * Builds the zip if it is missing or older than the sources, uploads it to the stack's artifacts
 * bucket (created on first use), then creates or updates the stack through a change set, waits for
 * it, turns on the ledger table's TTL if the stack left it off (emulators do), and prints the
 * stack's outputs. A deploy that changes nothing says so and leaves the stack
 * alone. Credentials and region come from the AWS SDK's default chain (environment, profile, SSO,
 * instance role): nothing is read from this repository.
 *
 * Options:
 *   --stack NAME          the CloudFormation stack (required)
 *   --arch ARCH           arm64 (default for a new stack) or x86_64; an existing stack keeps its own
 *   --memory MB           the function's memory (MemorySize)
 *   --image-source URL    IMAGE_SOURCE, a template with {stock_no}
 *   --pipeline NAME|PATH  a built-in pipeline (PIPELINE_NAME), or an author's module bundled into the function
 *   --param KEY=VALUE     any other template parameter, repeatable (for example FunctionTimeout=120)
 * A parameter not given keeps the stack's current value, or the template's default on creation.
 */
import {
  CloudFormationClient,
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DescribeChangeSetCommand,
  type DescribeChangeSetCommandOutput,
  DescribeStackEventsCommand,
  DescribeStackResourceCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
  GetTemplateSummaryCommand,
  type Parameter,
  type Stack,
  waitUntilChangeSetCreateComplete,
  waitUntilStackCreateComplete,
  waitUntilStackUpdateComplete
} from "@aws-sdk/client-cloudformation"
import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  type CreateBucketCommandInput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  S3Client
} from "@aws-sdk/client-s3"
import { DescribeTimeToLiveCommand, DynamoDBClient, UpdateTimeToLiveCommand } from "@aws-sdk/client-dynamodb"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { type Architecture, defaultArchitecture, ensureBuilt, isArchitecture, root } from "./build.ts"

export const templatePath = join(root, "infra", "template.yaml")

/** S3-compatible endpoints (moto, LocalStack) set through the environment want path-style URLs. */
export const s3Client = () =>
  new S3Client({ forcePathStyle: process.env["AWS_ENDPOINT_URL_S3"] !== undefined || process.env["AWS_ENDPOINT_URL"] !== undefined })

const errorName = (error: unknown) => (error as { name?: string }).name
const httpStatus = (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode

/** The stack, or undefined when there is none by that name. */
export const describeStack = async (cfn: CloudFormationClient, stackName: string): Promise<Stack | undefined> => {
  try {
    const { Stacks } = await cfn.send(new DescribeStacksCommand({ StackName: stackName }))
    return Stacks?.[0]
  } catch (error) {
    if (errorName(error) === "ValidationError" && /does not exist/.test(String((error as Error).message))) return undefined
    throw error
  }
}

export const stackOutputs = (stack: Stack): Record<string, string> =>
  Object.fromEntries((stack.Outputs ?? []).map((output) => [output.OutputKey ?? "", output.OutputValue ?? ""]))

// ---------------------------------------------------------------------------------------------
// the artifacts bucket

/**
 * `<stack>-artifacts-<hash>`: the hash is of the account (S3's canonical id of the caller, the only
 * account identifier the installed SDK clients can read), the region and the stack, so the same
 * stack deployed from anywhere finds the same bucket, and two accounts never ask for the same name.
 */
export const artifactsBucketName = async (s3: S3Client, region: string, stackName: string): Promise<string> => {
  const { Owner } = await s3.send(new ListBucketsCommand({ MaxBuckets: 1 }))
  if (Owner?.ID === undefined) throw new Error("S3 did not say which account these credentials belong to")
  const hash = createHash("sha256").update(`${Owner.ID}\n${region}\n${stackName}`).digest("hex").slice(0, 16)
  const prefix = stackName.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 36).replace(/-+$/, "")
  return `${prefix || "pipeline"}-artifacts-${hash}`
}

const ensureBucket = async (s3: S3Client, bucket: string, region: string) => {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }))
    return
  } catch (error) {
    if (httpStatus(error) === 403) throw new Error(`the artifacts bucket ${bucket} exists but these credentials cannot use it`)
    if (httpStatus(error) !== 404) throw error
  }
  console.log(`Creating the artifacts bucket ${bucket}`)
  const input: CreateBucketCommandInput = { Bucket: bucket }
  if (region !== "us-east-1") input.CreateBucketConfiguration = { LocationConstraint: region as BucketLocationConstraint }
  try {
    await s3.send(new CreateBucketCommand(input))
  } catch (error) {
    if (errorName(error) !== "BucketAlreadyOwnedByYou") throw error
  }
  // new buckets are private and encrypted by default; say it anyway
  await s3.send(new PutPublicAccessBlockCommand({
    Bucket: bucket,
    PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true }
  }))
}

/** Uploads the zip under a key made of its hash, unless it is there already; returns the key. */
const uploadZip = async (s3: S3Client, bucket: string, stackName: string, arch: Architecture, zip: Buffer): Promise<string> => {
  const key = `${stackName}/function-${arch}-${createHash("sha256").update(zip).digest("hex")}.zip`
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    console.log(`s3://${bucket}/${key} is already uploaded`)
    return key
  } catch (error) {
    if (httpStatus(error) !== 404) throw error
  }
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: zip, ContentType: "application/zip" }))
  console.log(`Uploaded s3://${bucket}/${key} (${(zip.length / 1024 / 1024).toFixed(1)} MiB)`)
  return key
}

// ---------------------------------------------------------------------------------------------
// the change set

const noChanges = (reason: string | undefined) =>
  reason !== undefined && (/didn't contain changes/.test(reason) || /No updates are to be performed/.test(reason))

/**
 * How the SDK's waiters poll here: first at once, then from 1 s backing off to `maxDelay` (the
 * SDK's defaults, 30 s to 120 s, would add half a minute to a deploy that takes seconds), for at
 * most `minutes`.
 */
const polling = (cfn: CloudFormationClient, maxDelay: number, minutes: number) =>
  ({ client: cfn, minDelay: 1, maxDelay, maxWaitTime: minutes * 60 })

/** A waiter's timeout says so in JSON: say it in words, with where the wait stopped. */
const stillWaiting = (error: unknown, what: string, status: string | undefined, minutes: number) =>
  (error as Error).name === "TimeoutError" ? new Error(`${what} is still ${status} after ${minutes} minutes; deploy stopped waiting`) : error

/** The change set once CloudFormation has made it: CREATE_COMPLETE, or FAILED with its reason. */
const settledChangeSet = async (cfn: CloudFormationClient, id: string, name: string): Promise<DescribeChangeSetCommandOutput> => {
  const minutes = 10
  try {
    return (await waitUntilChangeSetCreateComplete(polling(cfn, 5, minutes), { ChangeSetName: id })).final!
  } catch (error) {
    // FAILED ends the waiter with an error of JSON: read the status and its reason from the change set itself
    const changeSet = await cfn.send(new DescribeChangeSetCommand({ ChangeSetName: id }))
    if (changeSet.Status === "FAILED" || changeSet.Status === "CREATE_COMPLETE") return changeSet
    throw stillWaiting(error, `change set ${name}`, changeSet.Status, minutes)
  }
}

/** The stack once the change set has run; else an error naming the resources that failed and why. */
const settledStack = async (cfn: CloudFormationClient, stackName: string, creating: boolean, since: Date): Promise<Stack> => {
  const minutes = 60
  const waitUntil = creating ? waitUntilStackCreateComplete : waitUntilStackUpdateComplete
  try {
    return (await waitUntil(polling(cfn, 10, minutes), { StackName: stackName })).final!.Stacks![0]!
  } catch (error) {
    const stack = await describeStack(cfn, stackName)
    if (stack === undefined) throw new Error(`stack ${stackName} disappeared`)
    if (stack.StackStatus === "CREATE_COMPLETE" || stack.StackStatus === "UPDATE_COMPLETE") return stack // just after a timeout
    if (stack.StackStatus?.endsWith("_IN_PROGRESS")) throw stillWaiting(error, `stack ${stackName}`, stack.StackStatus, minutes)
    const { StackEvents } = await cfn.send(new DescribeStackEventsCommand({ StackName: stackName }))
    const failures = (StackEvents ?? [])
      .filter((event) => event.Timestamp !== undefined && event.Timestamp >= since && event.ResourceStatus?.endsWith("_FAILED"))
      .map((event) => `  ${event.LogicalResourceId}: ${event.ResourceStatusReason}`)
    throw new Error(`stack ${stackName} ended in ${stack.StackStatus}${failures.length > 0 ? `:\n${failures.reverse().join("\n")}` : ""}`)
  }
}

// ---------------------------------------------------------------------------------------------
// the ledger table's TTL

/** The template's TimeToLiveSpecification of LedgerTable. */
const LEDGER_TTL_ATTRIBUTE = "expiresAt"

/**
 * Turns on the ledger table's TTL when the stack left it off. CloudFormation applies the template's
 * TimeToLiveSpecification itself, so on AWS this only looks; emulators (moto) ignore it, and
 * without TTL the claims would pile up forever. A failure here is a warning: the stack is fine.
 */
const ensureLedgerTtl = async (cfn: CloudFormationClient, dynamodb: DynamoDBClient, stackName: string) => {
  try {
    const { StackResourceDetail } = await cfn.send(new DescribeStackResourceCommand({ StackName: stackName, LogicalResourceId: "LedgerTable" }))
    const table = StackResourceDetail?.PhysicalResourceId
    if (table === undefined) return
    const { TimeToLiveDescription } = await dynamodb.send(new DescribeTimeToLiveCommand({ TableName: table }))
    const status = TimeToLiveDescription?.TimeToLiveStatus
    if ((status === "ENABLED" || status === "ENABLING") && TimeToLiveDescription?.AttributeName === LEDGER_TTL_ATTRIBUTE) return
    await dynamodb.send(new UpdateTimeToLiveCommand({
      TableName: table,
      TimeToLiveSpecification: { AttributeName: LEDGER_TTL_ATTRIBUTE, Enabled: true }
    }))
    console.log(`Turned on TTL (${LEDGER_TTL_ATTRIBUTE}) of the ledger table ${table}: the stack had left it ${status ?? "unset"}`)
  } catch (error) {
    console.warn(`warning: could not check the TTL of the ledger table: ${error instanceof Error ? error.message : String(error)}`)
  }
}

export interface DeployOptions {
  readonly stackName: string
  /** Template parameters given on the command line (the rest keep their current values). */
  readonly parameters: Readonly<Record<string, string>>
  readonly arch?: Architecture | undefined
  /** An author's pipeline module to bundle instead of the built-in pipelines. */
  readonly pipelinePath?: string | undefined
}

export interface DeployResult {
  readonly changed: boolean
  readonly outputs: Record<string, string>
}

/** Clients to use instead of the default ones (tests); they are not destroyed. */
export interface DeployClients {
  readonly cfn: CloudFormationClient
  readonly s3: S3Client
  readonly dynamodb?: DynamoDBClient | undefined
}

export const deploy = async (options: DeployOptions, clients?: DeployClients): Promise<DeployResult> => {
  const cfn = clients?.cfn ?? new CloudFormationClient({})
  const s3 = clients?.s3 ?? s3Client()
  const dynamodb = clients?.dynamodb ?? new DynamoDBClient({})
  try {
    const region = await cfn.config.region()
    const { stackName } = options
    const template = readFileSync(templatePath, "utf8")
    const { Parameters: declared = [] } = await cfn.send(new GetTemplateSummaryCommand({ TemplateBody: template }))
    const declaredKeys = new Set(declared.map((parameter) => parameter.ParameterKey))
    for (const key of Object.keys(options.parameters)) {
      if (!declaredKeys.has(key)) throw new Error(`${templatePath} has no parameter ${key}`)
    }

    const existing = await describeStack(cfn, stackName)
    const status = existing?.StackStatus
    if (status !== undefined && status.endsWith("_IN_PROGRESS") && status !== "REVIEW_IN_PROGRESS") {
      throw new Error(`stack ${stackName} is busy (${status}); deploy again when it is done`)
    }
    if (status === "ROLLBACK_COMPLETE" || status === "ROLLBACK_FAILED" || status === "DELETE_FAILED") {
      throw new Error(`stack ${stackName} is ${status} and cannot be updated: delete it (aws cloudformation delete-stack --stack-name ${stackName}) and deploy again`)
    }
    const creating = existing === undefined || status === "REVIEW_IN_PROGRESS"
    const previous = new Map((creating ? [] : existing?.Parameters ?? []).map((p) => [p.ParameterKey, p.ParameterValue]))

    const previousArch = previous.get("Architecture")
    const arch = options.arch ?? (previousArch !== undefined && isArchitecture(previousArch) ? previousArch : defaultArchitecture)
    const zip = readFileSync(await ensureBuilt(arch, options.pipelinePath))
    const bucket = await artifactsBucketName(s3, region, stackName)
    await ensureBucket(s3, bucket, region)
    const key = await uploadZip(s3, bucket, stackName, arch, zip)

    const given: Record<string, string> = { ...options.parameters, CodeBucket: bucket, CodeKey: key, Architecture: arch }
    const parameters: Array<Parameter> = [...declaredKeys].flatMap((parameterKey): Array<Parameter> => {
      if (parameterKey === undefined) return []
      const value = given[parameterKey]
      if (value !== undefined) return [{ ParameterKey: parameterKey, ParameterValue: value }]
      return previous.has(parameterKey) ? [{ ParameterKey: parameterKey, UsePreviousValue: true }] : []
    })

    const upToDate = (): DeployResult => {
      console.log(`No changes: stack ${stackName} is up to date`)
      return { changed: false, outputs: stackOutputs(existing!) }
    }
    const changeSetName = `deploy-${new Date().toISOString().replace(/[^0-9]/g, "").slice(0, 14)}`
    let changeSetId: string
    try {
      const created = await cfn.send(new CreateChangeSetCommand({
        StackName: stackName,
        ChangeSetName: changeSetName,
        ChangeSetType: creating ? "CREATE" : "UPDATE",
        TemplateBody: template,
        Parameters: parameters,
        Capabilities: ["CAPABILITY_IAM"],
        Description: "npm run deploy"
      }))
      changeSetId = created.Id!
    } catch (error) {
      // CloudFormation creates the change set and fails it (below); some emulators refuse at once
      if (!creating && noChanges((error as Error).message)) return upToDate()
      throw error
    }
    const changeSet = await settledChangeSet(cfn, changeSetId, changeSetName)
    if (changeSet.Status === "FAILED") {
      if (!creating && noChanges(changeSet.StatusReason)) {
        await cfn.send(new DeleteChangeSetCommand({ ChangeSetName: changeSetId }))
        return upToDate()
      }
      throw new Error(`change set ${changeSetName} failed: ${changeSet.StatusReason}`)
    }

    console.log(`${creating ? "Creating" : "Updating"} stack ${stackName} in ${region}:`)
    for (const change of changeSet.Changes ?? []) {
      const resource = change.ResourceChange
      const replacement = resource?.Replacement === "True" ? " (replacement)" : ""
      console.log(`  ${resource?.Action ?? "?"} ${resource?.LogicalResourceId} ${resource?.ResourceType}${replacement}`)
    }
    const started = new Date(Date.now() - 60_000) // event timestamps come from AWS's clock
    await cfn.send(new ExecuteChangeSetCommand({ ChangeSetName: changeSetId }))
    const stack = await settledStack(cfn, stackName, creating, started)
    console.log(`Stack ${stackName}: ${stack.StackStatus}`)
    await ensureLedgerTtl(cfn, dynamodb, stackName)
    return { changed: true, outputs: stackOutputs(stack) }
  } finally {
    if (clients === undefined) {
      cfn.destroy()
      s3.destroy()
    }
    if (clients?.dynamodb === undefined) dynamodb.destroy()
  }
}

export const printOutputs = (outputs: Record<string, string>) => {
  if (Object.keys(outputs).length === 0) console.log("  (the stack reports none)")
  const width = Math.max(0, ...Object.keys(outputs).map((key) => key.length))
  for (const [key, value] of Object.entries(outputs).sort()) console.log(`  ${key.padEnd(width)}  ${value}`)
}
