import { assert, describe, it } from "@effect/vitest"
import { fitAttributes, MAX_MESSAGE_BYTES } from "../../src/domain/messages.ts"

describe("fitAttributes", () => {
  const required = { "error.tag": "MalformedBody", "pipeline.step": "2" }

  it("keeps every attribute when they fit, typed ones with their data type in place of their text", () => {
    const binary = { dataType: "Binary", binaryValue: Uint8Array.from([0, 255]) }
    const number = { dataType: "Number", stringValue: "7" }
    assert.deepStrictEqual(fitAttributes("body", required, { origin: "upload", priority: "7" }, { signature: binary, priority: number }), {
      attributes: { ...required, origin: "upload" },
      typedAttributes: { priority: number, signature: binary }
    })
    assert.deepStrictEqual(fitAttributes("body", required, { origin: "upload" }), { attributes: { ...required, origin: "upload" } })
  })

  it("keeps the required ones and the sender's in order up to 10 attributes", () => {
    const sender = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`a${i}`, "x"]))
    const { attributes } = fitAttributes("body", required, sender)
    assert.deepStrictEqual(Object.keys(attributes!), ["error.tag", "pipeline.step", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"])
  })

  it("leaves out an attribute that would take the message over SQS's size, and keeps later ones that fit", () => {
    const body = "b".repeat(MAX_MESSAGE_BYTES - 1000)
    const { attributes, typedAttributes } = fitAttributes(body, required, { small: "s" }, { big: { dataType: "Binary", binaryValue: new Uint8Array(2000) } })
    assert.deepStrictEqual(attributes, { ...required, small: "s" })
    assert.isUndefined(typedAttributes)
  })
})
