/**
 * The API token file: creation (random, 0600, atomic, one winner among
 * racing creators), reading and its errors, rotation, and the live check
 * the daemon uses to follow rotations without a restart.
 */
import assert from "node:assert/strict";
import {
  createTokenFile,
  ensureTokenFile,
  generateToken,
  LiveToken,
  parseToken,
  readTokenFile,
  rotateTokenFile,
  timingSafeEqual,
  timingSafeEqualBytes,
  TOKEN_RECHECK_MS,
  TokenFileError,
} from "../lib/http/mod.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "courier-token-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("token: 256 random bits from the CSPRNG, base64url, never the same twice", () => {
  const tokens = new Set(Array.from({ length: 1000 }, generateToken));
  assert.equal(tokens.size, 1000);
  for (const token of tokens) {
    assert.match(token, /^[A-Za-z0-9_-]{43}$/); // 43 base64url characters = 258 bits ≥ 32 bytes
    assert.equal(parseToken(`${token}\n`), token);
  }
  const ones = [...tokens].join("").split("").filter((c) => c === "A").length;
  assert.ok(ones > 0 && ones < 43 * 1000 / 16, "no stuck character");
});

Deno.test("constant-time comparison: equal only when equal, whatever the lengths", () => {
  const token = generateToken();
  assert.equal(timingSafeEqual(token, `${token}`), true);
  for (const other of ["", token.slice(0, -1), `${token}x`, `x${token.slice(1)}`, "é"]) {
    assert.equal(timingSafeEqual(token, other), false, other);
    assert.equal(timingSafeEqual(other, token), false, other);
  }
  assert.equal(timingSafeEqual("", ""), true);
  assert.equal(timingSafeEqual("\u0000", ""), false, "a NUL is not the end of a string");
  const bytes = new TextEncoder().encode(token);
  assert.equal(timingSafeEqualBytes(bytes, bytes.slice()), true);
  assert.equal(timingSafeEqualBytes(bytes, bytes.subarray(1)), false);
  assert.equal(timingSafeEqualBytes(new Uint8Array([0]), new Uint8Array()), false);
});

Deno.test("token file: created 0600 whatever the umask, one line, no temporary file left", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/api.token`;
    const previous = Deno.umask(0); // a careless umask must not widen the file
    try {
      const token = await createTokenFile(path);
      assert.ok(token);
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert.equal(await Deno.readTextFile(path), `${token}\n`);
      assert.equal(await createTokenFile(path), null, "never replaces an existing file");
      assert.equal(await readTokenFile(path), token);
    } finally {
      Deno.umask(previous);
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["api.token"]);
  });
});

Deno.test("token file: creators racing agree on one token, and nobody ever reads it empty", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/api.token`;
    const readers: Promise<string | null>[] = [];
    const results = await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      if (i % 2) readers.push(readTokenFile(path).catch((e: TokenFileError) => e.problem));
      return await ensureTokenFile(path);
    }));
    const tokens = new Set(results.map((r) => r.token));
    assert.equal(tokens.size, 1);
    assert.equal(results.filter((r) => r.created).length, 1);
    for (const seen of await Promise.all(readers)) {
      assert.ok(seen === "missing" || tokens.has(seen!), `a reader saw ${seen}`);
    }
  });
});

Deno.test("token file: missing, unreadable and malformed files are errors with exit 3 naming the path", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/api.token`;
    const problem = async (expected: string, message: RegExp) => {
      await assert.rejects(readTokenFile(path), (error: Error) => {
        assert.ok(error instanceof TokenFileError);
        assert.equal(error.problem, expected);
        assert.equal(error.exitCode, 3);
        assert.equal(error.path, path);
        assert.ok(error.message.includes(path));
        assert.match(error.message, message);
        return true;
      });
    };
    await problem("missing", /No API token at .*'courier token' creates it/);
    await Deno.mkdir(path); // a directory in its place: cannot be read, even by root
    await problem("unreadable", /Cannot read the API token/);
    await Deno.remove(path);
    for (
      const text of ["", "\n", "short\n", `${"x".repeat(40)} ${"y".repeat(40)}\n`, "é".repeat(40)]
    ) {
      await Deno.writeTextFile(path, text);
      await problem("invalid", /does not hold an API token.*courier token rotate/);
    }
    await assert.rejects(ensureTokenFile(path), TokenFileError, "never overwrites a bad file");
    const own = "my-own-long-token-of-at-least-32-chars";
    await Deno.writeTextFile(path, ` ${own} \n`);
    assert.equal(await readTokenFile(path), own, "a hand-written token of 32+ characters is fine");
  });
});

Deno.test("token file: rotation replaces it atomically (a new file, 0600), readers see old or new", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/api.token`;
    const { token: first } = await ensureTokenFile(path);
    const before = await Deno.stat(path);
    const seen = new Set<string>();
    let reading = true;
    const reader = (async () => {
      while (reading) {
        seen.add(await readTokenFile(path));
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    })();
    const rotated = [await rotateTokenFile(path)];
    const after = await Deno.stat(path);
    assert.notEqual(after.ino, before.ino, "a new file was renamed into place");
    assert.equal(after.mode! & 0o777, 0o600);
    for (let i = 0; i < 20; i++) rotated.push(await rotateTokenFile(path));
    reading = false;
    await reader;
    assert.equal(await readTokenFile(path), rotated.at(-1));
    assert.notEqual(rotated.at(-1), first);
    for (const token of seen) assert.ok(token === first || rotated.includes(token));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["api.token"]);
  });
});

Deno.test("live token: follows a rotation after the recheck interval; the old one is refused", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/api.token`;
    const { token: first } = await ensureTokenFile(path);
    let now = 0;
    const changes: (string | null)[] = [];
    const live = new LiveToken(path, {
      now: () => now,
      onChange: (problem) => changes.push(problem?.problem ?? null),
    });
    assert.equal(live.verify(first), true);
    assert.equal(live.verify(first + "x"), false);
    assert.equal(live.verify(first.slice(1)), false);
    const second = await rotateTokenFile(path);
    now += TOKEN_RECHECK_MS - 1;
    assert.equal(live.verify(first), true, "not looked at again yet");
    now += 1;
    assert.equal(live.verify(second), true);
    assert.equal(live.verify(first), false);
    assert.deepEqual(changes, [null]);
    now += TOKEN_RECHECK_MS;
    assert.equal(live.verify(second), true, "an unchanged file is not reported again");
    assert.deepEqual(changes, [null]);
  });
});

Deno.test("live token: a missing or broken file fails closed until a usable one is back", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/api.token`;
    const { token } = await ensureTokenFile(path);
    let now = 0;
    const changes: (string | null)[] = [];
    const live = new LiveToken(path, {
      now: () => now,
      onChange: (problem) => changes.push(problem?.problem ?? null),
    });
    await Deno.remove(path);
    now += TOKEN_RECHECK_MS;
    assert.equal(live.verify(token), false, "missing: nothing is accepted");
    assert.equal(live.problem?.problem, "missing");
    now += TOKEN_RECHECK_MS;
    assert.equal(live.verify(token), false);
    await Deno.writeTextFile(path, "garbage\n");
    now += TOKEN_RECHECK_MS;
    assert.equal(live.verify("garbage"), false);
    const fresh = (await ensureTokenFile(`${dir}/other`)).token;
    await Deno.rename(`${dir}/other`, path);
    now += TOKEN_RECHECK_MS;
    assert.equal(live.verify(fresh), true);
    assert.equal(live.problem, null);
    assert.deepEqual(changes, ["missing", "invalid", null], "each change reported once");
  });
});
