/**
 * An author's own pipeline from an empty folder, as the README's "Your own pipeline" goes: `npm
 * pack` this project, install the tarball and `effect` in a new folder, copy in the example
 * pipeline (examples/orders: three mutations failing with different typed errors, one using the
 * object store, no explicit generics), then in that folder: `tsc --noEmit`, its test with the
 * test kit (`node --test`), `produce` and `agent --until-empty` with `--pipeline ./order.ts` on
 * the local queue, and `build --pipeline ./order.ts`, whose zip's handler runs on moto.
 */
import "../support/awsEnv.ts"
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { execFile } from "node:child_process"
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { npm, root } from "../../src/deploy/build.ts"
import { createBucket, createQueue } from "../support/aws.ts"
import { cliEnv } from "../support/cli.ts"

const execFileAsync = promisify(execFile)
const folder = mkdtempSync(join(tmpdir(), "author-"))
const example = join(root, "examples", "orders")

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** A command in the author's folder, with Node 24 (this process's) and the local backends. */
const inFolder = async (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}): Promise<Run> => {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, args, {
      cwd: folder,
      env: cliEnv({ PIPELINE_DATA_DIR: join(folder, ".pipeline"), INIT_CWD: undefined, ...env }),
      maxBuffer: 1 << 22
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const { code, stdout = "", stderr = "" } = error as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof code === "number" ? code : -1, stdout, stderr }
  }
}

const ok = (run: Run): Run => {
  assert.strictEqual(run.code, 0, `${run.stdout}${run.stderr}`)
  return run
}

/** The installed package's command line, as `npx sqs-state-pipeline` runs it. */
const cli = (...args: ReadonlyArray<string>) => inFolder([join(folder, "node_modules", "sqs-state-pipeline", "lib", "bin", "cli.js"), ...args])

beforeAll(() => {
  const tarball = npm(["pack", "--pack-destination", folder, "--silent"], root).trim().split("\n").at(-1)!
  writeFileSync(join(folder, "package.json"), `${JSON.stringify({ name: "orders", private: true, type: "module" })}\n`)
  const version = (name: string) => (JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as { version: string }).version
  npm(
    ["install", `./${tarball}`, `effect@${version("effect")}`, `@types/node@${version("@types/node")}`, "--no-audit", "--no-fund", "--prefer-offline"],
    folder
  )
  for (const file of ["order.ts", "order.test.ts", "tsconfig.json"]) copyFileSync(join(example, file), join(folder, file))
}, 300_000)

afterAll(() => rmSync(folder, { recursive: true, force: true }))

describe("an author's pipeline in a folder of its own", { timeout: 120_000 }, () => {
  it("installs with one effect: the package's imports resolve to the author's", () => {
    assert.isTrue(existsSync(join(folder, "node_modules", "effect", "package.json")))
    assert.isFalse(existsSync(join(folder, "node_modules", "sqs-state-pipeline", "node_modules", "effect")))
  })

  it("type-checks with no explicit generics, and a mutation needing an unprovided service does not", async () => {
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
    ok(await inFolder([tsc, "--noEmit", "-p", "."]))
    const source = readFileSync(join(folder, "order.ts"), "utf8")
    writeFileSync(join(folder, "broken.ts"), source.replace(/layer: Layer\.succeed\([^\n]*\)/, "layer: Layer.empty"))
    try {
      const broken = await inFolder([tsc, "--noEmit", "-p", "."])
      assert.notStrictEqual(broken.code, 0)
      assert.include(broken.stdout, "broken.ts")
      assert.include(broken.stdout, "Payments")
    } finally {
      rmSync(join(folder, "broken.ts"))
    }
  })

  it("its test with the test kit passes", async () => {
    const run = ok(await inFolder(["--test", "--test-reporter=tap", "order.test.ts"]))
    assert.match(run.stdout, /^# pass 2$/m)
    assert.match(run.stdout, /^# fail 0$/m)
  })

  it("produce and agent --until-empty with --pipeline ./order.ts run it on the local queue and bucket", async () => {
    assert.include(ok(await cli("produce", "--pipeline", "./order.ts", "A-1", "unknown-2")).stdout, "sent 2 records")
    const agent = ok(await cli("agent", "--until-empty", "--wait-seconds", "0", "--pipeline", "./order.ts"))
    const summary = agent.stderr.split("\n").filter((line) => line.includes(`"agent summary"`)).map((line) => JSON.parse(line))
    assert.deepInclude(summary[0].annotations, { done: 1, deadLettered: 1, transitions: 3 })
    assert.strictEqual(readFileSync(join(folder, ".pipeline", "bucket", "receipts", "A-1.txt"), "utf8"), "order A-1: SKU-A-1 paid\n")
  })

  it("build --pipeline ./order.ts makes a zip whose handler runs that pipeline on moto", async () => {
    const built = ok(await cli("build", "--pipeline", "./order.ts"))
    // handler.js, its chunks and package.json: no node_modules, this pipeline needs no sharp
    assert.match(built.stdout, /dist\/function-arm64\.zip: .* \(\d+ files: bundle\)/)
    const unzipped = join(folder, "unzipped")
    await execFileAsync("python3", ["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])", join(folder, "dist", "function-arm64.zip"), unzipped])
    assert.deepStrictEqual(readdirSync(unzipped), ["dist"])

    const queue = await createQueue({ maxReceiveCount: 3 })
    const bucket = await createBucket()
    const event = {
      Records: [{
        messageId: "m-1",
        receiptHandle: "r-1",
        body: JSON.stringify({ id: "Z-1", sku: "SKU-Z-1", charged: true }),
        attributes: { ApproximateReceiveCount: "1" },
        messageAttributes: {},
        eventSource: "aws:sqs"
      }]
    }
    const invoke = [
      `const { handler } = await import(${JSON.stringify(pathToFileURL(join(unzipped, "dist", "lambda", "handler.js")).href)})`,
      `console.log(JSON.stringify(await handler(${JSON.stringify(event)})))`
    ].join("\n")
    const run = ok(await inFolder(["--input-type=module", "-e", invoke], { PIPELINE_QUEUE_URL: queue.queueUrl, PIPELINE_BUCKET: bucket }))
    assert.deepInclude(JSON.parse(run.stdout.trim().split("\n").at(-1)!), { batchItemFailures: [] })

    const s3 = new S3Client({ forcePathStyle: true })
    const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
    try {
      const receipt = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "receipts/Z-1.txt" }))
      assert.strictEqual(await receipt.Body!.transformToString(), "order Z-1: SKU-Z-1 paid\n")
      const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.queueUrl, MaxNumberOfMessages: 10 }))
      assert.deepStrictEqual(Messages.map((message) => JSON.parse(message.Body!)), [
        { id: "Z-1", sku: "SKU-Z-1", charged: true, receipt: "receipts/Z-1.txt" }
      ])
    } finally {
      s3.destroy()
      sqs.destroy()
    }
  })
})
