// The layers of src/ (README, "Layout"): imports run one way,
// domain <- services <- pipelines/programs <- runtimes (lambda, cli, bin).
// `npm test` runs `node scripts/depcruise.ts src --config .dependency-cruiser.cjs` (that script says why not
// plain `depcruise`); test/layering.test.ts shows each rule fires.

/** Files in folder `from` may import, in src/, only from the folders in `allowed`. */
const layer = (name, from, allowed, comment) => ({
  name,
  comment,
  severity: "error",
  from: { path: `^src/${from}/` },
  to: { path: "^src/", pathNot: `^src/(${allowed.join("|")})/` }
})

// Node builtins that reach outside the process. The domain is pure: node:crypto's hashing is fine.
const ioBuiltins = [
  "fs", "net", "http", "https", "http2", "child_process", "sqlite", "dgram", "dns", "tls", "cluster",
  "worker_threads", "readline", "repl", "inspector", "os", "process"
]

/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    layer("domain-imports-domain-only", "domain", ["domain"],
      "src/domain is the pure model: it imports nothing from services, pipelines, programs or the runtimes."),
    layer("services-import-domain-and-services", "services", ["domain", "services"],
      "A service (and its implementations) builds on the domain only; programs and pipelines build on services."),
    layer("pipelines-import-below", "pipelines", ["domain", "services", "pipelines"],
      "A pipeline uses the domain and services; the engine and the runtimes run it, not the other way round."),
    layer("programs-import-below", "programs", ["domain", "services", "programs"],
      "Programs run any pipeline given to them by a layer; they import no pipeline and no runtime."),
    {
      name: "domain-does-no-io",
      comment: "src/domain does no I/O: no Node builtin that touches files, the network, processes or the host.",
      severity: "error",
      from: { path: "^src/domain/" },
      to: { dependencyTypes: ["core"], path: `^(node:)?(${ioBuiltins.join("|")})(/|$)` }
    },
    {
      name: "src-not-to-tooling",
      comment: "Nothing in src imports scripts/, test/ or bench/.",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(scripts|test|bench)/" }
    },
    {
      name: "no-circular",
      comment: "No cycles, except through a dynamic import(): a service class loads its implementation lazily " +
        "(MessageQueue.ts -> queue/sqs.ts -> MessageQueue.ts). Those imports still obey the layer rules.",
      severity: "error",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["dynamic-import"] } }
    },
    {
      name: "not-to-unresolvable",
      comment: "An import the cruiser cannot resolve would escape the rules above (tsc would also fail on it).",
      severity: "error",
      from: {},
      to: { couldNotResolve: true }
    }
  ],
  options: {
    // type-only imports are imports too (a domain type importing a service's type is still a wrong way)
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    moduleSystems: ["es6"],
    // resolve packages as Node does (effect has only an "exports" map)
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "node", "default"] }
  }
}
