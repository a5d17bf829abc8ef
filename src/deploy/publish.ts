/**
 * `publish --stack NAME` (or `--function NAME`, and `--pipeline ./module.ts` for an author's pipeline): replaces the function's code and
 * nothing else (UpdateFunctionCode), for a quick iteration after `npm run deploy`. The zip is
 * built for the function's own architecture if it is missing or older than the sources.
 *
 * The stack does not know: its CodeKey still names the zip of the last deploy, and the next deploy
 * that changes the code puts the stack's zip back in place.
 */
import { CloudFormationClient, DescribeStackResourcesCommand } from "@aws-sdk/client-cloudformation"
import { GetFunctionConfigurationCommand, LambdaClient, UpdateFunctionCodeCommand, waitUntilFunctionUpdatedV2 } from "@aws-sdk/client-lambda"
import { readFileSync } from "node:fs"
import { type Architecture, defaultArchitecture, ensureBuilt, isArchitecture } from "./build.ts"

/** UpdateFunctionCode takes at most 50 MB of zip in the request. */
const directUploadLimit = 50 * 1024 * 1024

/** The stack's function, by its logical id in infra/template.yaml. */
const functionOfStack = async (stackName: string): Promise<string> => {
  const cfn = new CloudFormationClient({})
  try {
    const { StackResources = [] } = await cfn.send(new DescribeStackResourcesCommand({ StackName: stackName }))
    const name = StackResources.find((resource) => resource.LogicalResourceId === "Function")?.PhysicalResourceId
    if (name === undefined) throw new Error(`stack ${stackName} has no function yet`)
    return name
  } finally {
    cfn.destroy()
  }
}

export interface PublishResult {
  readonly functionName: string
  readonly codeSha256: string
  readonly arch: Architecture
}

export const publish = async (target: {
  readonly stackName?: string | undefined
  readonly functionName?: string | undefined
  readonly pipelinePath?: string | undefined
}): Promise<PublishResult> => {
  const functionName = target.functionName ?? await functionOfStack(target.stackName!)
  const lambda = new LambdaClient({})
  try {
    const configuration = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: functionName }))
    const declared = configuration.Architectures?.[0] ?? defaultArchitecture
    if (!isArchitecture(declared)) throw new Error(`${functionName} runs on ${declared}, which this project does not build for`)
    const zip = readFileSync(await ensureBuilt(declared, target.pipelinePath))
    if (zip.length > directUploadLimit) throw new Error(`the zip is over 50 MB: use npm run deploy, which uploads through S3`)
    const updated = await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: functionName, ZipFile: zip }))
    await waitUntilFunctionUpdatedV2({ client: lambda, maxWaitTime: 300 }, { FunctionName: functionName })
    return { functionName, codeSha256: updated.CodeSha256 ?? "", arch: declared }
  } finally {
    lambda.destroy()
  }
}
