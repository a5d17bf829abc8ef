import { assert, describe, it } from "@effect/vitest"
import { inject } from "vitest"

describe("moto", () => {
  it("answers on loopback", async () => {
    const response = await fetch(`${inject("motoEndpoint")}/moto-api/`)
    assert.strictEqual(response.status, 200)
  })
})
