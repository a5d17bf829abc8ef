/** Of the bundle's files, only those that use `require` keep the banner that makes one. */
import { assert, describe, it } from "@effect/vitest"
import { lambdaBundleOptions, withoutUnusedRequire } from "../../src/deploy/build.ts"

const banner = (lambdaBundleOptions.banner as { js: string }).js
const text = (contents: Uint8Array) => new TextDecoder().decode(contents)
const bytes = (contents: string) => new TextEncoder().encode(contents)

describe("withoutUnusedRequire", () => {
  it("drops the banner from a file that does not use require", () => {
    assert.strictEqual(text(withoutUnusedRequire(bytes(`${banner}\nimport{a as b}from"./chunk-A.js";export const c=b+1;`))), "import{a as b}from\"./chunk-A.js\";export const c=b+1;")
  })

  it("keeps it in a file that does", () => {
    const source = `${banner}\nvar m=typeof require<"u"?require:null;export{m as a};`
    assert.strictEqual(text(withoutUnusedRequire(bytes(source))), source)
  })

  it("leaves a file without the banner as it is", () => {
    const source = "export const c=1;"
    assert.strictEqual(text(withoutUnusedRequire(bytes(source))), source)
  })
})
