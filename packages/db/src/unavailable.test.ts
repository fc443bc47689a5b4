import { connect } from "./connect";
import { isDatabaseUnavailable } from "./unavailable";

describe("isDatabaseUnavailable", () => {
  it("recognises a refused connection from the real driver", async () => {
    const sql = connect("postgres://postgres@127.0.0.1:1/none");
    let failure: unknown;
    try {
      await sql`SELECT 1`;
    } catch (err) {
      failure = err;
    } finally {
      await sql.end();
    }
    expect(isDatabaseUnavailable(failure)).toBe(true);
  });

  it("recognises transient SQLSTATEs and nothing else", () => {
    const pg = (code: string) => Object.assign(new Error("x"), { name: "PostgresError", code });
    expect(isDatabaseUnavailable(pg("57P01"))).toBe(true);
    expect(isDatabaseUnavailable(pg("08006"))).toBe(true);
    expect(isDatabaseUnavailable(pg("40001"))).toBe(true);
    expect(isDatabaseUnavailable(pg("23505"))).toBe(false);
    expect(isDatabaseUnavailable(pg("42P01"))).toBe(false);
    expect(isDatabaseUnavailable(Object.assign(new Error("x"), { code: "CONNECTION_CLOSED" }))).toBe(true);
    expect(isDatabaseUnavailable(new TypeError("x"))).toBe(false);
    expect(isDatabaseUnavailable(undefined)).toBe(false);
    expect(isDatabaseUnavailable(new Error("wrapped", { cause: pg("57P03") }))).toBe(true);
  });
});
