/**
 * ElasticMQ, an SQS-compatible server on the JVM (it speaks SQS's JSON protocol, as the AWS SDK v3
 * does), for benchmarks that need a server that is not itself the bottleneck (moto is pure Python).
 *
 * Maven Central has no standalone jar, so the server's jar and its runtime dependencies (the list
 * below, resolved once with `mvn dependency:copy-dependencies`) are downloaded on first use into a
 * git-ignored folder, each checked against Central's SHA-1, and run with `java -cp`. Needs Java 17+.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { freePort } from "./moto.ts"

export const ELASTICMQ_VERSION = "1.7.1"
const home = join(import.meta.dirname, "..", "..", ".tools", `elasticmq-${ELASTICMQ_VERSION}`)
const CENTRAL = "https://repo1.maven.org/maven2"

/** elasticmq-server_2.13 and its runtime dependencies, group:artifact:version. */
const JARS = [
  `org.elasticmq:elasticmq-server_2.13:${ELASTICMQ_VERSION}`,
  `org.elasticmq:elasticmq-core_2.13:${ELASTICMQ_VERSION}`,
  `org.elasticmq:elasticmq-rest-sqs_2.13:${ELASTICMQ_VERSION}`,
  `org.elasticmq:elasticmq-persistence-core_2.13:${ELASTICMQ_VERSION}`,
  `org.elasticmq:elasticmq-persistence-file_2.13:${ELASTICMQ_VERSION}`,
  `org.elasticmq:elasticmq-persistence-sql_2.13:${ELASTICMQ_VERSION}`,
  "org.scala-lang:scala-library:2.13.18",
  "org.scala-lang:scala-reflect:2.13.16",
  "org.scala-lang.modules:scala-xml_2.13:2.4.0",
  "org.scala-lang.modules:scala-async_2.13:1.0.1",
  "org.scala-lang.modules:scala-collection-compat_2.13:2.12.0",
  "org.scala-lang.modules:scala-parser-combinators_2.13:2.4.0",
  "org.apache.pekko:pekko-actor_2.13:1.5.0",
  "org.apache.pekko:pekko-stream_2.13:1.5.0",
  "org.apache.pekko:pekko-slf4j_2.13:1.5.0",
  "org.apache.pekko:pekko-protobuf-v3_2.13:1.5.0",
  "org.apache.pekko:pekko-http_2.13:1.3.0",
  "org.apache.pekko:pekko-http-core_2.13:1.3.0",
  "org.apache.pekko:pekko-http-spray-json_2.13:1.3.0",
  "org.apache.pekko:pekko-parsing_2.13:1.3.0",
  "org.reactivestreams:reactive-streams:1.0.4",
  "io.spray:spray-json_2.13:1.3.6",
  "org.parboiled:parboiled_2.13:2.5.1",
  "com.typesafe:config:1.4.6",
  "com.typesafe:ssl-config-core_2.13:0.7.1",
  "com.github.pureconfig:pureconfig-core_2.13:0.17.8",
  "com.typesafe.scala-logging:scala-logging_2.13:3.9.6",
  "ch.qos.logback:logback-classic:1.3.16",
  "ch.qos.logback:logback-core:1.3.16",
  "org.slf4j:slf4j-api:2.0.7",
  "org.scalikejdbc:scalikejdbc_2.13:4.3.5",
  "org.scalikejdbc:scalikejdbc-core_2.13:4.3.5",
  "org.scalikejdbc:scalikejdbc-interpolation_2.13:4.3.5",
  "org.scalikejdbc:scalikejdbc-interpolation-macro_2.13:4.3.5",
  "com.h2database:h2:2.2.224",
  "org.apache.commons:commons-dbcp2:2.13.0",
  "org.apache.commons:commons-pool2:2.12.0",
  "commons-logging:commons-logging:1.3.4",
  "jakarta.transaction:jakarta.transaction-api:1.3.3"
]

const download = async (url: string): Promise<Buffer> => {
  const response = await fetch(url)
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`)
  return Buffer.from(await response.arrayBuffer())
}

export const ensureElasticMqInstalled = async (): Promise<string> => {
  const lib = join(home, "lib")
  const done = join(home, "installed")
  if (existsSync(done)) return lib
  const java = spawnSync("java", ["-version"])
  if (java.error !== undefined || java.status !== 0) throw new Error("ElasticMQ needs java (17 or newer) on the PATH.")
  mkdirSync(lib, { recursive: true })
  for (const coordinates of JARS) {
    const [group, artifact, version] = coordinates.split(":") as [string, string, string]
    const file = `${artifact}-${version}.jar`
    const url = `${CENTRAL}/${group.replaceAll(".", "/")}/${artifact}/${version}/${file}`
    const [jar, sha1] = await Promise.all([download(url), download(`${url}.sha1`)])
    const expected = sha1.toString("utf8").trim().split(/\s+/)[0]
    const actual = createHash("sha1").update(jar).digest("hex")
    if (actual !== expected) throw new Error(`${url}: SHA-1 ${actual}, Central says ${expected}`)
    writeFileSync(join(lib, `${file}.part`), jar)
    renameSync(join(lib, `${file}.part`), join(lib, file))
  }
  writeFileSync(done, `${JARS.join("\n")}\n`)
  return lib
}

export interface ElasticMq {
  readonly endpoint: string
  /** The JVM's process id (to read its CPU time from /proc). */
  readonly pid: number
  readonly stop: () => Promise<void>
}

/** Starts ElasticMQ on a free loopback port, in memory, with SQS's limits enforced. */
export const startElasticMq = async (): Promise<ElasticMq> => {
  const lib = await ensureElasticMqInstalled()
  const port = await freePort()
  const endpoint = `http://127.0.0.1:${port}`
  const config = join(home, `server-${port}.conf`)
  writeFileSync(config, [
    `include classpath("application.conf")`,
    `node-address { protocol = http, host = "127.0.0.1", port = ${port}, context-path = "" }`,
    `rest-sqs { enabled = true, bind-port = ${port}, bind-hostname = "127.0.0.1", sqs-limits = strict }`,
    `rest-stats { enabled = false }`,
    ""
  ].join("\n"))
  // the client compiler only: steady speed within seconds (with C2 it kept getting faster, and compiling, for a minute)
  const child: ChildProcess = spawn("java", ["-XX:TieredStopAtLevel=1", `-Dconfig.file=${config}`, "-cp", join(lib, "*"), "org.elasticmq.server.Main"], {
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  const deadline = Date.now() + 60_000
  while (true) {
    if (child.exitCode !== null) throw new Error(`ElasticMQ exited with ${child.exitCode}:\n${stderr}`)
    try {
      // any answer means it listens (a bare GET is a 4xx from the SQS API)
      await fetch(`${endpoint}/`)
      break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`ElasticMQ did not start within 60 s:\n${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  // read at startup
  rmSync(config, { force: true })
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once("exit", () => resolve())
      child.kill("SIGTERM")
    })
  return { endpoint, pid: child.pid!, stop }
}
