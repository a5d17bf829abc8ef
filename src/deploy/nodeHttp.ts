/**
 * An esbuild plugin for the Lambda bundle: `node:http` (or `http`) is read through `require`, not
 * imported as an ES module. The default export is the module itself (as Node's own ES wrapper
 * gives it); the named exports are its functions, classes and constants, taken once at load.
 *
 * Why: to give an ES module the namespace of a builtin, Node reads every export of it, and
 * node:http's include getters (WebSocket, CloseEvent, MessageEvent) that load Node's bundled
 * undici. The AWS SDK imports node:http for its first request: an `import("node:http")` in a
 * fresh process costs 85-95 ms of CPU, a require 9-12 ms (Node 24.21).
 */
import type { Plugin } from "esbuild"

/** node:http's exports other than the getters that load undici; a bundle that imports another name fails to build. */
export const nodeHttpExports = [
  "METHODS", "STATUS_CODES", "Agent", "ClientRequest", "IncomingMessage", "OutgoingMessage", "Server", "ServerResponse",
  "createServer", "validateHeaderName", "validateHeaderValue", "get", "request", "setMaxIdleHTTPParsers", "maxHeaderSize",
  "globalAgent"
] as const

const namespace = "node-http-via-require"

const contents = [
  "import { createRequire } from \"node:module\"",
  "const http = createRequire(import.meta.url)(\"node:http\")",
  "export default http",
  `export const { ${nodeHttpExports.join(", ")} } = http`
].join("\n")

export const nodeHttpViaRequire: Plugin = {
  name: namespace,
  setup(build) {
    build.onResolve({ filter: /^(node:)?http$/ }, () => ({ path: "node:http", namespace }))
    build.onLoad({ filter: /.*/, namespace }, () => ({ contents, loader: "js" }))
  }
}
